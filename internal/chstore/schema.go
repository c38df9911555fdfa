package chstore

import (
	"strings"
)

// Component is the name under which the engine's migrations are recorded
// in schema_migrations.
const Component = "events"

// migration is one version of the schema. Never edit a released step: add
// one.
type migration struct {
	Version uint32
	Name    string
	// SQL returns the statements of the step for a layout (one node or a
	// cluster), run in order on every shard. Each must be safe to run
	// again (IF NOT EXISTS): a step that failed half-way on a shard is
	// run again whole.
	SQL func(l layout) []string
}

// migrations are the versions of the schema, in order from 1. Version 1
// is the writer's (events, ingest_marks); the rollup's tables and views
// come after it.
var migrations = []migration{
	{
		Version: 1,
		Name:    "create events and ingest_marks",
		SQL: func(l layout) []string {
			return concat(
				// Partitioned by UTC day: retention drops whole
				// partitions, and each day of a batch is one INSERT,
				// so one part, atomic. Ordered by network and address,
				// then time: the reports and the rollup group by
				// those, and a host's events are adjacent.
				l.table("events", "("+eventsColumns+`)
ENGINE = MergeTree
PARTITION BY day
ORDER BY (asn, src_ip, time_ns)`, "sipHash64(src_ip)"),
				// One row per write of a mark; the newest version is
				// the mark. pending lists the days of a batch whose
				// events are being inserted (written before them,
				// with the mark they follow), empty once the batch's
				// mark is written; left keeps the hashes of stored
				// rows of half-stored batches that replayed events
				// have not matched yet (empty but after a crash).
				l.table("ingest_marks", `(
	source  String,
	mark    String,
	version UInt64,
	pending Array(Date),
	left    Array(UInt64)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY source`, "sipHash64(source)"),
			)
		},
	},
	rollupMigration, // rollup.go
}

// eventsColumns are the columns of events, in table order. Unknown strings
// are ” and unknown numbers 0; see the package documentation for the
// addresses.
const eventsColumns = `
	day               Date,
	time_ns           Int64,
	src_ip            UInt64,
	src_ip6           FixedString(16),
	src_port          UInt16,
	dst_ip            FixedString(16),
	dst_port          UInt16,
	sensor            String,
	protocol          String,
	transport         String,
	domain            String,
	zone              String,
	case_name         String,
	family            String,
	tag               String,
	bot_id            String,
	http_method       String,
	http_path         String,
	http_user_agent   String,
	http_referer      String,
	forwarded_by      String,
	content_type      String,
	tls_version       String,
	tls_cipher        String,
	tls_fingerprint   String,
	tls_alpn          String,
	dns_qtype         String,
	dns_rcode         String,
	dns_do            UInt8,
	dns_client_subnet String,
	smtp_helo         String,
	smtp_from         String,
	smtp_rcpt_domains String,
	smtp_rcpt_count   UInt32,
	smtp_subject      String,
	smtp_message_id   String,
	error             String,
	malformed         UInt8,
	bytes             Int64,
	payload_sha256    String,
	payload_head      String,
	asn               UInt32,
	as_name           String,
	country_code      String,
	region            String,
	city              String,
	latitude          Float64,
	longitude         Float64,
	batch             UInt64,
	ev_hash           UInt64
`

// columnNames are the names of eventsColumns, in table order.
var columnNames = func() []string {
	var names []string
	for _, line := range strings.Split(eventsColumns, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			names = append(names, f[0])
		}
	}
	return names
}()

// layout is where the tables are: one node, or a cluster of shards.
type layout struct {
	db      string // the database
	cluster string // "" on one node
}

// local returns the name of the table that holds the rows of name on a
// shard: name itself on one node, name_local on a cluster.
func (l layout) local(name string) string {
	if l.cluster == "" {
		return name
	}
	return name + "_local"
}

// table returns the statements that create table name with body (the
// columns and the engine): on one node the table itself; on a cluster
// name_local on each shard and name, Distributed over the cluster by
// shardKey, beside it.
func (l layout) table(name, body, shardKey string) []string {
	out := []string{"CREATE TABLE IF NOT EXISTS " + l.local(name) + " " + body}
	if l.cluster != "" {
		out = append(out, "CREATE TABLE IF NOT EXISTS "+name+" AS "+l.local(name)+
			" ENGINE = Distributed("+l.cluster+", "+l.db+", "+l.local(name)+", "+shardKey+")")
	}
	return out
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
