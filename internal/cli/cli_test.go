package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/testnet"
)

// bin is the takedown binary built once for the tests: the commands run as
// users run them, as separate processes.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "takedown-cli-test-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "takedown")
	// Built as a release is, with the version set at link time.
	const pkg = "github.com/takedown-project/takedown/internal/cli."
	out, err := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X "+pkg+"version="+testVersion+" -X "+pkg+"commit="+testCommit+" -X "+pkg+"date="+testDate,
		"../../cmd/takedown").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building takedown: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The version, commit and date linked into bin.
const (
	testVersion = "1.2.3-test"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
	testDate    = "2026-11-30T12:00:00Z"
)

type result struct {
	stdout, stderr string
	code           int
}

// run runs takedown with the config file cfg and args.
func run(t *testing.T, cfg string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config", cfg, "--actor", "tester"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running takedown %v: %v", args, err)
	}
	return result{o.String(), e.String(), code}
}

func mustRun(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	r := run(t, cfg, args...)
	if r.code != 0 {
		t.Fatalf("takedown %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func freePort(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t))
}

// setup writes a config with its own data directory and API port.
func setup(t *testing.T) (cfgPath, dataDir, addr string) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	addr = freePort(t)
	cfgPath = filepath.Join(dir, "takedown.yaml")
	cfg := fmt.Sprintf("data_dir: %s\nsensor: test-1\noperator: Test CERT\napi:\n  listen: %s\ndns:\n  listen: [%q]\n  a: [127.0.0.2]\n  rrl: {responses_per_second: -1}\ntransfer:\n  listen: [%q]\nlisten: {http: [\"127.0.0.1:0\"], https: [\"127.0.0.1:0\"], smtp: [\"127.0.0.1:0\"]}\n",
		dataDir, addr, freePort(t), freePort(t))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dataDir, addr
}

// startServer runs `takedown serve` and waits until its API answers. stop
// stops it (the test's end does too).
func startServer(t *testing.T, cfg, addr string) (stop func()) {
	t.Helper()
	return startServerWith(t, cfg, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// startServerWith runs `takedown serve` and waits until answers says that
// it answers.
func startServerWith(t *testing.T, cfg string, answers func() bool) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfg, "serve")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Stdout = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("serve exited with %v\n%s", err, logs.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Errorf("serve did not stop on SIGINT\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), "database closed") {
				t.Errorf("serve did not log its shutdown steps:\n%s", logs.String())
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if answers() {
			return stop
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited early: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not answer within 30s\n%s", logs.String())
	return stop
}

const domainList = `# court-order list
name,registrar,family
Bad.Example.COM.,Registrar A,waledac
bücher-demo.example,Registrar B,waledac
worse.example.net,Registrar A,waledac
`

const badList = `name,registrar,family
fine.example.org,Registrar A,waledac
bad_label!.com,Registrar A,waledac
fine.example.org,Registrar A,waledac
`

// scenario runs the same operations through whichever backend the CLI picks
// and returns what it observed, normalised so that the runs compare.
func scenario(t *testing.T, cfg string) map[string]any {
	dir := t.TempDir()
	list := filepath.Join(dir, "list.csv")
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(list, []byte(domainList), 0o600)
	os.WriteFile(bad, []byte(badList), 0o600)

	mustRun(t, cfg, "cases", "add", "waledac-2010", "--court", "E.D. Va.", "--docket", "1:10-cv-00156", "--reason", "complaint filed")
	mustRun(t, cfg, "cases", "add-order", "waledac-2010", "--type", "tro", "--issued", "2010-02-22", "--expires", "2010-03-08", "--reference", "Dkt. 12")
	out := mustRun(t, cfg, "domains", "import", "--case", "waledac-2010", list)
	if !strings.Contains(out, "imported 3 domains") {
		t.Errorf("import said %q", out)
	}
	mustRun(t, cfg, "domains", "set-state", "--state", "restrained", "--case", "waledac-2010", "--from-state", "listed")
	mustRun(t, cfg, "domains", "set-state", "--state", "sinkholed", "BAD.EXAMPLE.com", "xn--bcher-demo-9db.example")

	obs := map[string]any{}
	// Rejected operations: same message, the exit code of README's table,
	// nothing changed.
	for name, c := range map[string]struct {
		code int
		args []string
	}{
		"dup-case":     {4, []string{"cases", "add", "waledac-2010", "--court", "x", "--docket", "y"}},
		"bad-import":   {1, []string{"domains", "import", "--case", "waledac-2010", bad}},
		"illegal":      {4, []string{"domains", "set-state", "--state", "listed", "bad.example.com"}},
		"no-case":      {3, []string{"domains", "import", "--case", "nope", list}},
		"no-domain":    {3, []string{"domains", "show", "missing.example.com"}},
		"no-case-show": {3, []string{"cases", "show", "nope"}},
		"usage":        {2, []string{"cases", "show"}},
	} {
		r := run(t, cfg, c.args...)
		if r.code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s", name, r.code, c.code, r.stderr)
		}
		obs["err:"+name] = strings.ReplaceAll(r.stderr, dir, "DIR")
	}

	var domains []registry.Domain
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "domains", "list", "--json")), &domains); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, d := range domains {
		states = append(states, d.Name+"="+string(d.State))
	}
	obs["domains"] = states

	var show registry.Domain
	json.Unmarshal([]byte(mustRun(t, cfg, "domains", "show", "bad.example.com", "--json")), &show)
	var hist []string
	for _, h := range show.History {
		hist = append(hist, fmt.Sprintf("%s>%s by %s", h.From, h.To, h.Actor))
	}
	obs["history"] = hist

	var audit []registry.AuditEntry
	json.Unmarshal([]byte(mustRun(t, cfg, "audit", "list", "--json")), &audit)
	var acts []string
	for _, a := range audit {
		acts = append(acts, a.Action+" "+a.Object+" by "+a.Actor)
	}
	sort.Strings(acts)
	obs["audit"] = acts
	obs["verify"] = hexHash.ReplaceAllString(mustRun(t, cfg, "audit", "verify"), "HASH")

	pk := filepath.Join(dir, "pk")
	mustRun(t, cfg, "registrars", "package", "--case", "waledac-2010", "--out", pk)
	ents, _ := os.ReadDir(pk)
	var files []string
	for _, e := range ents {
		files = append(files, e.Name())
	}
	obs["packages"] = files
	return obs
}

