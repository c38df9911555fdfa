package evidence

import "github.com/takedown-project/takedown/internal/migrate"

// Component is the name under which the log's migrations are recorded in
// schema_migrations.
const Component = "evidence"

// migrations are the versions of the log's schema. Never edit a released
// step: add one.
//
//   - evidence_leaves: one row per leaf. data is the leaf data (NULL once
//     retention pruned a batch leaf), a batch leaf's packed since session
//     14 (0x00, then its hashes as 32 raw bytes each; see packBatch) and
//     in the documented form before; hash is the record hash of the
//     documented form, which stays.
//     first_ns and last_ns are the time range of a batch's events (NULL
//     for an audit leaf), audit_seq the audit entry's seq (NULL for a
//     batch).
//   - evidence_hashes: the tree's stored hashes as tlog numbers them
//     (tlog.StoredHashIndex), from which every tree hash and proof is
//     computed.
//   - evidence_checkpoints: every signed checkpoint, as signed.
var migrations = []migrate.Migration{{
	Version: 1,
	Name:    "create evidence_leaves, evidence_hashes, evidence_checkpoints",
	SQL: `CREATE TABLE evidence_leaves (
	idx       BIGINT PRIMARY KEY,
	kind      VARCHAR NOT NULL,
	logged_at TIMESTAMP NOT NULL,
	first_ns  BIGINT,
	last_ns   BIGINT,
	events    INTEGER NOT NULL,
	audit_seq BIGINT,
	data      BLOB,
	hash      BLOB NOT NULL
);
CREATE TABLE evidence_hashes (
	idx  BIGINT PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TABLE evidence_checkpoints (
	size      BIGINT NOT NULL,
	signed_at TIMESTAMP NOT NULL,
	note      BLOB NOT NULL
);`,
}}
