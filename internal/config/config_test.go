package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/dbfile"
)

func TestParseGood(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
data_dir: /var/lib/takedown
sensor: fra-1
operator: Example CERT
log:
  level: debug
  format: json
api:
  listen: 127.0.0.1:9000
store:
  retention_days: 30
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/takedown" || c.Sensor != "fra-1" || c.Log.Level != "debug" || c.Log.Format != "json" ||
		c.API.Listen != "127.0.0.1:9000" || c.Store.RetentionDays != 30 || c.Operator != "Example CERT" {
		t.Errorf("decoded %+v", c)
	}
	if k, err := Parse("t.yaml", []byte("store:\n  retention_days: 0\n")); err != nil || k.Store.RetentionDays != 0 {
		t.Errorf("explicit retention_days: 0 must keep events forever: %v %d", err, k.Store.RetentionDays)
	}
	if c.Store.Path != "/var/lib/takedown/takedown.duckdb" || c.API.TokenFile != "/var/lib/takedown/api.token" {
		t.Errorf("paths not derived from data_dir: %q %q", c.Store.Path, c.API.TokenFile)
	}
}

func TestDefaultsAreLoopbackAndUnprivileged(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "---\n"} {
		c, err := Parse("empty.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if !strings.HasPrefix(c.API.Listen, "127.0.0.1:") {
			t.Errorf("api.listen default %q is not loopback", c.API.Listen)
		}
		port := c.API.Listen[strings.LastIndexByte(c.API.Listen, ':')+1:]
		if port < "1024" && len(port) <= 4 {
			t.Errorf("api port %s is privileged", port)
		}
		if c.DataDir == "" || c.Store.Path == "" || c.Store.RetentionDays != DefaultRetentionDays {
			t.Errorf("bad defaults %+v", c)
		}
	}
}

func TestDefaultDataDirXDG(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/xdg")
	if got := DefaultDataDir(); got != "/xdg/takedown" {
		t.Errorf("got %q", got)
	}
	t.Setenv("XDG_DATA_HOME", "relative")
	t.Setenv("HOME", "/home/u")
	if got := DefaultDataDir(); got != "/home/u/.local/share/takedown" {
		t.Errorf("relative XDG_DATA_HOME must be ignored, got %q", got)
	}
}

// parseErrorCase is a config that Parse refuses, with substrings of its
// error.
type parseErrorCase struct {
	name, doc string
	want      []string
}

