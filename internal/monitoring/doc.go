// Package monitoring holds the tests of what operators drop into their
// monitoring: the Prometheus alerting rules in deploy/prometheus (checked
// and unit-tested with promtool) and the Grafana dashboard in
// deploy/grafana, whose every metric must be one that a running
// `takedown serve` exports.
package monitoring
