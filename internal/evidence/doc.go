// Package evidence is takedown's transparency log: every stored batch of
// events and every registry audit entry becomes a leaf of an append-only
// Merkle tree (RFC 6962 / RFC 9162 hashing, golang.org/x/mod/sumdb/tlog),
// whose state is signed at intervals as a C2SP checkpoint
// (golang.org/x/mod/sumdb/note, Ed25519). Inclusion and consistency proofs
// let a third party check, without our database, that an event was logged
// and that the log was only ever appended to.
//
// The formats (event line and hash, batch and audit leaves, tree,
// checkpoint, cosignature, proofs) are the contract with third parties and
// are documented byte for byte, with a worked example that TestDocExample
// keeps in step with the code, in docs/evidence-formats.md.
//
// # Storage
//
// The log lives in the takedown DuckDB file whichever engine keeps the
// events (component "evidence": evidence_leaves, evidence_hashes,
// evidence_checkpoints). Each append is one transaction (a batch leaf, or
// up to 10,000 audit leaves, with their stored hashes). Open refuses a log
// whose tree no longer extends its last checkpoint; Checkpoint refuses to
// sign one; Verify recomputes everything and names the first leaf or
// checkpoint that does not match (TamperError). A batch leaf's data is
// kept packed, its hashes as raw bytes (33 bytes an event, not 65), and
// read back in the documented form: DuckDB took 14 ms of CPU to store a
// 20,000-event leaf in the documented form, about 6 ms packed.
//
// # The write path
//
// Store puts the log in front of the event store, write-ahead: a batch's
// leaf is committed before the batch, so every stored event is in at least
// one leaf. After a crash between the two the replay may store the events
// under a second leaf too, so checks count event hashes as sets.
//
// Hashing a batch of 20,000 simulated events (their canonical JSON lines,
// about 1 KB each, and SHA-256) takes about 45 ms of CPU, a third each for
// the lines, the SHA-256 and the rest (sorting, hex, the leaf's bytes);
// the leaf's transaction about 20 ms more when its data was stored in the
// documented form (1.3 MB), about half that packed (640 KB). DuckDB takes
// 150 to 200 ms to append and commit the batch, about 220 ms of CPU:
// logging first and storing after cost 24 % of the ingest rate. With the
// DuckDB engine (a PreCommitAppender) Store hashes and logs the batch on
// one goroutine while the engine appends it on another, and lets the
// engine commit only once the leaf is committed: the write-ahead holds,
// the leaf is ready before the rows (the commit waits for it about 3 µs),
// and the log takes a CPU that the append leaves idle. Hashing in parallel
// on every CPU, as before, finished the leaf sooner but took CPU from the
// append: the log took (medians of series on a loaded machine) 47 % more
// CPU time than the store alone, on one goroutine 36 %. What the log costs
// in time then depends on the machine: on a near-quiet two-CPU machine
// 3.4 % of the ingest rate (median of eleven runs, −8 to +11 %), the
// second CPU being idle during an append; on one whose CPUs are busy with
// other work up to its CPU cost, about 40 % (BenchmarkIngest reports both;
// BENCHMARKS.md, session 14).
//
// The ClickHouse engine has no hook before its commit (the server commits
// each INSERT): the leaf is logged, then the batch stored. A batch that
// fails after its leaf (the server went away) is stored again by the
// replay, possibly under other leaves, which the rule above allows
// (TestWriteAheadClickHouse, with a real clickhouse-server).
package evidence
