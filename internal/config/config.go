// Package config holds takedown's one configuration tree: the YAML file a
// user writes, decoded strictly (internal/strictyaml: an unknown key, or one
// given twice, is an error naming the file, line and key), filled with
// defaults that run unprivileged on loopback, and validated with errors
// that name the key at fault.
//
// Each capability package has its own Config; the composition code
// (internal/app) translates this file's sections into them. A component's
// Config is what its New or Open takes; Options are the knobs of one call
// that produces something (report.Options, worldmap.Options).
//
// # Where defaults live
//
// Every default has one home. Most belong to the capability package whose
// Config field the key sets: its zero value works there ("the zero value
// works"), and this package leaves the key at zero for it. The comment of
// such a key names the package's constant, e.g. "Default 300
// (dnssink.DefaultTTL)". This package fills in the rest (fill):
//
//   - what derives from other settings: the paths under data_dir,
//     pipeline.batch_size from store.memory_limit_mb, reports.send from
//     mail.relay, dns.rrl.errors_per_second and signed_per_second from
//     responses_per_second;
//   - what the file means differently from the package's zero value:
//     dns.rrl.responses_per_second and slip (0 in the file is the default,
//     in dnssink no limit and no slip), dns.hostmaster (dnssink's zero is
//     hostmaster.<zone>), pipeline.disk_reserve_mb (the spool's zero keeps
//     no reserve);
//   - what no package defaults: the addresses to listen on, the sinkhole's
//     answers, data_dir, sensor, log, api, store.memory_limit_mb,
//     rpz.policy, pipeline.drain_timeout_ms.
//
// app.Effective fills in the packages' defaults: serve runs with them, and
// `takedown config show` prints them.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is the whole configuration file.
type Config struct {
	// DataDir holds the database, the API token and later the spool and
	// certificates. Default: $XDG_DATA_HOME/takedown, else
	// ~/.local/share/takedown, else ./takedown-data.
	DataDir string `yaml:"data_dir"`
	// Sensor names this sinkhole node in every event. Default: the host name.
	Sensor string `yaml:"sensor"`
	// Operator names who runs the sinkhole, e.g. "Example CERT"; it appears
	// in DNS TXT records and reports.
	Operator string `yaml:"operator"`
	// Role is what `takedown serve` runs: "" everything in one process,
	// "sensor" the sinks and the spool, with no registry and no store,
	// "central" the registry, the store and everything that reads them,
	// fed by the sensors through NATS, "collector" a process that only
	// stores the events of its own sensors (central.name, central.sensors)
	// into the ClickHouse store beside a central. `serve --role` overrides
	// it.
	Role string `yaml:"role"`
	// NATS is how a sensor and the central reach the NATS servers.
	NATS NATS `yaml:"nats"`
	// Central configures the central role.
	Central Central `yaml:"central"`

	Log      Log      `yaml:"log"`
	API      API      `yaml:"api"`
	Store    Store    `yaml:"store"`
	DNS      DNS      `yaml:"dns"`
	Transfer Transfer `yaml:"transfer"`
	RPZ      RPZ      `yaml:"rpz"`
	Pipeline Pipeline `yaml:"pipeline"`
	Enrich   Enrich   `yaml:"enrich"`
	Classify Classify `yaml:"classify"`
	Listen   Listen   `yaml:"listen"`
	// Delegation configures `takedown domains verify`.
	Delegation Delegation `yaml:"delegation"`
	// Reports configures the subscribers' daily reports and pull feed.
	Reports Reports `yaml:"reports"`
	// Mail is the SMTP relay that reports are sent through.
	Mail Mail `yaml:"mail"`
	// Feed configures the address of the subscribers' pull feed.
	Feed Feed `yaml:"feed"`
	// Dashboard configures the web dashboard under /ui/ of the API, and
	// its own listener.
	Dashboard Dashboard `yaml:"dashboard"`
	// Evidence configures the transparency log of the events and the
	// audit log (evidence.go).
	Evidence Evidence `yaml:"evidence"`
	// Metrics configures where Prometheus scrapes GET /metrics.
	Metrics Metrics `yaml:"metrics"`
}

// Metrics configures the Prometheus endpoint, GET /metrics. Its series
// carry no addresses, names or URLs of the hosts that call the sinkhole.
type Metrics struct {
	// Listen is a host:port that serves GET /metrics alone, without a
	// token, for a Prometheus scraper: bind it to loopback or to the
	// monitoring network (deploy/prometheus/README.md). Empty, the
	// default: /metrics is on api.listen and needs the API's bearer token
	// there, like every call but /healthz.
	Listen string `yaml:"listen"`
}

// The roles of serve (Config.Role).
const (
	RoleSingle  = ""
	RoleSensor  = "sensor"
	RoleCentral = "central"
	// RoleCollector stores the events of its sensors into the ClickHouse
	// store that a central reads; several writers share the events
	// stream, each with a name and sensors of its own.
	RoleCollector = "collector"
)

// NATS says how a sensor or the central reaches the NATS JetStream
// cluster that joins them.
type NATS struct {
	// Servers are the cluster's URLs (nats://host:port, tls://host:port).
	Servers []string `yaml:"servers"`
	// Credentials is this node's credential file: an NKey user seed or
	// user:password on one line, readable by its owner only. Required
	// unless every server is on loopback.
	Credentials string `yaml:"credentials"`
	// TLS: the CA that signs the servers' certificates (required unless
	// every server is on loopback), and a client certificate if the
	// servers ask for one.
	TLS NATSTLS `yaml:"tls"`
	// Replicas of the central's streams: 3 on a three-node cluster.
	// Default: 3 when three or more servers are named, else 1.
	Replicas int `yaml:"replicas"`
	// MaxStreamMB bounds the events stream on each server (default 10240):
	// what sensors publish while the central is away waits there.
	MaxStreamMB int `yaml:"max_stream_mb"`
}