// hexHash matches an audit entry's hash, which differs between two runs
// (the entries' times enter it).
var hexHash = regexp.MustCompile(`[0-9a-f]{64}`)

// TestCLISameWithAndWithoutServer runs the same commands once against the
// database file and once through a running server, and compares.
func TestCLISameWithAndWithoutServer(t *testing.T) {
	cfgLocal, _, _ := setup(t)
	local := scenario(t, cfgLocal)

	cfgRemote, dataRemote, addr := setup(t)
	startServer(t, cfgRemote, addr)
	remote := scenario(t, cfgRemote)

	// The server holds the database: a forced local open must say so.
	r := run(t, cfgRemote, "--mode", "local", "cases", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "in use by another process") {
		t.Errorf("local open while serve runs: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dataRemote, "api.token")); err != nil {
		t.Errorf("serve made no token file: %v", err)
	}

	lj, _ := json.MarshalIndent(local, "", "  ")
	rj, _ := json.MarshalIndent(remote, "", "  ")
	if !bytes.Equal(lj, rj) {
		t.Errorf("local and remote runs differ\nlocal:  %s\nremote: %s", lj, rj)
	}
	// And the results are the right ones, not just equal.
	want := []string{"bad.example.com=sinkholed", "worse.example.net=restrained", "xn--bcher-demo-9db.example=sinkholed"}
	if got := fmt.Sprint(local["domains"]); got != fmt.Sprint(want) {
		t.Errorf("domains %s, want %v", got, want)
	}
	if got := fmt.Sprint(local["history"]); got != "[>listed by tester listed>restrained by tester restrained>sinkholed by tester]" {
		t.Errorf("history %s", got)
	}
	bi, _ := local["err:bad-import"].(string)
	for _, w := range []string{"bad.csv:3:", "bad.csv:4:", "nothing was imported"} {
		if !strings.Contains(bi, w) {
			t.Errorf("bad import message %q lacks %q", bi, w)
		}
	}
	il, _ := local["err:illegal"].(string)
	if !strings.Contains(il, "sinkholed") || !strings.Contains(il, "listed") {
		t.Errorf("illegal transition message %q does not name both states", il)
	}
}

func TestRemoteModeWithoutServer(t *testing.T) {
	cfg, _, addr := setup(t)
	r := run(t, cfg, "--mode", "remote", "cases", "list")
	if r.code != 5 || !strings.Contains(r.stderr, addr) {
		t.Errorf("remote mode without a server: exit %d, %q", r.code, r.stderr)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("api:\n  listen: 127.0.0.1:9999\n"), 0o600)
	os.WriteFile(bad, []byte("api:\n  listen: 127.0.0.1:9999\n  lisen: x\n"), 0o600)
	if r := run(t, good, "config", "check"); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Errorf("good config: %+v", r)
	}
	r := run(t, good, "config", "check", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "bad.yaml:3:3") || !strings.Contains(r.stderr, `"lisen"`) {
		t.Errorf("bad config: %+v", r)
	}
	shared := filepath.Join(dir, "shared.yaml")
	os.WriteFile(shared, []byte("listen:\n  http: [127.0.0.1:8080]\n  smtp: [127.0.0.1:8080]\n"), 0o600)
	r = run(t, good, "config", "check", shared)
	if r.code == 0 || !strings.Contains(r.stderr, "listen.smtp[0]: 127.0.0.1:8080 is on the TCP port of listen.http[0] (127.0.0.1:8080)") {
		t.Errorf("two listeners on one port: %+v", r)
	}
}

