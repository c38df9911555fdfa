// Package eventstore is the event store's contract: the questions that
// reports, the dashboard, the map, the API, the subscribers' feed and the
// remediation trend ask of the stored events (HostQuery, HostRowQuery,
// DailyHostQuery, CityQuery, …), the rows that answer them (HostCount,
// HostRow, DailyHosts, CityCount, …), and the interfaces that every engine
// implements: Writer (append with a mark, all or nothing), Reader (the
// queries over the events) and Rollup (the daily rollup the dashboard
// reads).
//
// It imports only internal/event and the standard library, and owns no
// engine: internal/store is the embedded DuckDB engine, issue 20 adds
// ClickHouse, and each implements these interfaces and passes the
// conformance suite internal/store/storetest. Only the composition
// (internal/app, and internal/cli when it opens the files itself) imports
// an engine; everything else names the types of this package and declares
// the few methods it calls as its own interface (report.Source,
// report.DailySource, api.Events, pipeline.Store, dashboard.Rollup), as
// Prometheus keeps its leaf types in model/ and its storage interfaces in
// storage/, apart from the tsdb that implements them.
//
// Who calls what, each through an interface of its own (or, in the
// composition, the engine itself):
//
//	pipeline            AppendMarked, Mark: each batch with the spool's position
//	api, cli            UniqueHosts, CallbacksPerHour: statistics, the demo's counts, the map
//	report              HostRows: the reports; DailyHosts: the remediation trend
//	app                 Scan: the subscribers' event feed; Stats: status;
//	                    Sources: the live unique-host counters after a restart;
//	                    DeleteBefore: retention (the engine's own method)
//	dashboard           the Rollup: its pages and its map
//	storetest           all of them, on every engine
//
// Why "eventstore" and not "store", "model" or "measure": what it names is
// the event store as its readers see it, whatever engine keeps the events.
// "store" is the DuckDB engine's folder (moving it under this one, as
// eventstore/duckdb, is a rename left for a quiet moment); "model" would
// say nothing about what is modelled, and "measure" is the step of the
// takedown that classification, enrichment, the pipeline and the store
// make together, not this package alone.
//
// What an engine promises, beyond the method comments:
//
//   - Every event that Check accepts is stored, and every field of it comes
//     back from Scan as it went in, but for three normalisations: times in
//     UTC, an IPv4-mapped IPv6 address as the IPv4 address, no zone on an
//     address.
//   - A batch is all or nothing; one refused for an event says which with
//     an *EventError, one that failed for the engine's state (disk, memory,
//     an interrupted query) with a *TransientError.
//   - Queries take any time from MinTime to MaxTime.
//   - An infected host is one whose events have a family or a case (a
//     seized name was called): HostRows, DailyHosts, HostsPerCity, the
//     rollup and HostQuery.Infected count those alone; in host rows, the
//     cities' family filter and the rollup, a host with a case and no
//     family is of the family UnknownFamily.
package eventstore