// NATSTLS are the files of TLS to NATS.
type NATSTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Central configures the central role.
type Central struct {
	// Sensors are the ids of the sensors whose events the central
	// stores; another id's are refused.
	Sensors []string `yaml:"sensors"`
	// Name is set when several centrals share the events stream and one
	// ClickHouse store (issue 20): each names itself and lists only its
	// own sensors (no sensor in two lists), and takes their events through
	// a consumer of its own. Empty: the only central.
	Name string `yaml:"name"`
}

// Dashboard configures the web dashboard that serve offers on the API's
// address under /ui/, and on Listen when set. Its users are added with
// `takedown users add`.
type Dashboard struct {
	// Disabled turns the dashboard off.
	Disabled bool `yaml:"disabled"`
	// DevDir, if set, serves the dashboard's files (HTML, CSS, JavaScript)
	// from this directory instead of those built into the binary, for
	// development: edit, reload the page. Usually internal/dashboard/web.
	DevDir string `yaml:"dev_dir"`
	// SecureCookie marks the session cookie Secure on plain HTTP too: set
	// it when a TLS proxy fronts the API. On a TLS connection the cookie is
	// Secure anyway.
	SecureCookie bool `yaml:"secure_cookie"`
	// SessionHours is how long a login lasts at most. Default 12
	// (users.DefaultSessionTTL).
	SessionHours int `yaml:"session_hours"`
	// IdleMinutes ends a session unused for that long. Default 60
	// (users.DefaultIdleTimeout).
	IdleMinutes int `yaml:"idle_minutes"`
	// RefreshMS is how often the dashboard's rollup takes in new events
	// while someone watches (every 15 s otherwise). Default 2000
	// (dashboard.DefaultRefresh).
	RefreshMS int `yaml:"refresh_ms"`
	// Listen is the host:port of a listener that serves only the
	// dashboard (/ui/), /healthz and /readyz. Empty (the default): the
	// dashboard is served on api.listen only. It stays there too, for
	// `takedown users`; the API token is not accepted here.
	Listen string `yaml:"listen"`
	// TLS is this listener's certificate; empty: plain HTTP.
	TLS ListenerTLS `yaml:"tls"`
}

// Reports configures the daily per-subscriber reports: their e-mail
// delivery and the pull feed of /api/v1.
type Reports struct {
	// Send turns the scheduled e-mail delivery on: every subscriber gets
	// the previous UTC day's report at its send time. Default: on when
	// mail.relay is set.
	Send *bool `yaml:"send"`
	// FeedPerMinute and FeedBurst limit each subscriber's requests to the
	// pull feed. Defaults 60 and 10 (pull.DefaultRate and DefaultBurst).
	FeedPerMinute int `yaml:"feed_per_minute"`
	FeedBurst     int `yaml:"feed_burst"`
	// Days is how far back subscribers may fetch reports and events
	// (no further than store.retention_days keeps them). Default 90
	// (pull.DefaultRetention).
	Days int `yaml:"days"`
}

// Mail is the SMTP relay that reports are sent through. takedown never
// delivers mail itself.
type Mail struct {
	// Relay is host:port, e.g. mail.example.org:587. Empty: no e-mail.
	Relay string `yaml:"relay"`
	// TLS is required (STARTTLS, the default: deliver.TLSRequired),
	// opportunistic, none or smtps.
	TLS string `yaml:"tls"`
	// CAFile holds the certificate authorities of the relay's
	// certificate; empty: the system's.
	CAFile string `yaml:"ca_file"`
	// Username and PasswordFile log in with AUTH (only over TLS or to a
	// relay on loopback).
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// From is the author of the reports, e.g. "Takedown <takedown@example.org>".
	From string `yaml:"from"`
	// ReplyTo is where answers go.
	ReplyTo string `yaml:"reply_to"`
	// PGPKeyFile signs reports as PGP/MIME (PGPPassphraseFile unlocks
	// it); SMIMECertFile and SMIMEKeyFile sign them as S/MIME instead.
	PGPKeyFile        string `yaml:"pgp_key_file"`
	PGPPassphraseFile string `yaml:"pgp_passphrase_file"`
	SMIMECertFile     string `yaml:"smime_cert_file"`
	SMIMEKeyFile      string `yaml:"smime_key_file"`
}

// Delegation configures the delegation check of seized domains.
type Delegation struct {
	// Resolver is the host:port of the recursive resolver asked for each
	// domain's NS and A records. Default: the first nameserver of
	// /etc/resolv.conf, port 53.
	Resolver string `yaml:"resolver"`
}

// DNS configures the authoritative sinkhole for the seized zones.
type DNS struct {
	// Listen lists host:port addresses served on UDP and TCP. Default
	// 127.0.0.1:5300; production uses port 53. An empty list (listen: [])
	// turns the DNS sinkhole off.
	Listen []string `yaml:"listen"`
	// NameServers are the NS records of every seized zone, with glue.
	// Default one, ns1.sinkhole.invalid at 127.0.0.1.
	NameServers []NameServer `yaml:"nameservers"`
	// A and AAAA are the sinkhole addresses every seized name resolves to.
	// Default 127.0.0.1 and ::1.
	A    []string `yaml:"a"`
	AAAA []string `yaml:"aaaa"`
	// TTL of the answers (and of the RPZ) in seconds. Default 300
	// (dnssink.DefaultTTL).
	TTL uint32 `yaml:"ttl"`
	// Hostmaster is the SOA contact, as a domain name. Default
	// hostmaster.sinkhole.invalid.
	Hostmaster string `yaml:"hostmaster"`
	// RRL limits UDP responses per client prefix and response, so that a
	// spoofed flood cannot reflect off the sinkhole.
	RRL RRL `yaml:"rrl"`
	// DNSSEC chooses the cases whose zones are signed, and how
	// (dnssec.go).
	DNSSEC DNSSEC `yaml:"dnssec"`
}

