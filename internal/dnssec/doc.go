// Package dnssec holds the signing keys of the seized zones: one combined
// signing key (CSK: flags 257, both key- and zone-signing) per case that
// signs, since a case is one court order whose zones go to the same
// registries. Each zone still has its own DS record, as a DS hashes the
// owner name with the key.
//
// Key is a key as the served set carries it to every sinkhole; Store keeps
// them: private keys as BIND "Private-key-format: v1.3" files (what
// dnssec-keygen writes) under the data directory's dnssec/ folder, mode
// 0600, and their states and times in the takedown database.
package dnssec
