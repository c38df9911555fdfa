// Package exhibit writes a case's exhibit, a folder that proves what the
// sinkhole saw of a case in a period, and verifies one from its files
// alone.
//
// An exhibit holds the case as the registry knows it (case.json), the
// per-day counts of its infected hosts with how they were counted
// (counts.csv, counts.json), a world map per day (maps/), the events
// themselves as canonical event lines (events.jsonl, and events.csv for
// reading), and what makes them evidence: the leaves of the transparency
// log that name the events' hashes (leaves/), the case's audit entries as
// the log's audit leaves (audit/), an inclusion proof of each leaf against
// one signed checkpoint, earlier checkpoints of the period with consistency
// proofs to it (checkpoints/, proofs/), the log's verifier key (key.pub),
// and a manifest of every file's SHA-256 (MANIFEST.sha256) whose own hash
// the log key signs (MANIFEST.sha256.note). summary.html is the one-page
// account a lawyer attaches to a declaration; the signed note names its
// hash too, so that the page printed can be tied to the folder.
//
// Verify needs nothing but the folder: it reads no database and no
// configuration, and it checks every file against the formats of
// docs/exhibit.md, which are also what tools/verify-exhibit/verify.mjs, an
// independent verifier in node.js, reads. Every problem found is a Finding
// that names the file and, where there is one, the line, the leaf or the
// checkpoint.
//
// Export reads the registry, the event engine (through eventstore's
// Reader) and the evidence log, writes the folder under a temporary name
// beside the one asked for and renames it at the end, so that a folder of
// that name is always a whole exhibit.
package exhibit