// TestConfigShow: config show prints the values serve runs with, the
// defaults that the packages own filled in, beside what the file gives.
func TestConfigShow(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "t.yaml")
	os.WriteFile(cfg, []byte("dns: {ttl: 60}\nlisten: {max_conns: -1}\n"), 0o600)
	out := mustRun(t, cfg, "config", "show")
	for _, want := range []string{
		"\n  ttl: 60\n", "\n  max_conns: -1\n", "\n  max_conns_per_ip: 256\n", "\n    ipv4_prefix: 24\n",
		"\n  zone: rpz.takedown.local\n", "\n  spool_max_mb: 4096\n", "\n  flush_ms: 500\n", "\n  tls: required\n",
		"\n  session_hours: 12\n", "\n  days: 90\n", "\n  cache_size: 65536\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
}

func TestHelp(t *testing.T) {
	cfg, _, _ := setup(t)
	for _, args := range [][]string{{"--help"}, {"domains", "import", "--help"}, {"cases", "--help"}, {"deadlines", "--help"}} {
		if out := mustRun(t, cfg, args...); !strings.Contains(out, "Usage:") {
			t.Errorf("%v: no usage in %q", args, out)
		}
	}
}

// TestDemo runs the main job small: serve, a day of history through the
// ingest endpoint, a few seconds of live callbacks; the census the demo
// prints agrees with the simulator's truth and with what the store answers
// afterwards.
func TestDemo(t *testing.T) {
	cfg, _, _ := setup(t)
	withBinOnPath(t)
	data := filepath.Join(t.TempDir(), "demo")
	out := mustRun(t, cfg, "--data-dir", data, "demo", "--bots", "2000", "--speed", "3000", "--duration", "4s", "--backfill", "1")
	for _, w := range []string{"276 domains imported", "restrained, then sinkholed", "DGA names seized", "serve is up",
		"1 day(s) of callbacks generated", "2,000 bots call home", "hash chain verified", "serve stopped"} {
		if !strings.Contains(out, w) {
			t.Errorf("demo output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "differs") || strings.Count(out, "✓") != 3 {
		t.Errorf("the census does not match the truth for all three families:\n%s", out)
	}
	var rows []struct {
		Family            string
		IPs, Bots, Events int64
	}
	js := mustRun(t, cfg, "--data-dir", data, "stats", "hosts", "--by", "family", "--from", "2000-01-01", "--to", "2100-01-01", "--json")
	if err := json.Unmarshal([]byte(js), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("stats: %v %s", err, js)
	}
	for _, r := range rows {
		want := fmt.Sprintf("%-9s  %s", r.Family, thousands(r.IPs))
		if !strings.Contains(out, want) {
			t.Errorf("the demo's census lacks %q (the store's %+v):\n%s", want, r, out)
		}
	}
	checkDemoCounts(t, out)
	checkDemoExhibit(t, cfg, data, out)
	checkExplore(t, out, data)
	r := run(t, cfg, "--data-dir", data, "demo")
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("demo into a used directory: %+v", r)
	}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// dig asks the sinkhole with the real dig and returns its short answer.
func dig(t *testing.T, server string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(server)
	out, err := exec.Command("dig", append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s (install it with apt-get install bind9-dnsutils)", args, err, out)
	}
	return string(out)
}

// TestServeSinkholeFollowsRegistry changes the registry through the CLI
// while serve runs and watches the DNS answers follow, and the queries come
// back as events.
func TestServeSinkholeFollowsRegistry(t *testing.T) {
	cfg, _, addr := setup(t)
	raw, _ := os.ReadFile(cfg)
	var dnsAddr string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.Contains(l, "listen: [") && dnsAddr == "" {
			dnsAddr = strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "listen:")), `[]"`)
		}
	}
	startServer(t, cfg, addr)
	list := filepath.Join(t.TempDir(), "l.txt")
	os.WriteFile(list, []byte("seized.example.com\nother.example.net\n"), 0o600)
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1:10-cv-00156")
	mustRun(t, cfg, "domains", "import", "--case", "c1", list)

	// Listed is not served yet.
	if out := dig(t, dnsAddr, "www.seized.example.com", "A"); !strings.Contains(out, "status: REFUSED") {
		t.Fatalf("listed domain answered:\n%s", out)
	}
	mustRun(t, cfg, "domains", "set-state", "--state", "restrained", "seized.example.com")
	// answered counts the answers for the served name: each is an event.
	answered := 0
	ask := func(name, qtype string) string {
		out := dig(t, dnsAddr, name, qtype)
		if strings.Contains(out, "status: NOERROR") {
			answered++
		}
		return out
	}
	start := time.Now()
	var out string
	for time.Since(start) < 5*time.Second {
		out = ask("www.seized.example.com", "A")
		if strings.Contains(out, "status: NOERROR") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	if !strings.Contains(out, "127.0.0.2") || !strings.Contains(out, "flags: qr aa") {
		t.Fatalf("restrained domain not answered with the sinkhole address:\n%s", out)
	}
	if took > time.Second {
		t.Errorf("the change took %s to reach the answers, want ≤ 1 s", took)
	}
	txt := ask("seized.example.com", "TXT")
	if !strings.Contains(txt, "sinkholed by order of E.D. Va. 1:10-cv-00156") || !strings.Contains(txt, "Test CERT") {
		t.Errorf("TXT does not name the order and operator:\n%s", txt)
	}
	// Released is served no more.
	mustRun(t, cfg, "domains", "set-state", "--state", "released", "seized.example.com")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ask("seized.example.com", "A"), "status: REFUSED") {
		if time.Now().After(deadline) {
			t.Fatal("released domain still answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The queries for the served name, and only they, are events in the
	// store (a name that is not served is refused and not recorded).
	deadline = time.Now().Add(10 * time.Second)
	for {
		var rows []struct{ Events int64 }
		js := mustRun(t, cfg, "stats", "hosts", "--from", "2000-01-01", "--to", "2100-01-01", "--json")
		json.Unmarshal([]byte(js), &rows)
		if len(rows) == 1 && rows[0].Events > int64(answered) {
			t.Fatalf("%d answered queries made more events: %s", answered, js)
		}
		if len(rows) == 1 && rows[0].Events == int64(answered) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %d answered DNS queries did not reach the store: %s", answered, js)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRPZExport(t *testing.T) {
	cfg, _, _ := setup(t)
	list := filepath.Join(t.TempDir(), "l.txt")
	os.WriteFile(list, []byte("seized.example.com\nlisted.example.net\n"), 0o600)
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1")
	mustRun(t, cfg, "domains", "import", "--case", "c1", list)
	mustRun(t, cfg, "domains", "set-state", "--state", "restrained", "seized.example.com")
	out := filepath.Join(t.TempDir(), "rpz.zone")
	mustRun(t, cfg, "rpz", "export", "--out", out)
	data, _ := os.ReadFile(out)
	zone := string(data)
	for _, w := range []string{"SOA", "seized.example.com.rpz.takedown.local.", "*.seized.example.com.rpz.takedown.local.", "CNAME\t."} {
		if !strings.Contains(zone, w) {
			t.Errorf("zone lacks %q:\n%s", w, zone)
		}
	}
	if strings.Contains(zone, "listed.example.net") {
		t.Errorf("a listed (not yet restrained) domain is in the feed:\n%s", zone)
	}
	if c, err := exec.LookPath("named-checkzone"); err == nil {
		if o, err := exec.Command(c, "rpz.takedown.local", out).CombinedOutput(); err != nil {
			t.Errorf("named-checkzone: %v\n%s", err, o)
		}
	} else {
		t.Fatal("named-checkzone missing: apt-get install bind9-utils")
	}
}

// TestDomainsVerify points verify at a resolver that knows one seized domain
// delegated to us and one still parked elsewhere.
func TestDomainsVerify(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		ns := map[string]string{"seized.example.com.": "ns1.sinkhole.invalid.", "parked.example.net.": "ns1.parking-registrar.example."}[q.Name]
		switch {
		case ns == "":
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeNS:
			m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: ns})
		case q.Qtype == dns.TypeA && ns == "ns1.sinkhole.invalid.":
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)})
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })

	cfg, _, _ := setup(t)
	list := filepath.Join(t.TempDir(), "l.txt")
	os.WriteFile(list, []byte("seized.example.com\nparked.example.net\n"), 0o600)
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1")
	mustRun(t, cfg, "domains", "import", "--case", "c1", list)
	out := mustRun(t, cfg, "domains", "verify", "--case", "c1", "--resolver", pc.LocalAddr().String())
	if !strings.Contains(out, "1 of 2 delegations verified") || !strings.Contains(out, "ns1.parking-registrar.example") {
		t.Errorf("verify said:\n%s", out)
	}
	show := mustRun(t, cfg, "domains", "show", "seized.example.com")
	if !strings.Contains(show, "delegation: verified at") {
		t.Errorf("show does not tell the verification:\n%s", show)
	}
	show = mustRun(t, cfg, "domains", "show", "parked.example.net")
	if !strings.Contains(show, "points elsewhere") || !strings.Contains(show, "ns1.parking-registrar.example") {
		t.Errorf("show does not tell where it points:\n%s", show)
	}
}