// NameServer is an NS name with its glue addresses.
type NameServer struct {
	Name  string   `yaml:"name"`
	Addrs []string `yaml:"addrs"`
}

// RRL is response-rate limiting. A budget is per client prefix and
// response: an answer (its zone, or its name, and type), a zone's NODATA,
// a zone's NXDOMAIN, errors, and answers to malformed queries each count
// apart (internal/dnssink/README.md).
type RRL struct {
	// ResponsesPerSecond per client prefix and answer, NODATA or
	// NXDOMAIN; default 20, 0 in the file keeps the default, -1 turns
	// the limit off.
	ResponsesPerSecond int `yaml:"responses_per_second"`
	// SignedPerSecond per client prefix over all signed answers (DO set,
	// zone signed), on top of each answer's own budget, so that a flood
	// rotating over many signed zones is bounded. Default 5 ×
	// responses_per_second (internal/dnssink/README.md argues it), 0 in
	// the file keeps the default, -1 turns it off.
	SignedPerSecond int `yaml:"signed_per_second"`
	// ErrorsPerSecond per client prefix for errors (REFUSED…) and, in a
	// budget of its own, for the answers to malformed queries (FORMERR,
	// NOTIMP). Default: responses_per_second.
	ErrorsPerSecond int `yaml:"errors_per_second"`
	// Slip: every Slip-th limited response is sent truncated so that real
	// clients retry over TCP. Default 2.
	Slip int `yaml:"slip"`
	// IPv4Prefix and IPv6Prefix group clients. Defaults 24 and 56
	// (dnssink.DefaultRRLIPv4Prefix and DefaultRRLIPv6Prefix).
	IPv4Prefix int `yaml:"ipv4_prefix"`
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// Exempt lists CIDR prefixes that are never limited, e.g. the
	// resolvers of subscribed networks. Default none.
	Exempt []string `yaml:"exempt"`
}

// Transfer configures zone transfers (AXFR/IXFR) of the sinkhole zones and
// the RPZ feed to secondaries and ISP resolvers, with NOTIFY.
type Transfer struct {
	// Listen lists host:port addresses of the transfer server (a hidden
	// primary, apart from the sinkhole's query port). Default
	// 127.0.0.1:5301; listen: [] turns transfers off.
	Listen []string `yaml:"listen"`
	// TSIGKeys are the hmac-sha256 keys secondaries sign with.
	TSIGKeys []TSIGKey `yaml:"tsig_keys"`
	// AllowFrom is the source-address ACL. Default loopback only
	// (xfr.DefaultAllowFrom: 127.0.0.0/8 and ::1/128).
	AllowFrom []string `yaml:"allow_from"`
	// AllowUnsigned lists prefixes that may transfer without TSIG (Unbound
	// cannot sign RPZ transfers). Default none: TSIG is required.
	AllowUnsigned []string `yaml:"allow_unsigned"`
	// Notify lists host:port addresses told of every change.
	Notify []string `yaml:"notify"`
	// NotifyKey names the key that signs NOTIFY messages.
	NotifyKey string `yaml:"notify_key"`
}

