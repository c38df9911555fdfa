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
// checkpoint that does not match (TamperError).
//
// # The write path
//
// Store puts the log in front of the event store, write-ahead: a batch's
// leaf is committed before the batch, so every stored event is in at least
// one leaf. After a crash between the two the replay may store the events
// under a second leaf too, so checks count event hashes as sets.
//
// Hashing a batch of 20,000 simulated events (its canonical JSON lines and
// their SHA-256) takes about 45 ms of CPU here, the leaf's transaction
// about 20 ms, against about 200 ms for DuckDB to append the batch: logging
// first and storing after cost 24 % of the ingest rate. With the DuckDB
// engine (a PreCommitAppender) Store hashes and logs the batch while the
// engine appends it and lets the engine commit only after the leaf, which
// keeps the write-ahead and brought the cost to 9 % on a loaded 2-core
// machine (BenchmarkIngest; see BENCHMARKS.md for the figures on a quiet
// one).
package evidence