func TestForeignDatabaseFile(t *testing.T) {
	cfg, data, _ := setup(t)
	os.MkdirAll(data, 0o750)
	db := filepath.Join(data, "takedown.duckdb")
	junk := []byte("SQLite format 3\x00 this is somebody else's file")
	os.WriteFile(db, junk, 0o600)
	r := run(t, cfg, "cases", "list")
	if r.code != 1 || !strings.Contains(r.stderr, db) || !strings.Contains(r.stderr, "not a DuckDB database") || strings.Contains(r.stderr, "panic") {
		t.Errorf("foreign file: exit %d, %q", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, junk) {
		t.Error("the foreign file was changed")
	}
}

// TestStatus: offline, status describes the files; with serve running, the
// pipeline too, as text and as JSON.
func TestStatus(t *testing.T) {
	cfg, dataDir, addr := setup(t)
	off := mustRun(t, cfg, "--mode", "local", "status")
	if !strings.Contains(off, "serve: not running") || !strings.Contains(off, filepath.Join(dataDir, "spool")) {
		t.Fatalf("offline status:\n%s", off)
	}
	if strings.Contains(off, "evidence log") {
		t.Errorf("offline status before the first serve shows an evidence log:\n%s", off)
	}
	stop := startServer(t, cfg, addr)
	on := mustRun(t, cfg, "status")
	for _, want := range []string{"serve: running as sensor test-1", "waiting in spool", "dropped", "store lag", "enrichment databases", "takedown.duckdb", "evidence log takedown/"} {
		if !strings.Contains(on, want) {
			t.Errorf("status lacks %q:\n%s", want, on)
		}
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "status", "--json")), &st); err != nil || st["serving"] != true {
		t.Fatalf("status --json: %v %v", st, err)
	}
	// serve holds the database file: the latest checkpoint comes from
	// its API.
	if cp := mustRun(t, cfg, "evidence", "checkpoint"); !strings.HasPrefix(cp, "takedown/") || !strings.Contains(cp, "\n\n\u2014 takedown/") {
		t.Errorf("evidence checkpoint while serve runs:\n%s", cp)
	}
	// Once serve has stopped, the files: the log it signed at shutdown.
	stop()
	off = mustRun(t, cfg, "--mode", "local", "status")
	if !strings.Contains(off, "serve: not running") || !regexp.MustCompile(`evidence log takedown/\S+: \d+ leaves, last checkpoint of \d+ leaves signed \S+ ago; key takedown/`).MatchString(off) {
		t.Errorf("offline status after serve lacks the evidence log:\n%s", off)
	}
	var ost api.Status
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "--mode", "local", "status", "--json")), &ost); err != nil || ost.Evidence == nil || ost.Evidence.CheckpointAt.IsZero() || ost.Evidence.Size < ost.Evidence.CheckpointSize {
		t.Errorf("offline status --json: evidence %+v, %v", ost.Evidence, err)
	}
}

