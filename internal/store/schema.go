package store

import (
	"strings"

	"github.com/takedown-project/takedown/internal/migrate"
)

// Component is the name under which the store's migrations are recorded in
// schema_migrations.
const Component = "events"

// migrations are the versions of the events schema. Never edit a released
// step: add one.
//
// Choices, measured on 14.6M events (see BENCHMARKS.md and README.md):
//   - time is TIMESTAMP_NS: as small and as fast as a BIGINT of nanoseconds,
//     and readable in ad-hoc SQL. Events arrive in about time order, so the
//     min/max zone maps of each row group make a time range cheap; a day
//     column bought nothing over a range on time and CAST(time AS DATE).
//   - src_ip is a UBIGINT, because DuckDB counts distinct UBIGINTs about five
//     times faster than UHUGEINTs and twice as fast as BLOBs (0.12 s against
//     0.64 s and 0.29 s per ASN over a week): an IPv4 address is its 32-bit
//     number, an IPv6 address a 64-bit hash of it with the top bit set, and
//     the IPv6 address itself is in src_ip6 (NULL for IPv4). See ip.go.
//   - dst_ip, never counted, is a UHUGEINT: IPv6, with IPv4 as
//     IPv4-mapped IPv6 (::ffff:a.b.c.d).
//   - unknown strings are NULL rather than empty, unknown numbers are 0, as
//     in event.Event.
//   - ip_text(u) and src_ip_text(src_ip, src_ip6) give the text of the
//     addresses in ad-hoc SQL.
var migrations = []migrate.Migration{
	{
		Version: 1,
		Name:    "create events",
		SQL: `CREATE TABLE events (
	time            TIMESTAMP_NS NOT NULL,
	sensor          VARCHAR,
	protocol        VARCHAR,
	transport       VARCHAR,
	src_ip          UBIGINT NOT NULL,
	src_ip6         UHUGEINT,
	src_port        USMALLINT NOT NULL,
	dst_ip          UHUGEINT,
	dst_port        USMALLINT NOT NULL,
	domain          VARCHAR,
	zone            VARCHAR,
	case_name       VARCHAR,
	family          VARCHAR,
	tag             VARCHAR,
	bot_id          VARCHAR,
	http_method     VARCHAR,
	http_path       VARCHAR,
	http_user_agent VARCHAR,
	tls_version     VARCHAR,
	tls_cipher      VARCHAR,
	tls_fingerprint VARCHAR,
	dns_qtype       VARCHAR,
	dns_rcode       VARCHAR,
	bytes           BIGINT NOT NULL,
	payload_sha256  VARCHAR,
	payload_head    BLOB,
	asn             UINTEGER NOT NULL,
	as_name         VARCHAR,
	country_code    VARCHAR,
	region          VARCHAR,
	city            VARCHAR,
	latitude        DOUBLE NOT NULL,
	longitude       DOUBLE NOT NULL
);
CREATE MACRO ip_text(u) AS CASE
	WHEN u >> 32 = 65535 THEN printf('%d.%d.%d.%d', (u >> 24) & 255, (u >> 16) & 255, (u >> 8) & 255, u & 255)
	ELSE printf('%x:%x:%x:%x:%x:%x:%x:%x', (u >> 112) & 65535, (u >> 96) & 65535, (u >> 80) & 65535, (u >> 64) & 65535,
		(u >> 48) & 65535, (u >> 32) & 65535, (u >> 16) & 65535, u & 65535)
END;
CREATE MACRO src_ip_text(ip, ip6) AS CASE
	WHEN ip6 IS NOT NULL THEN ip_text(ip6)
	ELSE ip_text(ip::UHUGEINT + 281470681743360)
END;`,
	},
	{
		Version: 2,
		Name:    "dns do bit, client subnet, malformed flag",
		SQL: `ALTER TABLE events ADD COLUMN dns_do BOOLEAN DEFAULT false;
ALTER TABLE events ADD COLUMN dns_client_subnet VARCHAR;
ALTER TABLE events ADD COLUMN malformed BOOLEAN DEFAULT false;`,
	},
	{
		Version: 3,
		Name:    "ingest marks",
		// A mark is where a source of events (the pipeline's spool) stands:
		// it is written in the same transaction as the events up to it,
		// so that a restart resumes after the last stored event, once.
		SQL: `CREATE TABLE ingest_marks (
	source  VARCHAR PRIMARY KEY,
	mark    BLOB NOT NULL,
	updated TIMESTAMP NOT NULL
);`,
	},
	{
		Version: 4,
		Name:    "listener fields: http, tls alpn, smtp, error",
		SQL: `ALTER TABLE events ADD COLUMN http_referer VARCHAR;
ALTER TABLE events ADD COLUMN forwarded_by VARCHAR;
ALTER TABLE events ADD COLUMN content_type VARCHAR;
ALTER TABLE events ADD COLUMN tls_alpn VARCHAR;
ALTER TABLE events ADD COLUMN smtp_helo VARCHAR;
ALTER TABLE events ADD COLUMN smtp_from VARCHAR;
ALTER TABLE events ADD COLUMN smtp_rcpt_domains VARCHAR;
ALTER TABLE events ADD COLUMN smtp_rcpt_count UINTEGER DEFAULT 0;
ALTER TABLE events ADD COLUMN smtp_subject VARCHAR;
ALTER TABLE events ADD COLUMN smtp_message_id VARCHAR;
ALTER TABLE events ADD COLUMN error VARCHAR;`,
	},
}

// columns lists the columns of events in table order, as the appender and
// Scan use them.
const columns = `time, sensor, protocol, transport, src_ip, src_ip6, src_port, dst_ip, dst_port,
	domain, zone, case_name, family, tag, bot_id, http_method, http_path, http_user_agent,
	tls_version, tls_cipher, tls_fingerprint, dns_qtype, dns_rcode, bytes, payload_sha256,
	payload_head, asn, as_name, country_code, region, city, latitude, longitude,
	dns_do, dns_client_subnet, malformed, http_referer, forwarded_by, content_type, tls_alpn,
	smtp_helo, smtp_from, smtp_rcpt_domains, smtp_rcpt_count, smtp_subject, smtp_message_id, error`

// columnNames are the names in columns, in table order.
var columnNames = strings.Fields(strings.ReplaceAll(columns, ",", " "))