// TSIGKey is a named shared secret.
type TSIGKey struct {
	Name string `yaml:"name"`
	// Secret is the base64 secret; or give SecretFile.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// RPZ configures the Response Policy Zone feed of the seized names.
type RPZ struct {
	// Zone is the policy zone's name. Default rpz.takedown.local
	// (rpz.DefaultZone).
	Zone string `yaml:"zone"`
	// Policy is the default action: nxdomain (CNAME .) or redirect (to the
	// sinkhole addresses). Default nxdomain.
	Policy string `yaml:"policy"`
	// Cases overrides the policy per case name.
	Cases map[string]string `yaml:"cases"`
}

// Log configures the structured log.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// API configures the registry's JSON HTTP API that `takedown serve` offers
// and that the CLI uses while a server runs.
type API struct {
	// Listen is the host:port of the API. Default 127.0.0.1:8480.
	Listen string `yaml:"listen"`
	// TokenFile holds the local bearer token; serve creates it (mode 0600)
	// when missing and the CLI reads it. Default <data_dir>/api.token.
	TokenFile string `yaml:"token_file"`
	// TLS is the admin API's certificate (files only); empty: plain HTTP.
	// The CLI then checks that the server presents this certificate.
	TLS ListenerTLS `yaml:"tls"`
}

// Store configures the database file and the event store. The registry,
// the audit log, the users and the subscribers are always in the DuckDB
// file at Path; the events, their rollups and what reads them are in the
// engine that Engine names.
type Store struct {
	// Engine keeps the events: "duckdb" (the default) in the database
	// file, embedded; "clickhouse" in the ClickHouse server(s) of
	// ClickHouse, for a central that one file cannot hold.
	Engine string `yaml:"engine"`
	// ClickHouse is where the events are when Engine is "clickhouse".
	ClickHouse ClickHouse `yaml:"clickhouse"`
	// Path of the database file. Default <data_dir>/takedown.duckdb.
	Path string `yaml:"path"`
	// RetentionDays is how long events are kept; 0 keeps them forever.
	// Default 180.
	RetentionDays int `yaml:"retention_days"`
	// MemoryLimitMB caps the memory DuckDB uses for its buffers, in MiB;
	// larger queries spill to disk. DuckDB's resident memory runs up to
	// about this plus a third (README.md, "What bounds memory"). Default
	// 192, which keeps a small sinkhole under 512 MiB; -1 leaves DuckDB's
	// own default (80 % of the machine's memory). Raise it for big
	// sensors and for the reports of big operations.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
}

// The event store engines (Store.Engine).
const (
	EngineDuckDB     = "duckdb"
	EngineClickHouse = "clickhouse"
)

// ClickHouse says how the central reaches the ClickHouse servers that
// keep its events (store.engine: clickhouse).
type ClickHouse struct {
	// Addrs are the native-protocol addresses (host:port, usually port
	// 9000, 9440 with TLS) of the servers to query; the first that
	// answers is used.
	Addrs []string `yaml:"addrs"`
	// Database holds takedown's tables; Open creates it. Default takedown
	// (chstore.DefaultDatabase).
	Database string `yaml:"database"`
	// Username and PasswordFile are the ClickHouse user; the file holds
	// the password on one line and only its owner may read it (mode 0600
	// or stricter). Both are required unless every server is on loopback.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// TLS: the CA that signs the servers' certificates (required unless
	// every server is on loopback), a client certificate if the servers
	// ask for one, and the name to check in their certificates when it is
	// not the host of Addrs.
	TLS ClickHouseTLS `yaml:"tls"`
	// Cluster, if set, is the cluster of the servers' remote_servers
	// configuration over which the events are sharded; "" is one node.
	Cluster string `yaml:"cluster"`
	// Shards are one native address per shard of Cluster, where the
	// tables are created: required with Cluster, not allowed without.
	Shards []string `yaml:"shards"`
	// DialTimeoutMS bounds each connection attempt; default 5000
	// (chstore.DefaultDialTimeout).
	DialTimeoutMS int `yaml:"dial_timeout_ms"`
}

// ClickHouseTLS are the files of TLS to ClickHouse. TLS is on when any
// is set.
type ClickHouseTLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// On reports whether TLS is configured.
func (t ClickHouseTLS) On() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// Pipeline configures the way from the sinks to the store: every event is
// first appended to a disk spool, and a writer moves it from there into the
// store in batches.
type Pipeline struct {
	// SpoolDir holds the spool's segment files. Default <data_dir>/spool.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxMB is the most the spool may hold, in MiB; only beyond it are
	// events dropped (and counted). Default 4096 (spool.DefaultMaxBytes).
	SpoolMaxMB int `yaml:"spool_max_mb"`
	// SyncMS is how often the spool is fsynced, in milliseconds: the most
	// a crash of the machine can lose. Default 200
	// (spool.DefaultSyncInterval); -1 fsyncs every write.
	SyncMS int `yaml:"sync_ms"`
	// SpoolFlushMS is how long recorded events may wait in the spool's
	// memory buffer before they are written to its file, in milliseconds
	// (or until 256 KiB wait): the most that a killed process (kill -9,
	// OOM) loses. Default 10 (spool.DefaultFlushInterval); from 1 to
	// 1000. Lower costs more write calls under load. -1 writes every
	// event before its sink answers: a kill loses nothing answered (a
	// sensor whose every callback must count), at a write call an event.
	SpoolFlushMS int `yaml:"spool_flush_ms"`
	// DiskReserveMB is free space kept on the spool's filesystem, in MiB:
	// below it the spool drops new events (counted) rather than fill the
	// disk that the store, on the same filesystem by default, needs to
	// take the backlog. Default 512; -1 keeps none.
	DiskReserveMB int `yaml:"disk_reserve_mb"`
	// QuarantineDir keeps the records that the store can never take
	// (undecodable, invalid, refused), set aside so that they do not stop
	// the rest; `takedown quarantine` lists and replays them. Default
	// <data_dir>/quarantine.
	QuarantineDir string `yaml:"quarantine_dir"`
	// MaxLagS is how long, in seconds, the oldest unstored event may wait
	// while the CPUs are busy answering bots before the store writer
	// leaves the idle CPU class and takes its share beside the sinks.
	// Default 10 (pipeline.DefaultMaxLag); from 1 to 3600.
	MaxLagS int `yaml:"max_lag_s"`
	// BatchSize is the most events per store transaction. A batch holds
	// about 1 KiB of Go heap an event while it is built, and the array of
	// the largest batch stays. Default 120 events per MiB of
	// store.memory_limit_mb, at most 122880, one DuckDB row group
	// (dbfile.RowGroupSize), which store.memory_limit_mb 1024 or -1
	// gives: whole row groups are written compressed at the commit. With
	// the default memory limit: 23040.
	BatchSize int `yaml:"batch_size"`
	// FlushMS is the longest an event waits in the spool for its batch, in
	// milliseconds, unless events come fast enough to fill a whole batch
	// within ten times that: then the batch waits to be whole. Default 500
	// (pipeline.DefaultFlushInterval).
	FlushMS int `yaml:"flush_ms"`
	// DrainTimeoutMS bounds the drain at shutdown, in milliseconds: once
	// the listeners have stopped, the pipeline keeps storing what the
	// spool holds for at most this long; the rest is stored by the next
	// start. Default 10000. A service manager's stop timeout must be
	// longer (deploy/takedown.service).
	DrainTimeoutMS int `yaml:"drain_timeout_ms"`
	// BackgroundCPUs keeps the background work (the store writer,
	// DuckDB's workers, the dashboard's refresh, the reports; Linux's idle
	// CPU class) to this many of the process's CPUs, the highest
	// numbered, so that it never runs on the CPUs the sinks wake up on.
	// Default 0: any CPU. On a dedicated sinkhole with 2 or more CPUs, 1
	// (deploy/README.md, "CPU priority"); on a machine that keeps those
	// CPUs busy with other work the writer is let onto every CPU while it
	// is starved. Read at start only.
	BackgroundCPUs int `yaml:"background_cpus"`
}

// Listen configures the sinkhole listeners that bots connect to once the
// seized names resolve to the sinkhole addresses. Production listens on
// ports 80, 443 and 25; the defaults are loopback high ports. An empty list
// (http: []) turns a listener off.
type Listen struct {
	HTTP  []string `yaml:"http"`
	HTTPS []string `yaml:"https"`
	SMTP  []string `yaml:"smtp"`
	// TCP and UDP are catch-all ports: the first bytes of a connection or
	// one datagram are recorded. Default none.
	TCP []string `yaml:"tcp"`
	UDP []string `yaml:"udp"`
	// CADir keeps the local certificate authority that signs a
	// certificate for every name a bot asks for over TLS. Default
	// <data_dir>/ca.
	CADir string `yaml:"ca_dir"`
	// MaxConns and MaxConnsPerIP bound the open connections of each
	// listening address, in total and from one source address. Defaults
	// 100000 and 256 (httpsink.DefaultMaxConns and DefaultMaxConnsPerIP),
	// for every listener: the SMTP and raw listeners' own defaults, when
	// they run alone, are lower.
	MaxConns      int `yaml:"max_conns"`
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// HeadBytes is how much of each request body, message or payload is
	// kept in its event. Default 512 (httpsink.DefaultHeadBytes), for every
	// listener.
	HeadBytes int `yaml:"head_bytes"`
	// MaxBodyBytes bounds an HTTP body; beyond it the request is answered
	// 413 and recorded as such. Default 1048576
	// (httpsink.DefaultMaxBodyBytes).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// DefaultStatus answers HTTP requests whose rule names no response:
	// 200 or 404. Default 200 (httpsink.DefaultStatus).
	DefaultStatus int `yaml:"default_status"`
	// HTTPLoops is the number of event-loop threads that serve the plain
	// HTTP listeners (Linux): a request that has arrived whole is served
	// on the loop's thread, without a goroutine. 0 (the default): one per
	// two CPUs, at least one; -1: none, every connection is served by a
	// goroutine.
	HTTPLoops int `yaml:"http_loops"`
	// DeferAcceptS is how long, in seconds, the kernel holds a new HTTP or
	// HTTPS connection whose client has sent nothing yet
	// (TCP_DEFER_ACCEPT, Linux). A bot sends its request at once and is
	// served without a wait; a silent client is accepted this much later.
	// 0 (the default): 1 s (httpsink.DefaultDeferAccept); -1: off.
	DeferAcceptS int `yaml:"defer_accept_s"`
}

// Classify configures the classification of events into malware families.
type Classify struct {
	// Rules is the rules file (YAML; see internal/classify/README.md),
	// reloaded when it changes and on SIGHUP. Default: the shipped rules of
	// the demo families.
	Rules string `yaml:"rules"`
}

// Enrich configures the offline enrichment of source addresses. No file is
// configured by default: events are then stored without ASN and location.
type Enrich struct {
	// Databases are MaxMind-format files (GeoLite2, DB-IP lite, IPinfo
	// lite; any layout) and iptoasn TSV files, in order of precedence.
	Databases []string `yaml:"databases"`
	// AbuseFiles map networks and AS numbers to abuse contacts (lines of
	// "203.0.113.0/24 abuse@example.net" or "AS64500 abuse@example.net").
	AbuseFiles []string `yaml:"abuse_files"`
	// RIRFiles are RPSL dumps (e.g. RIPE's ripe.db.inetnum.gz split files)
	// whose abuse-c / abuse-mailbox give the contact of a network.
	RIRFiles []string `yaml:"rir_files"`
	// CacheSize is the number of addresses cached; default 65536
	// (enrich.DefaultCacheSize), -1 off.
	CacheSize int `yaml:"cache_size"`
}

// DefaultRetentionDays is how long events are kept unless configured.
const DefaultRetentionDays = 180

// Default returns the configuration used when there is no file.
func Default() Config {
	c := Config{Store: Store{RetentionDays: DefaultRetentionDays}}
	c.fill()
	return c
}

// DefaultDataDir returns the data directory used when none is configured.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "takedown")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		return filepath.Join(home, ".local", "share", "takedown")
	}
	return "takedown-data"
}