// TestServeProfiles: serve writes the CPU profile, the memory profile and
// the execution trace it is asked for when it stops.
func TestServeProfiles(t *testing.T) {
	cfg, _, addr := setup(t)
	dir := t.TempDir()
	cpu, mem, tr := filepath.Join(dir, "cpu.out"), filepath.Join(dir, "mem.out"), filepath.Join(dir, "trace.out")
	cmd := exec.Command(bin, "--config", cfg, "serve", "--cpuprofile", cpu, "--memprofile", mem, "--trace", tr)
	var logs bytes.Buffer
	cmd.Stderr, cmd.Stdout = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := false
	for deadline := time.Now().Add(30 * time.Second); !up && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			up = resp.StatusCode == 200
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil || !up {
		t.Fatalf("serve: up %v, exit %v\n%s", up, err, logs.String())
	}
	for path, magic := range map[string]string{cpu: "\x1f\x8b", mem: "\x1f\x8b", tr: "go 1."} {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(b, []byte(magic)) {
			t.Errorf("%s: %d bytes starting %q, %v", filepath.Base(path), len(b), b[:min(len(b), 8)], err)
		}
	}
}

// started is takedown running in the background.
type started struct {
	cmd            *exec.Cmd
	stdout, stderr *testnet.Buffer
	exited         chan error
}

// start runs takedown with args in the background until the test ends.
func start(t *testing.T, args ...string) *started {
	t.Helper()
	p := &started{cmd: exec.Command(bin, args...), stdout: new(testnet.Buffer), stderr: new(testnet.Buffer), exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// interrupt sends SIGINT, as Ctrl-C does, and returns how the process
// exited.
func (p *started) interrupt() error {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		return fmt.Errorf("still running 30 s after SIGINT\n%s", p.stderr)
	}
}

// TestServeReloadsOnSIGHUP: SIGHUP makes a running serve read its config
// file again (the hook the serve command hands to app) and does not end
// it; SIGINT then stops it in order.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	cfg, _, addr := setup(t)
	p := start(t, "--config", cfg, "serve")
	testnet.WaitFor(t, "serve to answer", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(text, "log: {level: debug}\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the reload", func() bool {
		return strings.Contains(p.stderr.String(), `msg="SIGHUP: reloaded config, rules and enrichment files" applied=log.level `)
	})
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("serve after SIGHUP: %v\n%s", err, p.stderr)
	}
	if err := p.interrupt(); err != nil || !strings.Contains(p.stderr.String(), "database closed") {
		t.Fatalf("serve after SIGINT: %v\n%s", err, p.stderr)
	}
}
