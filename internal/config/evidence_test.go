package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEvidence: the defaults per role, and each bad value an error that
// names its key.
func TestEvidence(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte("data_dir: /d\ncentral: {name: c1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Evidence
	if !e.On(RoleSingle) || !e.On(RoleCentral) || e.On(RoleCollector) || e.On(RoleSensor) {
		t.Errorf("default on: single %v central %v collector %v sensor %v", e.On(RoleSingle), e.On(RoleCentral), e.On(RoleCollector), e.On(RoleSensor))
	}
	if e.Origin != "takedown/c1" || e.KeyFile != "/d/evidence.key" || e.Interval != time.Minute ||
		e.PublishDir != filepath.Join("/d", "evidence", "published") {
		t.Errorf("defaults: %+v", e)
	}
	moved, err := WithDataDir(cfg, "/e")
	if err != nil {
		t.Fatal(err)
	}
	if moved.Evidence.KeyFile != "/e/evidence.key" || moved.Evidence.PublishDir != "/e/evidence/published" {
		t.Errorf("data dir moved: %+v", moved.Evidence)
	}

	const vkey = "takedown+a16bceac+AWUtwiwA912UO/gKeIZplYqa0bwJFITOBkPdUXl1MXyK"
	nats := "nats: {servers: [nats://127.0.0.1:4222]}\n"
	for _, c := range []struct {
		name, doc string
		want      []string // what the error names; none: valid
	}{
		{"off", "evidence: {enabled: false, interval: 0s}\n", nil},
		{"interval", "evidence: {interval: 10m}\n", nil},
		{"command", "evidence: {signer_command: [/bin/sign, -k], public_key: " + vkey + "}\n", nil},
		{"short interval", "evidence: {interval: 100ms}\n", []string{"evidence.interval", "1s"}},
		{"number interval", "evidence: {interval: 60}\n", []string{"line 1", "time.Duration"}},
		{"both signers", "evidence: {key_file: /k, signer_command: [/bin/sign], public_key: " + vkey + "}\n", []string{"evidence", "not both"}},
		{"command without key", "evidence: {signer_command: [/bin/sign]}\n", []string{"evidence.public_key"}},
		{"bad public key", "evidence: {signer_command: [/bin/sign], public_key: nope}\n", []string{"evidence.public_key", "nope"}},
		{"public key with file", "evidence: {public_key: " + vkey + "}\n", []string{"evidence.public_key", "signer_command"}},
		{"origin", "evidence: {origin: \" x\"}\n", []string{"evidence.origin"}},
		{"collector", "role: collector\n" + nats + "central: {name: c2, sensors: [s2]}\nstore: {engine: clickhouse}\nevidence: {enabled: true}\n",
			[]string{"evidence.enabled", "central's log"}},
		{"sensor", "role: sensor\n" + nats + "evidence: {enabled: true}\n", []string{"evidence.enabled", "sensor"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(c.doc))
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
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
