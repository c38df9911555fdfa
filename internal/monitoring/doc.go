// Package monitoring holds the tests of what operators drop into their
// monitoring: the Prometheus alerting rules in deploy/prometheus (checked
// and unit-tested with promtool) and the Grafana dashboard in
// deploy/grafana; every metric they read must be one that a running
// `takedown serve` (single, central, sensor) or its mail delivery exports.
package monitoring
