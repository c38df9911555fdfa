package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
)

// TestDNSSECCommands: serve makes a key for the case dns.dnssec signs;
// `dnssec keys`, `ds` and `rollover start|finish` through the running
// server's API, with their exit codes; a dnssec-keygen key imported.
func TestDNSSECCommands(t *testing.T) {
	cfg, dataDir, addr := setup(t)
	raw, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(raw), "  rrl: {responses_per_second: -1}\n",
		"  rrl: {responses_per_second: -1}\n  dnssec: {cases: [c1]}\n", 1)), 0o600)
	list := filepath.Join(t.TempDir(), "l.txt")
	os.WriteFile(list, []byte("seized.example.com\nother.example.net\n"), 0o600)
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1:10-cv-00156")
	mustRun(t, cfg, "cases", "add", "c2", "--court", "E.D. Va.", "--docket", "2")
	mustRun(t, cfg, "domains", "import", "--case", "c1", list)
	startServer(t, cfg, addr)

	var keys []dnssec.Info
	for deadline := time.Now().Add(10 * time.Second); len(keys) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("serve made no key for case c1")
		}
		keys = nil
		if err := json.Unmarshal([]byte(mustRun(t, cfg, "--mode", "remote", "dnssec", "keys", "--case", "c1", "--json")), &keys); err != nil {
			t.Fatal(err)
		}
	}
	k := keys[0]
	if len(keys) != 1 || k.State != dnssec.StateActive || k.Algorithm != 13 || k.Flags != 257 || k.Case != "c1" {
		t.Fatalf("keys %+v", keys)
	}
	if st, err := os.Stat(filepath.Join(dataDir, "dnssec", k.File)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
	out := mustRun(t, cfg, "dnssec", "keys")
	if !strings.Contains(out, "TAG") || !strings.Contains(out, "13 (ECDSAP256SHA256)") || !strings.Contains(out, " active ") {
		t.Errorf("dnssec keys:\n%s", out)
	}

	// The DS records: one a domain, in presentation format.
	out = mustRun(t, cfg, "dnssec", "ds", "--case", "c1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("dnssec ds:\n%s", out)
	}
	for i, zone := range []string{"other.example.net", "seized.example.com"} {
		rr, err := dns.NewRR(lines[i])
		if err != nil {
			t.Fatalf("%q: %v", lines[i], err)
		}
		want := (&dnssec.Key{Algorithm: k.Algorithm, Flags: k.Flags, PublicKey: k.PublicKey}).DS(zone)
		if ds, ok := rr.(*dns.DS); !ok || ds.Digest != want.Digest || ds.KeyTag != k.Tag || ds.Hdr.Name != zone+"." {
			t.Errorf("DS of %s: %q (%T %v), want %s", zone, lines[i], rr, rr, want)
		}
	}
	var dsj []map[string]any
	json.Unmarshal([]byte(mustRun(t, cfg, "dnssec", "ds", "--zone", "seized.example.com", "--json")), &dsj)
	if len(dsj) != 1 || dsj[0]["zone"] != "seized.example.com" || dsj[0]["digest_type"] != 2.0 || dsj[0]["key_tag"] != float64(k.Tag) {
		t.Errorf("dnssec ds --json: %v", dsj)
	}

	// A rollover: start, finish refused before the DS TTL, then forced.
	out = mustRun(t, cfg, "dnssec", "rollover", "start", "--case", "c1")
	if !strings.Contains(out, "published and active") || strings.Count(out, " IN DS ") != 4 || !strings.Contains(out, "seized.example.com. IN DS "+strconv.Itoa(int(k.Tag))+" 13 2 ") {
		t.Errorf("rollover start:\n%s", out)
	}
	// status and /metrics count the served set's keys once the step
	// reached it.
	tok, _ := os.ReadFile(filepath.Join(dataDir, "api.token"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := mustRun(t, cfg, "status")
		req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		var metrics []byte
		if resp, err := http.DefaultClient.Do(req); err == nil {
			metrics, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if strings.Contains(out, "dnssec: 1 case(s) signed; keys 2 active, 0 published, 0 retired") &&
			strings.Contains(string(metrics), `takedown_dnssec_keys{state="active"} 2`) && strings.Contains(string(metrics), "takedown_dnssec_signed_cases 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status and metrics do not count the keys:\n%s\n%s", out, metrics)
		}
	}
	for name, tc := range map[string]struct {
		code int
		args []string
		want string
	}{
		"again":       {4, []string{"dnssec", "rollover", "start", "--case", "c1"}, "rolling its keys already"},
		"too early":   {4, []string{"dnssec", "rollover", "finish", "--case", "c1"}, "caches may hold the old DS"},
		"no case":     {2, []string{"dnssec", "rollover", "finish"}, "--case"},
		"unknown":     {3, []string{"dnssec", "keys", "--case", "nope"}, "nope"},
		"zone":        {3, []string{"dnssec", "ds", "--case", "c2", "--zone", "seized.example.com"}, "not c2"},
		"no keys":     {3, []string{"dnssec", "rollover", "start", "--case", "c2"}, "has no keys"},
		"bad keyfile": {1, []string{"dnssec", "import", "--case", "c2", list}, `l.txt`},
	} {
		r := run(t, cfg, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, want %d; stderr %q, want %q", name, r.code, tc.code, r.stderr, tc.want)
		}
	}
	out = mustRun(t, cfg, "dnssec", "rollover", "finish", "--case", "c1", "--force", "--reason", "test")
	if !strings.Contains(out, "retired and removed") || strings.Count(out, " IN DS ") != 2 {
		t.Errorf("rollover finish:\n%s", out)
	}
	keys = nil
	json.Unmarshal([]byte(mustRun(t, cfg, "dnssec", "keys", "--case", "c1", "--json")), &keys)
	if len(keys) != 2 || keys[0].State != dnssec.StateRemoved || keys[1].State != dnssec.StateActive {
		t.Errorf("after the rollover: %+v", keys)
	}
	if out := mustRun(t, cfg, "audit", "list"); !strings.Contains(out, "dnssec.finish") || !strings.Contains(out, "dnssec.key-made") {
		t.Errorf("audit log:\n%s", out)
	}

	// A key that dnssec-keygen made, as case c2's first key.
	kdir := t.TempDir()
	name, err := exec.Command("dnssec-keygen", "-q", "-a", "ED25519", "-f", "KSK", "-K", kdir, "x.example").Output()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(kdir, strings.TrimSpace(string(name))+".private")
	out = mustRun(t, cfg, "dnssec", "import", "--case", "c2", file)
	if !strings.Contains(out, "ED25519) published and active") {
		t.Errorf("import:\n%s", out)
	}
	if r := run(t, cfg, "dnssec", "import", "--case", "c2", file); r.code != 4 {
		t.Errorf("import again: exit %d %s", r.code, r.stderr)
	}
}
