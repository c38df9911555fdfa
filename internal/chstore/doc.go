// Package chstore is the ClickHouse engine of the event store: the central
// keeps its events in ClickHouse, on one node or sharded over several,
// when one DuckDB file (internal/store) is outgrown. *Store is the
// eventstore.Writer and Reader and passes the conformance suite
// internal/store/storetest; only the composition imports it.
//
// # Tables
//
// On one node events is a MergeTree partitioned by UTC day (day, a Date)
// and ordered by (asn, src_ip, time_ns). With Config.Cluster set, each
// shard holds events_local, the MergeTree, and events, Distributed over
// the cluster by sipHash64(src_ip), beside it: a host lives on one shard,
// and readers name events either way. DDL runs on every shard address
// (Config.Shards), without ON CLUSTER, which needs ZooKeeper. The versions
// of the schema are in schema_migrations (component "events") on every
// shard; Open refuses a database whose schema is newer than this build
// knows.
//
// Times are time_ns, UTC nanoseconds; day is the UTC day of the event,
// kept within 1970-01-01 and 2105-12-31 (what a Date holds on 18.16): an
// event outside goes in the partition of the nearest day, and its time_ns
// is exact. Unknown strings are ” and unknown numbers 0. src_ip is the
// 64-bit number the counts count (an IPv4 address, or a hash of an IPv6
// one with the top bit set, as the DuckDB engine's), src_ip6 the 16 bytes
// of every address (IPv4 mapped) so that a CIDR scope is a range scan,
// dst_ip 16 bytes, all zero when unknown.
//
// # Exactly once
//
// ClickHouse has no transactions: a batch and its mark cannot be written
// together, and 18.16 has neither insert_deduplication_token nor the
// deduplication window of non-replicated tables. The writer makes each
// batch idempotent instead, which works on every release and on any
// table engine:
//
//   - every row carries batch, a 64-bit hash of (source, the mark before
//     the batch), and ev_hash, xxhash64 of the event's binary form
//     (event.AppendBinary): a replay of a batch from the same mark has
//     the same batch id and its events the same hashes;
//   - a batch is written as a row of ingest_marks that keeps the mark
//     and lists the days where the batch's rows may be (pending), then
//     one INSERT per UTC day (one partition each: every INSERT is one
//     part, all or nothing), then a row that sets the new mark
//     (ReplacingMergeTree(version); Mark reads the row of the highest
//     version);
//   - the first AppendMarked of a source after Open, the only moment a
//     half-done batch can exist (a source has one writer), and the first
//     after a failed one, read the newest row of the source: when it lists
//     pending days, the rows of that batch id in those days are read
//     (SELECT ev_hash … WHERE day IN (…) AND batch = …, which prunes to
//     the batch's partitions) and the replayed events that match them are
//     not inserted again. A batch that a crash left inserted and unmarked
//     is thus completed, not doubled, whatever grouping the replay gives
//     its events;
//   - the hashes that no replayed event has matched yet are consumed by
//     the following batches, and every row of ingest_marks keeps them
//     (left, empty but during a replay), so that a second crash, or a
//     mark moved alone, before the replay is through does not forget
//     them.
//
// The pending row is what keeps the restart cheap: a clean one costs one
// small query, where a lookup without it would scan the batch column of
// the whole table. What remains unprotected is Append without a source:
// its multi-day batch may be left half-stored by an engine failure (it
// reports a TransientError; nothing completes it).
//
// Once a batch's first INSERT has begun, the caller's context no longer
// stops it (its INSERTs and mark run to their end, within two minutes):
// a cancelled batch is never stored and reported failed. An error after
// that point may leave part of the batch stored; the retry from the same
// mark completes it, as after a crash.
//
// With a cluster, the INSERTs go to the Distributed tables with
// insert_distributed_sync = 1 (18.16 has it): the initiating server
// splits the block by the sharding key and returns once every shard has
// written its part, so nothing is acknowledged before the rows are on the
// shards. Inserting into each shard's events_local directly would need
// the sharding key computed in Go exactly as ClickHouse does (sipHash64
// and the shards' weights) and would gain a hop on loopback; the
// synchronous Distributed insert keeps one definition of the sharding.
// A shard that fails part-way leaves the other shards' parts: the retry
// completes the batch as above.
//
// # Retention
//
// DeleteBefore drops whole partitions older than the cut's day on every
// shard, then deletes the events of the cut's own day before it with a
// mutation (ALTER TABLE … DELETE, asynchronous on 18.16, which has no
// mutations_sync: DeleteBefore polls system.mutations). Retain cuts at
// midnight, so it only ever drops partitions.
package chstore
