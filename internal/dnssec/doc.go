// Package dnssec holds the signing keys of the seized zones.
//
// # One key per case
//
// Each case that signs (config dns.dnssec.cases) has one combined signing
// key (CSK: flags 257, both key- and zone-signing), not a key per zone
// nor one for everything: a case is one court order whose zones go to the
// same registries at once, so their DS records are asked for and rolled
// together, and a compromised or lost key touches one case. Each zone
// still has its own DS record, as a DS hashes the owner name with the key
// (Key.DS). Algorithms: ECDSA P-256 with SHA-256 (13, the default) and
// Ed25519 (15); both sign in tens of microseconds and give 64-byte
// signatures.
//
// # Key is what the sinks see
//
// Key is a key as the served set (internal/servedset) carries it to every
// sinkhole, a sensor's included: its DNSKEY fields, its state and times,
// and its private part as a crypto.Signer. Keys that are published,
// active or retired go in the DNSKEY set of each of the case's zones;
// active keys sign; removed keys are in no served set.
//
// # Store keeps them
//
// Store keeps the keys: the private parts as BIND "Private-key-format:
// v1.3" files (what dnssec-keygen writes; ParsePrivate reads those of
// algorithm 13 and 15, naming file and line in its errors) in the data
// directory's dnssec/ folder, named K<case>+<alg>+<tag>.private, mode
// 0600; the states and times in the takedown database (table dnssec_keys,
// migration component "dnssec"). Loading refuses a file that group or
// others may read, a damaged one, and one that holds another key than the
// database names.
//
// # Rollover
//
// A rollover is a double-signature CSK rollover in two steps. Start adds a
// new key, active at once beside the old: every RRset is signed by both,
// so the zones validate whether a resolver holds (or caches) the parent's
// old DS set, one with both keys, or the new one. Finish removes the old
// keys (retired and removed at once, since the new key signs everything
// already), once the wait has passed since Start (the parent's DS TTL or
// the zones' TTL, whichever is longer: no cache then holds a DS set that
// only the old key matches) and the Check hook (the parents' DS records
// as the last delegation check saw them) agrees; Force skips both.
package dnssec
