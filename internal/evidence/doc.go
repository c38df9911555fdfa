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
// are documented byte for byte, with a worked example, in
// docs/evidence-formats.md.
//
// The log lives in the takedown DuckDB file whichever engine keeps the
// events (component "evidence": evidence_leaves, evidence_hashes,
// evidence_checkpoints). Store puts it in front of the event store,
// write-ahead: a batch's leaf is committed before the batch, so every
// stored event is in at least one leaf; after a crash between the two the
// replay may store the events under a second leaf too, so checks count
// event hashes as sets.
package evidence