// The default pipeline.batch_size: batchPerMB events per MiB of
// store.memory_limit_mb, at most one DuckDB row group
// (dbfile.RowGroupSize, which this package does not import).
const (
	rowGroupSize = 122880
	batchPerMB   = 120
)

// fill sets the defaults that this package owns (see "Where defaults
// live" in the package doc) in fields left empty.
func (c *Config) fill() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.Sensor == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "sensor-1"
		}
		c.Sensor = h
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.API.Listen == "" {
		c.API.Listen = "127.0.0.1:8480"
	}
	if c.API.TokenFile == "" {
		c.API.TokenFile = filepath.Join(c.DataDir, "api.token")
	}
	c.setListenerDefaults()
	if c.Store.Path == "" {
		c.Store.Path = filepath.Join(c.DataDir, "takedown.duckdb")
	}
	if c.Store.Engine == "" {
		c.Store.Engine = EngineDuckDB
	}
	if c.DNS.Listen == nil {
		c.DNS.Listen = []string{"127.0.0.1:5300"}
	}
	if c.DNS.NameServers == nil {
		c.DNS.NameServers = []NameServer{{Name: "ns1.sinkhole.invalid", Addrs: []string{"127.0.0.1"}}}
	}
	if c.DNS.A == nil {
		c.DNS.A = []string{"127.0.0.1"}
	}
	if c.DNS.AAAA == nil {
		c.DNS.AAAA = []string{"::1"}
	}
	if c.DNS.Hostmaster == "" {
		c.DNS.Hostmaster = "hostmaster.sinkhole.invalid"
	}
	if c.DNS.RRL.ResponsesPerSecond == 0 {
		c.DNS.RRL.ResponsesPerSecond = 20
	}
	if c.DNS.RRL.ErrorsPerSecond == 0 && c.DNS.RRL.ResponsesPerSecond > 0 {
		c.DNS.RRL.ErrorsPerSecond = c.DNS.RRL.ResponsesPerSecond
	}
	if c.DNS.RRL.SignedPerSecond == 0 && c.DNS.RRL.ResponsesPerSecond > 0 {
		c.DNS.RRL.SignedPerSecond = 5 * c.DNS.RRL.ResponsesPerSecond
	}
	if c.DNS.RRL.Slip == 0 {
		c.DNS.RRL.Slip = 2
	}
	c.fillDNSSEC()
	if c.Transfer.Listen == nil {
		c.Transfer.Listen = []string{"127.0.0.1:5301"}
	}
	if c.Pipeline.QuarantineDir == "" {
		c.Pipeline.QuarantineDir = filepath.Join(c.DataDir, "quarantine")
	}
	if c.Pipeline.SpoolDir == "" {
		c.Pipeline.SpoolDir = filepath.Join(c.DataDir, "spool")
	}
	if c.Store.MemoryLimitMB == 0 {
		c.Store.MemoryLimitMB = 192
	}
	if c.Listen.HTTP == nil {
		c.Listen.HTTP = []string{"127.0.0.1:8080"}
	}
	if c.Listen.HTTPS == nil {
		c.Listen.HTTPS = []string{"127.0.0.1:8443"}
	}
	if c.Listen.SMTP == nil {
		c.Listen.SMTP = []string{"127.0.0.1:2525"}
	}
	if c.Listen.CADir == "" {
		c.Listen.CADir = filepath.Join(c.DataDir, "ca")
	}
	if c.Pipeline.DiskReserveMB == 0 {
		c.Pipeline.DiskReserveMB = 512
	}
	if c.Pipeline.BatchSize == 0 {
		c.Pipeline.BatchSize = rowGroupSize
		if mb := c.Store.MemoryLimitMB; mb > 0 {
			c.Pipeline.BatchSize = min(rowGroupSize, batchPerMB*mb)
		}
	}
	if c.Reports.Send == nil {
		on := c.Mail.Relay != ""
		c.Reports.Send = &on
	}
	if c.Pipeline.DrainTimeoutMS == 0 {
		c.Pipeline.DrainTimeoutMS = 10000
	}
	if c.RPZ.Policy == "" {
		c.RPZ.Policy = "nxdomain"
	}
	if c.NATS.Replicas == 0 {
		c.NATS.Replicas = 1
		if len(c.NATS.Servers) >= 3 {
			c.NATS.Replicas = 3
		}
	}
	if c.NATS.MaxStreamMB == 0 {
		c.NATS.MaxStreamMB = 10240
	}
	c.fillEvidence()
}

