package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRoleErrors: each role's config problem is named with its key and
// what to do.
func TestRoleErrors(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.creds")
	os.WriteFile(open, []byte("central:secret\n"), 0o644)
	os.Chmod(open, 0o644)
	good := filepath.Join(dir, "good.creds")
	os.WriteFile(good, []byte("central:secret\n"), 0o600)
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"unknown role", "role: edge\n", []string{`role: "edge" is not one of sensor, central`}},
		{"no servers", "role: sensor\nsensor: s1\n", []string{"nats.servers: the sensor role needs at least one NATS server"}},
		{"sensor id", "role: sensor\nsensor: Sensor.One\nnats: {servers: [nats://127.0.0.1:4222]}\n", []string{`sensor: "Sensor.One" cannot name a sensor`, "DNS label"}},
		{"world-readable credentials", "role: sensor\nsensor: s1\nnats: {servers: [nats://127.0.0.1:4222], credentials: " + open + "}\n",
			[]string{"nats.credentials", "readable by others (mode 0644): chmod 600"}},
		{"remote without TLS or credentials", "role: sensor\nsensor: s1\nnats: {servers: [nats://nats1.example.org:4222]}\n",
			[]string{"nats.credentials: a server beyond this machine needs a credential", "nats.tls.ca_file"}},
		{"bad server", "role: central\ncentral: {sensors: [s1]}\nnats: {servers: [http://127.0.0.1:4222]}\n", []string{`nats.servers[0]: "http://127.0.0.1:4222": scheme "http"`}},
		{"central without sensors", "role: central\nnats: {servers: [127.0.0.1:4222]}\n", []string{"central.sensors: name the sensors"}},
		{"central bad sensor", "role: central\nnats: {servers: [127.0.0.1:4222]}\ncentral: {sensors: [s1, s1, S_2]}\n", []string{`central.sensors[1]: "s1" is named twice`, `central.sensors[2]: "S_2" cannot name a sensor`}},
		{"central bad name", "role: central\nnats: {servers: [127.0.0.1:4222]}\ncentral: {sensors: [s1], name: Central_1}\n", []string{`central.name: "Central_1" cannot name a central`}},
		{"replicas", "role: central\nnats: {servers: [127.0.0.1:4222], replicas: 2}\ncentral: {sensors: [s1]}\n", []string{"nats.replicas: 2 is not 1, 3 or 5"}},
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
	// What does validate: a sensor on loopback without TLS, a remote one
	// with both, a central.
	for _, doc := range []string{
		"role: sensor\nsensor: s1\nnats: {servers: [nats://127.0.0.1:4222]}\n",
		"role: sensor\nsensor: fra-1\nnats: {servers: [tls://nats1.example.org:4222, tls://nats2.example.org:4222, tls://nats3.example.org:4222], credentials: " + good + ", tls: {ca_file: /etc/takedown/nats-ca.pem}}\n",
		"role: central\nnats: {servers: [127.0.0.1:4222]}\ncentral: {sensors: [s1, s2]}\n",
	} {
		c, err := Parse("t.yaml", []byte(doc))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
		}
		if strings.Contains(doc, "nats3") && c.NATS.Replicas != 3 {
			t.Errorf("three servers: replicas %d, want 3", c.NATS.Replicas)
		}
	}
}

// TestDeployExamples: the deploy/ examples of a sensor and a central are
// valid configs (with a credential file where they name one).
func TestDeployExamples(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "nats.creds")
	if err := os.WriteFile(creds, []byte("central:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sensor.yaml", "central.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		doc := strings.ReplaceAll(string(b), "/etc/takedown/nats.creds", creds)
		c, err := Parse(name, []byte(doc))
		if err != nil {
			t.Errorf("deploy/%s: %v", name, err)
			continue
		}
		if c.Role == RoleSingle || len(c.NATS.Servers) != 3 || c.NATS.Replicas != 3 {
			t.Errorf("deploy/%s: role %q, %d servers, %d replicas", name, c.Role, len(c.NATS.Servers), c.NATS.Replicas)
		}
	}
}