// checkParseErrors runs Parse on each case's doc and checks the error.
func checkParseErrors(t *testing.T, cases []parseErrorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	checkParseErrors(t, []parseErrorCase{
		{"unknown top key", "data_dir: x\nlistn: 1\n", []string{"t.yaml:2:1", `unknown key "listn"`, "at the top level"}},
		{"unknown nested key", "api:\n  listen: 127.0.0.1:1\n  tokn: x\n", []string{"t.yaml:3:3", `unknown key "tokn"`, "in api", "token_file"}},
		{"duplicate key", "sensor: a\nsensor: b\n", []string{`t.yaml:2:1: key "sensor" given twice at the top level (first on line 1)`}},
		{"duplicate nested key", "api:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n", []string{`t.yaml:3:3: key "listen" given twice in api (first on line 2)`}},
		{"mail without author", "mail: {relay: mx.example.org:587, tls: maybe}\n", []string{"mail.from", "author", `mail.tls: "maybe"`}},
		{"mail relay no port", "mail: {relay: mx.example.org, from: a@b.example}\n", []string{`mail.relay: "mx.example.org" is not host:port`}},
		{"mail two signers", "mail: {pgp_key_file: k, smime_cert_file: c}\n", []string{"not both", "go together"}},
		{"reports limits", "reports: {feed_per_minute: -1, days: 5000}\n", []string{"feed_per_minute", "reports.days: 5000"}},
		{"wrong type", "store:\n  retention_days: lots\n", []string{"t.yaml", "line 2", "lots"}},
		{"section not mapping", "api: 5\n", []string{"t.yaml:1", "api must be a mapping"}},
		{"bad level", "log:\n  level: loud\n", []string{"t.yaml", "log.level", `"loud"`}},
		{"bad format", "log:\n  format: xml\n", []string{"log.format", `"xml"`}},
		{"bad listen", "api:\n  listen: nowhere\n", []string{"api.listen", "nowhere"}},
		{"bad port", "api:\n  listen: 127.0.0.1:99999\n", []string{"api.listen", "99999"}},
		{"negative retention", "store:\n  retention_days: -1\n", []string{"store.retention_days", "-1"}},
		{"bad yaml", "api: [\n", []string{"t.yaml"}},
		{"two documents", "sensor: a\n---\nsensor: b\n", []string{"t.yaml:2: a second YAML document; a config file holds one"}},
		{"bad second document", "sensor: a\n---\n[\n", []string{"t.yaml: ", "did not find expected node content"}},
		{"top level list", "- a\n- b\n", []string{"t.yaml:1", "the top level must be a mapping"}},
	})
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	// The example shipped in the repository must load.
	path := filepath.Join("..", "..", "takedown.example.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("example config missing: %v", err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("data_dir: /x\napi:\n  listen: 127.0.0.1:1\n"))
	f.Add([]byte("api: 5\n"))
	f.Add([]byte("dns: {rrl: {responses_per_second: 7, signed_per_second: -2}}\n"))
	f.Add([]byte("metrics: {listen: '127.0.0.1:9480'}\napi: {listen: '127.0.0.1:9480'}\n"))
	f.Add([]byte("log:\n  level: debug\n  format: json\n"))
	f.Add([]byte("a: &x {b: 1}\nc: *x\n"))
	f.Add([]byte("store: {retention_days: 3, path: p}\n"))
	f.Add([]byte("feed: {listen: '[::]:443', tls: {acme: {domains: [feed.example.org], directory_url: 'https://ca.example/d'}}}\n"))
	f.Add([]byte("dashboard: {listen: 127.0.0.1:8443, tls: {cert_file: c, key_file: k}}\napi: {tls: {cert_file: c}}\n"))
	f.Add([]byte("dns: {dnssec: {cases: [a, all], algorithm: '15', ds_ttl: 2h}}\n"))
	f.Add([]byte("store: {engine: clickhouse, clickhouse: {addrs: [127.0.0.1:9000], database: td, cluster: c, shards: [127.0.0.1:9000]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
		if c.Store.Path == "" || c.API.Listen == "" || c.DataDir == "" {
			t.Fatalf("defaults not filled: %+v", c)
		}
	})
}

func TestSinkholeSections(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
dns:
  listen: ["127.0.0.1:1053", "[::1]:1053"]
  nameservers:
    - {name: ns1.sinkhole.example, addrs: [192.0.2.53, "2001:db8::53"]}
  a: [192.0.2.1]
  aaaa: []
  rrl: {responses_per_second: -1}
transfer:
  listen: []
  tsig_keys: [{name: xfr-key., secret: "c2VjcmV0c2VjcmV0c2VjcmV0"}]
  notify_key: xfr-key
rpz:
  zone: rpz.example.net
  cases: {waledac-2010: redirect}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DNS.Listen) != 2 || c.DNS.NameServers[0].Addrs[1] != "2001:db8::53" || len(c.DNS.AAAA) != 0 || c.DNS.RRL.ResponsesPerSecond != -1 {
		t.Errorf("dns %+v", c.DNS)
	}
	if c.Transfer.Listen == nil || len(c.Transfer.Listen) != 0 {
		t.Errorf("transfer.listen: [] must turn transfers off, got %#v", c.Transfer.Listen)
	}
	if c.RPZ.Policy != "nxdomain" || c.RPZ.Cases["waledac-2010"] != "redirect" {
		t.Errorf("rpz %+v", c.RPZ)
	}
	d := Default()
	if d.DNS.Listen[0] != "127.0.0.1:5300" || d.Transfer.Listen[0] != "127.0.0.1:5301" || d.DNS.A[0] != "127.0.0.1" {
		t.Errorf("defaults %+v %+v", d.DNS, d.Transfer)
	}
	if r := d.DNS.RRL; r.ResponsesPerSecond != 20 || r.ErrorsPerSecond != 20 || r.SignedPerSecond != 100 || r.Slip != 2 || len(r.Exempt) != 0 {
		t.Errorf("rrl defaults %+v", r)
	}
	c, err = Parse("t.yaml", []byte("dns:\n  rrl: {responses_per_second: 50, errors_per_second: 5, exempt: [192.0.2.0/24, \"2001:db8::/32\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.DNS.RRL; r.ResponsesPerSecond != 50 || r.ErrorsPerSecond != 5 || len(r.Exempt) != 2 {
		t.Errorf("rrl %+v", r)
	}
	if c, err = Parse("t.yaml", []byte("dns:\n  rrl: {responses_per_second: 50}\n")); err != nil || c.DNS.RRL.ErrorsPerSecond != 50 {
		t.Errorf("errors_per_second does not follow responses_per_second: %+v %v", c.DNS.RRL, err)
	}
	if c, err = Parse("t.yaml", []byte("dns:\n  rrl: {responses_per_second: 50}\n")); err != nil || c.DNS.RRL.SignedPerSecond != 250 {
		t.Errorf("signed_per_second is not 5 × responses_per_second: %+v %v", c.DNS.RRL, err)
	}
	if c, err = Parse("t.yaml", []byte("dns:\n  rrl: {signed_per_second: -1}\n")); err != nil || c.DNS.RRL.SignedPerSecond != -1 {
		t.Errorf("signed_per_second: -1 must turn the budget off: %+v %v", c.DNS.RRL, err)
	}
	for _, tc := range []struct{ doc, want string }{
		{"dns:\n  a: ['::1']\n", `dns.a[0]: "::1" is not an IPv4 address`},
		{"dns:\n  listen: [nope]\n", `dns.listen[0]`},
		{"dns:\n  nameservers: [{name: 'bad name', addrs: []}]\n", `dns.nameservers[0].name`},
		{"dns:\n  rrl: {ipv4_prefix: 40}\n", `dns.rrl`},
		{"dns:\n  rrl: {exempt: [192.0.2.0/24, 198.51.100.300/24]}\n", `dns.rrl.exempt[1]: "198.51.100.300/24" is not a CIDR prefix`},
		{"dns:\n  rrl: {exempt: [2001:db8::1]}\n", `dns.rrl.exempt[0]: "2001:db8::1" is not a CIDR prefix`},
		{"dns:\n  rrl: {errors_per_second: -5}\n", `dns.rrl.errors_per_second: -5 is negative`},
		{"dns:\n  rrl: {signed_per_second: -2}\n", `dns.rrl.signed_per_second: -2: want -1 (off)`},
		{"transfer:\n  allow_from: [10.0.0.0]\n", `transfer.allow_from[0]`},
		{"transfer:\n  tsig_keys: [{name: k, secret: '!!'}]\n", `transfer.tsig_keys[0].secret`},
		{"transfer:\n  tsig_keys: [{name: k}]\n", `exactly one of secret and secret_file`},
		{"transfer:\n  notify_key: nokey\n", `transfer.notify_key`},
		{"rpz:\n  policy: drop\n", `rpz.policy: "drop"`},
		{"rpz:\n  cases: {x: block}\n", `rpz.cases.x`},
		{"dns:\n  nameservers: [{name: a.example, adrs: []}]\n", `unknown key "adrs" in dns.nameservers[0]`},
	} {
		_, err := Parse("t.yaml", []byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestChanged(t *testing.T) {
	a, err := Parse("a.yaml", []byte("log: {level: info}\ndns: {listen: ['127.0.0.1:53']}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := Changed(a, a); len(got) != 0 {
		t.Fatalf("Changed(a, a) = %v", got)
	}
	b, err := Parse("b.yaml", []byte(`
log: {level: debug}
dns:
  listen: ['127.0.0.1:53', '[::1]:53']
  rrl: {slip: 3}
enrich: {abuse_files: [/etc/takedown/abuse.txt]}
pipeline: {drain_timeout_ms: 30000}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(Changed(a, b), " ")
	if want := "log.level dns.listen dns.rrl.slip pipeline.drain_timeout_ms enrich.abuse_files"; got != want {
		t.Fatalf("Changed = %q, want %q", got, want)
	}
}

func TestDrainTimeoutAndEnrichDuplicates(t *testing.T) {
	c, err := Parse("t.yaml", nil)
	if err != nil || c.Pipeline.DrainTimeoutMS != 10000 {
		t.Fatalf("default drain_timeout_ms %d, %v", c.Pipeline.DrainTimeoutMS, err)
	}
	for doc, want := range map[string]string{
		"pipeline: {drain_timeout_ms: -1}":                         "pipeline.drain_timeout_ms: -1",
		"pipeline: {background_cpus: -1}":                          "pipeline.background_cpus: -1",
		"listen: {http_loops: -2}":                                 "listen.http_loops: -2 is below -1",
		"listen: {defer_accept_s: 61}":                             "listen.defer_accept_s: 61 is not from -1 to 60",
		"listen: {defer_accept_s: -2}":                             "listen.defer_accept_s: -2 is not from -1 to 60",
		"enrich: {databases: [/x.mmdb], rir_files: [/y, /x.mmdb]}": "enrich.rir_files[1]: /x.mmdb is already enrich.databases[0]",
		"enrich: {abuse_files: [/a.txt, /a.txt]}":                  "enrich.abuse_files[1]: /a.txt is already enrich.abuse_files[0]",
	} {
		if _, err := Parse("t.yaml", []byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", doc, err, want)
		}
	}
}

// TestBatchSizeDefault: the default batch follows store.memory_limit_mb,
// up to one of DuckDB's row groups, the size it stores cheapest.
func TestBatchSizeDefault(t *testing.T) {
	for doc, want := range map[string]int{
		"":                               23040,
		"store: {memory_limit_mb: 1024}": dbfile.RowGroupSize,
		"store: {memory_limit_mb: 4096}": dbfile.RowGroupSize,
		"store: {memory_limit_mb: -1}":   dbfile.RowGroupSize,
		"store: {memory_limit_mb: 64}":   7680,
		"pipeline: {batch_size: 1000}":   1000,
	} {
		c, err := Parse("t.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if c.Pipeline.BatchSize != want {
			t.Errorf("%q: pipeline.batch_size %d, want %d", doc, c.Pipeline.BatchSize, want)
		}
	}
	if rowGroupSize != dbfile.RowGroupSize {
		t.Errorf("rowGroupSize %d, want dbfile.RowGroupSize %d", rowGroupSize, dbfile.RowGroupSize)
	}
}

// TestListenersOnOnePort: two listeners of one protocol on one port of
// overlapping addresses are an error naming both keys and the address;
// another protocol, another address or port 0 is not.
func TestListenersOnOnePort(t *testing.T) {
	for doc, want := range map[string]string{
		"listen: {http: [127.0.0.1:8080], smtp: [127.0.0.1:8080]}": "listen.smtp[0]: 127.0.0.1:8080 is on the TCP port of listen.http[0] (127.0.0.1:8080): two listeners cannot share a port",
		"api: {listen: 127.0.0.1:5300}":                            "dns.listen[0]: 127.0.0.1:5300 is on the TCP port of api.listen (127.0.0.1:5300)",
		"dns: {listen: [127.0.0.1:5301]}":                          "transfer.listen[0]: 127.0.0.1:5301 is on the TCP port of dns.listen[0] (127.0.0.1:5301)",
		"listen: {udp: [127.0.0.1:5300]}":                          "listen.udp[0]: 127.0.0.1:5300 is on the UDP port of dns.listen[0] (127.0.0.1:5300)",
		"listen: {tcp: ['0.0.0.0:8443']}":                          "listen.tcp[0]: 0.0.0.0:8443 is on the TCP port of listen.https[0] (127.0.0.1:8443)",
		"listen: {tcp: ['[::]:2525']}":                             "listen.tcp[0]: [::]:2525 is on the TCP port of listen.smtp[0] (127.0.0.1:2525)",
		"listen: {tcp: [':8080']}":                                 "listen.tcp[0]: :8080 is on the TCP port of listen.http[0] (127.0.0.1:8080)",
		"listen: {tcp: ['localhost:8480']}":                        "listen.tcp[0]: localhost:8480 is on the TCP port of api.listen (127.0.0.1:8480)",
		"listen: {tcp: ['[::ffff:127.0.0.1]:8080']}":               "listen.tcp[0]: [::ffff:127.0.0.1]:8080 is on the TCP port of listen.http[0]",
		"listen: {http: [127.0.0.1:9000, 127.0.0.1:9000]}":         "listen.http[1]: 127.0.0.1:9000 is on the TCP port of listen.http[0] (127.0.0.1:9000)",
		"listen: {udp: [0.0.0.0:7000, 127.0.0.9:7000]}":            "listen.udp[1]: 127.0.0.9:7000 is on the UDP port of listen.udp[0] (0.0.0.0:7000)",
	} {
		if _, err := Parse("t.yaml", []byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", doc, err, want)
		}
	}
	for _, doc := range []string{
		"listen: {udp: [127.0.0.1:8080]}",                                   // UDP beside the HTTP listener's TCP
		"listen: {tcp: [127.0.0.2:8080]}",                                   // another address
		"listen: {tcp: ['[::1]:8080']}",                                     // another family
		"listen: {http: [127.0.0.1:0], https: [127.0.0.1:0], smtp: [':0']}", // the system picks the ports
		"listen: {http: ['0.0.0.0:80'], tcp: ['[2001:db8::1]:80']}",
		"listen: {udp: ['0.0.0.0:9999'], tcp: ['0.0.0.0:9999']}",
	} {
		if _, err := Parse("t.yaml", []byte(doc)); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
}