// Validate checks the values; every problem is reported with its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if err := checkHostPort(c.API.Listen); err != nil {
		bad("api.listen", "%q: %v", c.API.Listen, err)
	}
	if c.Metrics.Listen != "" {
		if err := checkHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%q: %v", c.Metrics.Listen, err)
		}
	}
	for i, l := range c.DNS.Listen {
		if err := checkHostPort(l); err != nil {
			bad(fmt.Sprintf("dns.listen[%d]", i), "%q: %v", l, err)
		}
	}
	for i, ns := range c.DNS.NameServers {
		if !isDomain(ns.Name) {
			bad(fmt.Sprintf("dns.nameservers[%d].name", i), "%q is not a domain name", ns.Name)
		}
		checkAddrs(bad, fmt.Sprintf("dns.nameservers[%d].addrs", i), ns.Addrs, 0)
	}
	checkAddrs(bad, "dns.a", c.DNS.A, 4)
	checkAddrs(bad, "dns.aaaa", c.DNS.AAAA, 6)
	if len(c.DNS.A)+len(c.DNS.AAAA) == 0 && len(c.DNS.Listen) > 0 {
		bad("dns.a", "give at least one sinkhole address in dns.a or dns.aaaa")
	}
	if !isDomain(c.DNS.Hostmaster) {
		bad("dns.hostmaster", "%q is not a domain name", c.DNS.Hostmaster)
	}
	if r := c.DNS.RRL; r.ResponsesPerSecond < -1 || r.Slip < 0 || r.IPv4Prefix != 0 && (r.IPv4Prefix < 8 || r.IPv4Prefix > 32) ||
		r.IPv6Prefix != 0 && (r.IPv6Prefix < 16 || r.IPv6Prefix > 128) {
		bad("dns.rrl", "responses_per_second ≥ -1, slip ≥ 0, ipv4_prefix 8–32, ipv6_prefix 16–128 (0: the default); got %+v", r)
	}
	if r := c.DNS.RRL.SignedPerSecond; r < -1 {
		bad("dns.rrl.signed_per_second", "%d: want -1 (off), 0 (5 × responses_per_second) or a rate", r)
	}
	if c.DNS.RRL.ErrorsPerSecond < 0 {
		bad("dns.rrl.errors_per_second", "%d is negative", c.DNS.RRL.ErrorsPerSecond)
	}
	checkPrefixes(bad, "dns.rrl.exempt", c.DNS.RRL.Exempt)
	c.checkDNSSEC(bad)
	for i, l := range c.Transfer.Listen {
		if err := checkHostPort(l); err != nil {
			bad(fmt.Sprintf("transfer.listen[%d]", i), "%q: %v", l, err)
		}
	}
	for i, l := range c.Transfer.Notify {
		if err := checkHostPort(l); err != nil {
			bad(fmt.Sprintf("transfer.notify[%d]", i), "%q: %v", l, err)
		}
	}
	checkPrefixes(bad, "transfer.allow_from", c.Transfer.AllowFrom)
	checkPrefixes(bad, "transfer.allow_unsigned", c.Transfer.AllowUnsigned)
	keys := map[string]bool{}
	for i, k := range c.Transfer.TSIGKeys {
		key := fmt.Sprintf("transfer.tsig_keys[%d]", i)
		if !isDomain(k.Name) {
			bad(key+".name", "%q is not a key name (a domain name)", k.Name)
		}
		if (k.Secret == "") == (k.SecretFile == "") {
			bad(key, "give exactly one of secret and secret_file")
		}
		if k.Secret != "" {
			if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil {
				bad(key+".secret", "not base64")
			}
		}
		keys[strings.TrimSuffix(strings.ToLower(k.Name), ".")] = true
	}
	if n := strings.TrimSuffix(strings.ToLower(c.Transfer.NotifyKey), "."); n != "" && !keys[n] {
		bad("transfer.notify_key", "%q is not one of transfer.tsig_keys", c.Transfer.NotifyKey)
	}
	if c.RPZ.Zone != "" && !isDomain(c.RPZ.Zone) {
		bad("rpz.zone", "%q is not a domain name", c.RPZ.Zone)
	}
	if p := c.RPZ.Policy; p != "nxdomain" && p != "redirect" {
		bad("rpz.policy", "%q is not nxdomain or redirect", p)
	}
	for name, p := range c.RPZ.Cases {
		if p != "nxdomain" && p != "redirect" {
			bad("rpz.cases."+name, "%q is not nxdomain or redirect", p)
		}
	}
	if c.Delegation.Resolver != "" {
		if err := checkHostPort(c.Delegation.Resolver); err != nil {
			bad("delegation.resolver", "%q: %v", c.Delegation.Resolver, err)
		}
	}
	if c.Store.MemoryLimitMB < -1 || c.Store.MemoryLimitMB > 0 && c.Store.MemoryLimitMB < 64 {
		bad("store.memory_limit_mb", "%d is not -1 or at least 64", c.Store.MemoryLimitMB)
	}
	if c.Store.RetentionDays < 0 {
		bad("store.retention_days", "%d is negative; use 0 to keep events forever", c.Store.RetentionDays)
	}
	c.checkStore(bad)
	enrichFiles := map[string]string{}
	for _, list := range []struct {
		key   string
		paths []string
	}{{"enrich.databases", c.Enrich.Databases}, {"enrich.abuse_files", c.Enrich.AbuseFiles}, {"enrich.rir_files", c.Enrich.RIRFiles}} {
		for i, p := range list.paths {
			key := fmt.Sprintf("%s[%d]", list.key, i)
			if strings.TrimSpace(p) == "" {
				bad(key, "empty path")
			} else if first, dup := enrichFiles[p]; dup {
				bad(key, "%s is already %s", p, first)
			} else {
				enrichFiles[p] = key
			}
		}
	}
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"listen.http", c.Listen.HTTP}, {"listen.https", c.Listen.HTTPS}, {"listen.smtp", c.Listen.SMTP},
		{"listen.tcp", c.Listen.TCP}, {"listen.udp", c.Listen.UDP}} {
		for i, a := range l.addrs {
			if err := checkHostPort(a); err != nil {
				bad(fmt.Sprintf("%s[%d]", l.key, i), "%q: %v", a, err)
			}
		}
	}
	c.checkListeners(bad)
	if c.Listen.DefaultStatus != 0 && c.Listen.DefaultStatus != 200 && c.Listen.DefaultStatus != 404 {
		bad("listen.default_status", "%d is not 200 or 404", c.Listen.DefaultStatus)
	}
	if c.Listen.DeferAcceptS < -1 || c.Listen.DeferAcceptS > 60 {
		bad("listen.defer_accept_s", "%d is not from -1 to 60 (0: 1 s, -1: off)", c.Listen.DeferAcceptS)
	}
	if c.Listen.HTTPLoops < -1 {
		bad("listen.http_loops", "%d is below -1 (0: one per two CPUs, -1: none)", c.Listen.HTTPLoops)
	}
	if c.Listen.MaxConns < -1 || c.Listen.MaxConnsPerIP < -1 || c.Listen.HeadBytes < -1 || c.Listen.MaxBodyBytes < -1 {
		bad("listen", "limits must be positive (or -1 for none)")
	}
	if c.Pipeline.SpoolMaxMB < 0 {
		bad("pipeline.spool_max_mb", "%d is negative", c.Pipeline.SpoolMaxMB)
	}
	if c.Pipeline.SyncMS < -1 {
		bad("pipeline.sync_ms", "%d must be -1 (fsync every write) or more", c.Pipeline.SyncMS)
	}
	if c.Pipeline.SpoolFlushMS < -1 || c.Pipeline.SpoolFlushMS > 1000 {
		bad("pipeline.spool_flush_ms", "%d is not from 1 to 1000 (or -1: write every event before its sink answers)", c.Pipeline.SpoolFlushMS)
	}
	if c.Pipeline.DiskReserveMB < -1 {
		bad("pipeline.disk_reserve_mb", "%d must be -1 (no reserve) or more", c.Pipeline.DiskReserveMB)
	}
	if c.Pipeline.MaxLagS < 0 || c.Pipeline.MaxLagS > 3600 {
		bad("pipeline.max_lag_s", "%d is not from 1 to 3600", c.Pipeline.MaxLagS)
	}
	if c.Pipeline.BatchSize < 0 || c.Pipeline.BatchSize > 1<<22 {
		bad("pipeline.batch_size", "%d is not from 1 to 4194304", c.Pipeline.BatchSize)
	}
	if c.Pipeline.BackgroundCPUs < 0 {
		bad("pipeline.background_cpus", "%d is negative", c.Pipeline.BackgroundCPUs)
	}
	if c.Pipeline.FlushMS < 0 {
		bad("pipeline.flush_ms", "%d is negative", c.Pipeline.FlushMS)
	}
	if c.Reports.FeedPerMinute < 0 || c.Reports.FeedBurst < 0 {
		bad("reports", "feed_per_minute and feed_burst must be at least 1 (0: the default); got %d and %d", c.Reports.FeedPerMinute, c.Reports.FeedBurst)
	}
	if c.Reports.Days < 0 || c.Reports.Days > 3660 {
		bad("reports.days", "%d is not from 1 to 3660", c.Reports.Days)
	}
	if c.Dashboard.SessionHours < 0 || c.Dashboard.SessionHours > 24*30 {
		bad("dashboard.session_hours", "%d is not from 1 to 720", c.Dashboard.SessionHours)
	}
	if c.Dashboard.IdleMinutes < 0 || c.Dashboard.IdleMinutes > 24*60 {
		bad("dashboard.idle_minutes", "%d is not from 1 to 1440", c.Dashboard.IdleMinutes)
	}
	if c.Dashboard.RefreshMS != 0 && (c.Dashboard.RefreshMS < 200 || c.Dashboard.RefreshMS > 60_000) {
		bad("dashboard.refresh_ms", "%d is not from 200 to 60000", c.Dashboard.RefreshMS)
	}
	if d := c.Dashboard.DevDir; d != "" {
		if fi, err := os.Stat(filepath.Join(d, "index.html")); err != nil || fi.IsDir() {
			bad("dashboard.dev_dir", "%q has no index.html", d)
		}
	}
	switch c.Mail.TLS {
	case "", "required", "opportunistic", "none", "smtps":
	default:
		bad("mail.tls", "%q is not one of required, opportunistic, none, smtps", c.Mail.TLS)
	}
	if c.Mail.Relay != "" {
		if _, _, err := net.SplitHostPort(c.Mail.Relay); err != nil {
			bad("mail.relay", "%q is not host:port", c.Mail.Relay)
		}
		if c.Mail.From == "" {
			bad("mail.from", "the reports need an author address when mail.relay is set")
		} else if _, err := mail.ParseAddress(c.Mail.From); err != nil {
			bad("mail.from", "%q is not an e-mail address: %v", c.Mail.From, err)
		}
	}
	if c.Mail.PGPKeyFile != "" && c.Mail.SMIMECertFile != "" {
		bad("mail", "sign with pgp_key_file or smime_cert_file, not both")
	}
	if (c.Mail.SMIMECertFile == "") != (c.Mail.SMIMEKeyFile == "") {
		bad("mail", "smime_cert_file and smime_key_file go together")
	}
	if c.Pipeline.DrainTimeoutMS < 0 || c.Pipeline.DrainTimeoutMS > 600000 {
		bad("pipeline.drain_timeout_ms", "%d is not from 1 to 600000 (10 minutes)", c.Pipeline.DrainTimeoutMS)
	}
	if strings.ContainsAny(c.Sensor, " \t\n,\"") || len(c.Sensor) > 64 {
		bad("sensor", "%q must be at most 64 characters without spaces, commas or quotes", c.Sensor)
	}
	c.checkRole(bad)
	c.checkEvidence(bad)
	c.checkHTTPListeners(bad)
	return errors.Join(errs...)
}

