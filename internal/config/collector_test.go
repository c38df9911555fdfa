package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCollectorChecks: a collector needs the ClickHouse engine, a name,
// its sensors and NATS, each missing one an error that names its key.
func TestCollectorChecks(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "clickhouse.password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const base = "role: collector\n"
	nats := "nats: {servers: [nats://127.0.0.1:4222]}\n"
	central := "central: {name: c2, sensors: [s2]}\n"
	store := "store: {engine: clickhouse, clickhouse: {addrs: [127.0.0.1:9000], username: takedown, password_file: " + pw + "}}\n"
	for _, c := range []struct {
		name, doc string
		want      []string // keys the error names; none: valid
	}{
		{"valid", base + nats + central + store, nil},
		{"duckdb", base + nats + central, []string{"store.engine", "clickhouse"}},
		{"no name", base + nats + "central: {sensors: [s2]}\n" + store, []string{"central.name"}},
		{"no sensors", base + nats + "central: {name: c2}\n" + store, []string{"central.sensors"}},
		{"no nats", base + central + store, []string{"nats.servers"}},
		{"bad name", base + nats + "central: {name: C_2, sensors: [s2]}\n" + store, []string{"central.name", "collector"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("collector.yaml", []byte(c.doc))
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Role != RoleCollector {
					t.Errorf("role %q", cfg.Role)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not name %q: %v", w, err)
				}
			}
		})
	}
}

// TestDeployCollector: deploy/collector.yaml is a valid config (with its
// secret files present).
func TestDeployCollector(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "collector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, f := range []string{"nats.creds", "clickhouse.password", "clickhouse-ca.pem"} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte("central:secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		doc = strings.ReplaceAll(doc, "/etc/takedown/"+f, p)
	}
	c, err := Parse("collector.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("deploy/collector.yaml: %v", err)
	}
	if c.Role != RoleCollector || c.Central.Name == "" || len(c.Central.Sensors) == 0 || c.Store.Engine != EngineClickHouse || len(c.NATS.Servers) != 3 || c.NATS.Replicas != 3 {
		t.Errorf("deploy/collector.yaml: role %q, name %q, sensors %v, engine %q, %d servers, %d replicas",
			c.Role, c.Central.Name, c.Central.Sensors, c.Store.Engine, len(c.NATS.Servers), c.NATS.Replicas)
	}
}
