package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreEngineErrors: each problem of store.engine and
// store.clickhouse is named with its key and what to do.
func TestStoreEngineErrors(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.pw")
	os.WriteFile(open, []byte("secret\n"), 0o644)
	os.Chmod(open, 0o644)
	empty := filepath.Join(dir, "empty.pw")
	os.WriteFile(empty, []byte("# no password\n\n"), 0o600)
	good := filepath.Join(dir, "good.pw")
	os.WriteFile(good, []byte("secret\n"), 0o600)
	ch := "store:\n  engine: clickhouse\n  clickhouse: "
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"unknown engine", "store: {engine: sqlite}\n", []string{`store.engine: "sqlite" is not one of duckdb, clickhouse`}},
		{"unknown key", ch + "{addrs: [127.0.0.1:9000], user: x}\n", []string{`unknown key "user"`, "store.clickhouse", "username"}},
		{"no servers", "store: {engine: clickhouse}\n", []string{"store.clickhouse.addrs: store.engine clickhouse needs at least one server"}},
		{"bad address", ch + "{addrs: [127.0.0.1, 'ch 1:9000', 127.0.0.1:0]}\n", []string{
			`store.clickhouse.addrs[0]: "127.0.0.1": not host:port`, `store.clickhouse.addrs[1]: "ch 1:9000": host "ch 1"`,
			`store.clickhouse.addrs[2]: "127.0.0.1:0": port "0"`}},
		{"twice", ch + "{addrs: [127.0.0.1:9000, 127.0.0.1:9000]}\n", []string{`store.clickhouse.addrs[1]: "127.0.0.1:9000" is named twice`}},
		{"world-readable password", ch + "{addrs: [127.0.0.1:9000], username: takedown, password_file: " + open + "}\n",
			[]string{"store.clickhouse.password_file", "readable by others (mode 0644): chmod 600"}},
		{"empty password", ch + "{addrs: [127.0.0.1:9000], username: takedown, password_file: " + empty + "}\n",
			[]string{"store.clickhouse.password_file", "is empty"}},
		{"missing password file", ch + "{addrs: [127.0.0.1:9000], username: takedown, password_file: " + filepath.Join(dir, "nope") + "}\n",
			[]string{"store.clickhouse.password_file", "no such file"}},
		{"password without user", ch + "{addrs: [127.0.0.1:9000], password_file: " + good + "}\n", []string{"store.clickhouse.username: a password_file"}},
		{"remote without TLS or password", ch + "{addrs: [ch1.example.org:9440]}\n",
			[]string{"store.clickhouse.password_file: a server beyond this machine", "store.clickhouse.tls.ca_file: a server beyond this machine"}},
		{"half a client certificate", ch + "{addrs: [127.0.0.1:9000], tls: {cert_file: " + good + "}}\n", []string{"store.clickhouse.tls: cert_file and key_file go together"}},
		{"missing CA", ch + "{addrs: [127.0.0.1:9000], tls: {ca_file: " + filepath.Join(dir, "ca.pem") + "}}\n", []string{"store.clickhouse.tls.ca_file", "no such file"}},
		{"database name", ch + "{addrs: [127.0.0.1:9000], database: 'take-down'}\n", []string{`store.clickhouse.database: "take-down" is not a ClickHouse name`}},
		{"cluster without shards", ch + "{addrs: [127.0.0.1:9000], cluster: two}\n", []string{`store.clickhouse.shards: cluster "two" needs`}},
		{"shards without cluster", ch + "{addrs: [127.0.0.1:9000], shards: [127.0.0.1:9000, 127.0.0.1:9001]}\n", []string{"store.clickhouse.shards: shards are those of a cluster"}},
		{"bad shard", ch + "{addrs: [127.0.0.1:9000], cluster: two, shards: [127.0.0.1:9000, x]}\n", []string{`store.clickhouse.shards[1]: "x": not host:port`}},
		{"dial timeout", ch + "{addrs: [127.0.0.1:9000], dial_timeout_ms: -5}\n", []string{"store.clickhouse.dial_timeout_ms: -5 is not from 1 to 600000"}},
	} {
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
	// What validates: the default, one node on loopback without a
	// password, a remote cluster with a user, a password and TLS.
	for _, tc := range []struct{ doc, engine string }{
		{"", EngineDuckDB},
		{"store: {engine: duckdb, clickhouse: {addrs: [nonsense]}}\n", EngineDuckDB},
		{ch + "{addrs: ['127.0.0.1:9000', 'localhost:9001']}\n", EngineClickHouse},
		{ch + "{addrs: [ch1.example.org:9440, '[2001:db8::1]:9440'], database: takedown_prod, username: takedown, password_file: " + good +
			", tls: {ca_file: " + good + ", server_name: ch.example.org}, cluster: events_2x1, shards: [ch1.example.org:9440, ch2.example.org:9440], dial_timeout_ms: 2000}\n", EngineClickHouse},
	} {
		c, err := Parse("t.yaml", []byte(tc.doc))
		if err != nil {
			t.Errorf("%s: %v", tc.doc, err)
			continue
		}
		if c.Store.Engine != tc.engine {
			t.Errorf("%s: engine %q, want %q", tc.doc, c.Store.Engine, tc.engine)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(p, []byte("# the ClickHouse password of takedown\n\n  s3cret word \nnext\n"), 0o400)
	if got, err := ReadSecretFile(p); err != nil || got != "s3cret word" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := ReadSecretFile(filepath.Dir(p)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

// TestDeployCentralClickHouse: the commented ClickHouse section of
// deploy/central.yaml, uncommented, is a valid config.
func TestDeployCentralClickHouse(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range []string{"nats.creds", "clickhouse.password", "clickhouse-ca.pem"} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte("central:secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files["/etc/takedown/"+f] = p
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "central.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if l == "# store:" {
			in = true
		}
		if in && !strings.HasPrefix(l, "#") {
			in = false
		}
		if in {
			l = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		}
		lines = append(lines, l)
	}
	doc := strings.Join(lines, "\n")
	for from, to := range files {
		doc = strings.ReplaceAll(doc, from, to)
	}
	c, err := Parse("central.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if ch := c.Store.ClickHouse; c.Store.Engine != EngineClickHouse || len(ch.Shards) != 2 || ch.Cluster == "" || ch.PasswordFile == "" {
		t.Errorf("the section did not decode: %+v", c.Store)
	}
}
