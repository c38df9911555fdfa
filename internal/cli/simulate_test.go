package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/sim"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestSimulate runs the simulator against a running serve, with a day of
// backfilled history and a few seconds of live traffic, and checks that
// the store counts exactly the simulator's ground truth per family.
func TestSimulate(t *testing.T) {
	dir := t.TempDir()
	api, dnsAddr, httpAddr, smtpAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	cfg := filepath.Join(dir, "takedown.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir: %s
sensor: test-1
api: {listen: %s}
dns: {listen: [%q], a: [127.0.0.1], rrl: {responses_per_second: -1}}
transfer: {listen: [%q]}
listen: {http: [%q], https: ["127.0.0.1:0"], smtp: [%q]}
`, filepath.Join(dir, "data"), api, dnsAddr, freePort(t), httpAddr, smtpAddr)), 0o600)

	// Targets outside loopback are refused before anything else.
	r := run(t, cfg, "simulate", "--dns", "10.0.0.1:53")
	if r.code == 0 || !strings.Contains(r.stderr, "target dns 10.0.0.1:53 is not on loopback") || r.stdout != "" {
		t.Errorf("remote target: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run(t, cfg, "--mode", "local", "simulate", "--backfill", "1w"); r.code == 0 || !strings.Contains(r.stderr, `--backfill: "1w"`) {
		t.Errorf("bad span: %q", r.stderr)
	}

	startServer(t, cfg, api)
	if r := run(t, cfg, "simulate", "--families", "waledac"); r.code == 0 || !strings.Contains(r.stderr, "no served domain belongs to a waledac case") {
		t.Errorf("nothing seized: exit %d, %q", r.code, r.stderr)
	}
	lists := map[string]string{
		"waledac-2010":   "bad.example.com\nworse.example.net\nevil.example.org\n",
		"conficker-2009": "",
		"probe":          "probe.example.net\n",
	}
	today := time.Now().UTC()
	for d := -2; d <= 1; d++ {
		for _, n := range sim.DGANames(today.AddDate(0, 0, d), sim.DGANamesPerDay)[:40] {
			lists["conficker-2009"] += n + "\n"
		}
	}
	for _, c := range [][2]string{{"waledac-2010", "waledac"}, {"conficker-2009", "conficker"}, {"probe", ""}} {
		list := filepath.Join(dir, c[0]+".txt")
		os.WriteFile(list, []byte(lists[c[0]]), 0o600)
		args := []string{"cases", "add", c[0], "--court", "E.D. Va.", "--docket", "1:10-cv-00156"}
		if c[1] != "" {
			args = append(args, "--family", c[1])
		}
		mustRun(t, cfg, args...)
		mustRun(t, cfg, "domains", "import", "--case", c[0], list)
		mustRun(t, cfg, "domains", "set-state", "--state", "restrained", "--case", c[0], "--from-state", "listed")
	}
	// The sinkhole follows the registry within a moment; the backfill's DNS
	// events count only once it serves the names. The probe's name, seized
	// last, is in no family the simulator counts.
	testnet.WaitFor(t, "the sinkhole to serve the seized names", func() bool {
		m := new(dns.Msg)
		m.SetQuestion("probe.example.net.", dns.TypeA)
		r, err := dns.Exchange(m, dnsAddr)
		return err == nil && r.Rcode == dns.RcodeSuccess
	})

	truthFile := filepath.Join(dir, "truth.json")
	r = run(t, cfg, "simulate", "--bots", "150", "--speed", "3000", "--duration", "2s", "--backfill", "1d",
		"--seed", "7", "--json", "--truth", truthFile)
	if r.code != 0 {
		t.Fatalf("simulate: exit %d\n%s", r.code, r.stderr)
	}
	checkScriptJSON(t, "simulate --json", r.stdout)
	var truth sim.Truth
	if err := json.Unmarshal([]byte(r.stdout), &truth); err != nil {
		t.Fatalf("stdout is not the truth JSON: %v\n%s", err, r.stdout)
	}
	if file, _ := os.ReadFile(truthFile); string(file) != r.stdout {
		t.Error("--truth file differs from --json output")
	}
	if !strings.Contains(r.stderr, "backfill: ") || !strings.Contains(r.stderr, "simulate: ") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}
	if truth.Errors != 0 || len(truth.Families) != 3 || truth.Families["waledac"].Bots == 0 || truth.Families["conficker"].Refused == 0 {
		t.Fatalf("truth: %+v", truth)
	}

	// The store counts what the simulator counted, exactly.
	type row struct {
		Family            string
		IPs, Bots, Events int64
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var rows []row
		js := mustRun(t, cfg, "stats", "hosts", "--by", "family", "--from", "2000-01-01", "--to", "2100-01-01", "--json")
		if err := json.Unmarshal([]byte(js), &rows); err != nil {
			t.Fatal(err)
		}
		diff := false
		for fam, want := range truth.Families {
			i := slices.IndexFunc(rows, func(r row) bool { return r.Family == fam })
			diff = diff || i < 0 || rows[i].IPs != want.IPs || rows[i].Bots != want.Bots || rows[i].Events != want.Events
		}
		if !diff {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store counts %+v\nthe truth %+v", rows, truth.Families)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Without --json: a short summary on stdout.
	out := mustRun(t, cfg, "simulate", "--bots", "50", "--speed", "3000", "--max-callbacks", "30", "--duration", "5s")
	for _, want := range []string{"callbacks", "FAMILY", "waledac", "rustock", "top countries"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	// Without --duration the live run goes on until Ctrl-C (the command's
	// context, cmd/takedown), then prints the ground truth and exits 0.
	p := start(t, "--config", cfg, "simulate", "--bots", "50", "--speed", "1000", "--json")
	testnet.WaitFor(t, "the live run", func() bool { return strings.Contains(p.stderr.String(), `msg="live run"`) })
	if err := p.interrupt(); err != nil {
		t.Fatalf("simulate after SIGINT: %v\n%s", err, p.stderr)
	}
	truth = sim.Truth{}
	if err := json.Unmarshal([]byte(p.stdout.String()), &truth); err != nil || truth.Infected != 50 {
		t.Fatalf("simulate after SIGINT: %v, truth %+v\n%s", err, truth, p.stdout)
	}
}
