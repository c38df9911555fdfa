package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/cli"
)

// snakeKey is what every key of --json output looks like.
var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkScriptJSON fails t unless out is JSON whose object keys are all
// snake_case and in which no zero time appears.
func checkScriptJSON(t *testing.T, label, out string) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Errorf("%s: not JSON: %v\n%s", label, err, out)
		return
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !snakeKey.MatchString(k) {
					t.Errorf("%s: key %q at %s is not snake_case", label, k, path)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case string:
			if strings.HasPrefix(v, "0001-01-01") {
				t.Errorf("%s: zero time %q at %s", label, v, path)
			}
		}
	}
	walk("$", v)
}

// logAudit enters the audit log into the evidence log and signs a
// checkpoint, as serve does at each of its checkpoints.
func logAudit(t *testing.T, cfgPath string) {
	t.Helper()
	ctx := context.Background()
	local, lg := openEvidenceLog(t, cfgPath)
	defer local.Close()
	if _, err := lg.FollowAudit(ctx, local.Registry); err != nil {
		t.Fatal(err)
	}
	if _, err := lg.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
}

// nxResolver answers every query NXDOMAIN, for `domains verify`.
func nxResolver(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestJSONOutputEveryCommand runs every command that has --json, with
// data for it to print, and checks the rules of README's "JSON output":
// snake_case keys and no zero times. A command added with --json and not
// listed here fails the test.
func TestJSONOutputEveryCommand(t *testing.T) {
	cfg, _, day, _ := reportSetup(t)
	dataDir := filepath.Join(filepath.Dir(cfg), "data")
	dir := t.TempDir()
	d := day.Format("2006-01-02")
	list := filepath.Join(dir, "list.csv")
	os.WriteFile(list, []byte(domainList), 0o600)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600)
	world := t.TempDir()
	mustRun(t, cfg, "demo-world", "--out", world)

	covered := map[string]bool{
		// Needs a running server and minutes of traffic: TestSimulate
		// checks its --json output with checkScriptJSON.
		"takedown simulate": true,
	}
	// stepCode runs a command that must exit with code and checks its
	// JSON.
	stepCode := func(code int, args ...string) string {
		t.Helper()
		r := run(t, cfg, args...)
		if r.code != code {
			t.Fatalf("takedown %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
		}
		out := r.stdout
		path := "takedown"
		for _, a := range args {
			next := path + " " + a
			if !slices.ContainsFunc(cli.JSONCommands(), func(c string) bool { return c == next || strings.HasPrefix(c, next+" ") }) {
				break
			}
			path = next
		}
		covered[path] = true
		checkScriptJSON(t, strings.Join(args, " "), out)
		return out
	}
	step := func(args ...string) string { t.Helper(); return stepCode(0, args...) }
	step("--version", "--json")
	step("version", "--json")
	step("cases", "add", "waledac-2010", "--court", "E.D. Va.", "--docket", "1:10-cv-00156", "--json")
	step("cases", "add-order", "waledac-2010", "--type", "tro", "--issued", d, "--expires", day.AddDate(0, 0, 7).Format("2006-01-02"), "--json")
	step("cases", "list", "--json")
	step("cases", "show", "waledac-2010", "--json")
	step("domains", "import", "--case", "waledac-2010", list, "--json")
	step("domains", "set-state", "--state", "restrained", "--case", "waledac-2010", "--from-state", "listed", "--json")
	step("domains", "list", "--json")
	step("domains", "show", "bad.example.com", "--json")
	step("domains", "verify", "--case", "waledac-2010", "--resolver", nxResolver(t), "--json")
	keygen, err := exec.Command("dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "-K", dir, "bad.example.com").Output()
	if err != nil {
		t.Fatalf("dnssec-keygen: %v", err)
	}
	step("dnssec", "import", "--case", "waledac-2010", filepath.Join(dir, strings.TrimSpace(string(keygen))+".private"), "--json")
	step("dnssec", "rollover", "start", "--case", "waledac-2010", "--json")
	step("dnssec", "rollover", "finish", "--case", "waledac-2010", "--force", "--json")
	step("dnssec", "keys", "--json")
	step("dnssec", "ds", "--case", "waledac-2010", "--json")
	if out := step("deadlines", "--within", "30d", "--json"); !strings.Contains(out, `"kind": "expiry"`) {
		t.Errorf("deadlines --json lists no expiry:\n%s", out)
	}
	step("audit", "list", "--json")
	step("audit", "verify", "--json")
	step("status", "--json")
	for _, by := range []string{"", "day", "day,family,asn,country"} {
		step("stats", "hosts", "--by", by, "--from", d, "--json")
	}
	step("quarantine", "list", "--json")
	step("quarantine", "replay", "--json")
	step("subscribers", "add", "isp-c", "--org", "ISP C", "--contact", "abuse@isp-c.example", "--asn", "64502", "--json")
	step("subscribers", "list", "--json")
	step("subscribers", "show", "isp-a", "--json")
	step("subscribers", "update", "isp-c", "--org", "ISP C GmbH", "--json")
	var key struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(step("subscribers", "key", "add", "isp-c", "--json")), &key)
	step("subscribers", "key", "revoke", "isp-c", key.ID, "--json")
	step("subscribers", "remove", "isp-c", "--json")
	step("report", "generate", "--date", d, "--out", filepath.Join(dir, "reports"), "--json")
	step("report", "send", "--date", d, "--json")
	step("report", "deliveries", "--json")
	step("report", "mark-sent", "isp-b/"+d+"/csv", "--note", "seen", "--json")
	step("report", "resend", "isp-b/"+d+"/csv", "--json")
	step("report", "trend", "--subscriber", "isp-a", "--from", d, "--json")
	step("users", "add", "ana", "--role", "analyst", "--password-file", pw, "--json")
	step("users", "list", "--json")
	step("users", "set", "ana", "--role", "viewer", "--json")
	step("enrich", "lookup", "127.1.0.1", "127.0.0.1", "--db", filepath.Join(world, "takedown-demo-world.mmdb"), "--json")
	step("evidence", "keygen", "--name", "takedown/test-1", "--out", filepath.Join(dataDir, "evidence.key"), "--json")
	loggedEvents(t, cfg, 2, 3)
	step("evidence", "checkpoint", "--json")
	step("evidence", "checkpoint", "--list", "--json")
	// The report's events went in before the log existed: check finds
	// them unlogged, and says so in JSON too.
	stepCode(1, "evidence", "check", "--json")
	logAudit(t, cfg)
	exhibit := filepath.Join(dir, "exhibit")
	step("evidence", "export", "--case", "waledac-2010", "--from", "2026-11-01", "--to", "2026-11-30", "--out", exhibit, "--json")
	step("evidence", "verify", exhibit, "--json")
	backupFile := filepath.Join(dir, "takedown.backup")
	step("backup", "--out", backupFile, "--json")
	step("restore", backupFile, "--data-dir", filepath.Join(dir, "restored"), "--json")

	for _, c := range cli.JSONCommands() {
		if !covered[c] {
			t.Errorf("%s has --json but this test does not run it", c)
		}
	}
}