func checkAddrs(bad func(key, format string, args ...any), key string, addrs []string, family int) {
	for i, a := range addrs {
		ip, err := netip.ParseAddr(a)
		switch {
		case err != nil:
			bad(fmt.Sprintf("%s[%d]", key, i), "%q is not an IP address", a)
		case family == 4 && !ip.Is4():
			bad(fmt.Sprintf("%s[%d]", key, i), "%q is not an IPv4 address", a)
		case family == 6 && !ip.Is6():
			bad(fmt.Sprintf("%s[%d]", key, i), "%q is not an IPv6 address", a)
		}
	}
}

func checkPrefixes(bad func(key, format string, args ...any), key string, ps []string) {
	for i, p := range ps {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("%s[%d]", key, i), "%q is not a CIDR prefix such as 192.0.2.0/24", p)
		}
	}
}

// isDomain reports whether s looks like a domain name: dot-separated
// labels of letters, digits, '-' and '_', each 1–63 bytes.
func isDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("host %q is not an IP address", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// WithDataDir returns c moved to another data directory: the paths that
// derive from it follow unless the file set them.
func WithDataDir(c Config, dir string) (Config, error) {
	old := c.DataDir
	c.DataDir = dir
	if c.Store.Path == filepath.Join(old, "takedown.duckdb") {
		c.Store.Path = filepath.Join(dir, "takedown.duckdb")
	}
	if c.Listen.CADir == filepath.Join(old, "ca") {
		c.Listen.CADir = filepath.Join(dir, "ca")
	}
	if c.Pipeline.SpoolDir == filepath.Join(old, "spool") {
		c.Pipeline.SpoolDir = filepath.Join(dir, "spool")
	}
	if c.Pipeline.QuarantineDir == filepath.Join(old, "quarantine") {
		c.Pipeline.QuarantineDir = filepath.Join(dir, "quarantine")
	}
	if c.API.TokenFile == filepath.Join(old, "api.token") {
		c.API.TokenFile = filepath.Join(dir, "api.token")
	}
	if c.Evidence.KeyFile == filepath.Join(old, "evidence.key") {
		c.Evidence.KeyFile = filepath.Join(dir, "evidence.key")
	}
	if c.Evidence.PublishDir == filepath.Join(old, "evidence", "published") {
		c.Evidence.PublishDir = filepath.Join(dir, "evidence", "published")
	}
	return c, c.Validate()
}
