package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/testnet"
)

// seizedZone is the zone the lifecycle tests seize: every name under it
// resolves to the sinkhole, and every request is attributed to its case.
const seizedZone = "seized.example"

// lifecycleConfig is a config of serve on loopback port 0: API, DNS, HTTP
// and SMTP (the transfer server and HTTPS off), with a rules file of one
// rule that names every HTTP request's family.
func lifecycleConfig(dir, extra string) string {
	return fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
dns:
  listen: ["127.0.0.1:0"]
  rrl: {responses_per_second: -1}
transfer: {listen: []}
listen: {http: ["127.0.0.1:0"], https: [], smtp: ["127.0.0.1:0"]}
pipeline: {flush_ms: 50}
classify: {rules: %s}
%s`, filepath.Join(dir, "data"), filepath.Join(dir, "rules.yaml"), extra)
}

// rulesFamily is a rules file that names every HTTP request's family.
func rulesFamily(family string) string {
	return fmt.Sprintf("rules:\n  - {name: all-http, family: %s, match: {protocol: http, path: '^/'}}\n", family)
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// inProcess is a serve running in the test's process, logging JSON into
// logs.
type inProcess struct {
	api    string
	logs   *testnet.Buffer
	level  *slog.LevelVar
	cancel context.CancelFunc
	done   chan error
}

// serveLogged runs ServeWith in the test's process until the test ends.
func serveLogged(t *testing.T, cfg config.Config, h Hooks) *inProcess {
	t.Helper()
	s := &inProcess{logs: new(testnet.Buffer), level: h.LogLevel, done: make(chan error, 1)}
	if s.level == nil {
		s.level = new(slog.LevelVar)
	}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: s.level}))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan string, 1)
	h.Ready = func(addr string) { ready <- addr }
	go func() { s.done <- ServeWith(ctx, cfg, log, h) }()
	select {
	case s.api = <-ready:
	case err := <-s.done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, s.logs)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("serve not ready\n%s", s.logs)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels serve and waits for it to return.
func (s *inProcess) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok && err != nil {
			t.Errorf("serve: %v", err)
		}
		if ok {
			close(s.done)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop\n%s", s.logs)
	}
}

// lines returns the log records whose message is msg.
func (s *inProcess) lines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// waitLines waits until the log holds n records with message msg.
func (s *inProcess) waitLines(t *testing.T, msg string, n int) []map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if l := s.lines(msg); len(l) >= n {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d log lines %q:\n%s", n, msg, s.logs)
		}
	}
}

// addr returns the first address in the attribute key of the log line
// msg (a list printed as "[127.0.0.1:1234 127.0.0.1:1234]").
func (s *inProcess) addr(t *testing.T, msg, key string) string {
	t.Helper()
	l := s.lines(msg)
	if len(l) == 0 {
		t.Fatalf("no log line %q:\n%s", msg, s.logs)
	}
	f := strings.Fields(strings.Trim(fmt.Sprint(l[0][key]), "[]"))
	if len(f) == 0 {
		t.Fatalf("log line %q has no %s: %v", msg, key, l[0])
	}
	return f[0]
}

// events reads the store of cfg (serve stopped), by name and path.
func events(t *testing.T, cfg config.Config) []event.Event {
	t.Helper()
	local, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	var out []event.Event
	if err := local.Store.Scan(context.Background(), eventstore.ScanQuery{}, func(e *event.Event) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGracefulShutdown: serve with DNS, HTTP and SMTP takes real traffic
// (an HTTP keep-alive connection left open at the end), then its context
// is cancelled. It stops accepting before it drains the pipeline and
// closes the store; every request answered is in the store, and no
// goroutine of serve is left.
func TestGracefulShutdown(t *testing.T) {
	// Goroutines that run before serve starts are not serve's (the test
	// runner's, other tests' clients winding down).
	before := goleak.IgnoreCurrent()
	dir := t.TempDir()
	writeText(t, filepath.Join(dir, "rules.yaml"), rulesFamily("waledac"))
	cfg, err := config.Parse("test.yaml", []byte(lifecycleConfig(dir, "")))
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "waledac", "waledac", seizedZone)
	s := serveLogged(t, cfg, Hooks{})
	dnsAddr := s.addr(t, "dns sinkhole listening", "addrs")
	httpAddr := s.addr(t, "http listeners started", "http")
	smtpAddr := s.addr(t, "smtp listener started", "addrs")

	want := map[string]bool{} // the names and paths of the requests answered
	for i := range 40 {
		cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		if i%4 == 0 {
			cl.Net = "tcp"
		}
		name := fmt.Sprintf("q%d.%s", i, seizedZone)
		m := new(dns.Msg).SetQuestion(name+".", dns.TypeA)
		r, _, err := cl.Exchange(m, dnsAddr)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("query %s over %s: %v %v", name, cl.Net, r, err)
		}
		want[name] = true
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i := range 20 {
		path := fmt.Sprintf("/c%d.png", i)
		req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		req.Host = "www." + seizedZone
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		want[path] = true
	}
	sc, err := smtp.Dial(smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Hello("bot.example"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Mail("x@spam.example"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Rcpt("a@" + seizedZone); err != nil {
		t.Fatal(err)
	}
	wc, err := sc.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(wc, "Subject: graceful\r\n\r\nbye\r\n")
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
	sc.Quit()
	want["graceful"] = true

	// The HTTP connection stays open and idle while serve stops.
	s.stop(t)
	tr.CloseIdleConnections()
	goleak.VerifyNone(t, before)

	// Each step in order: stop accepting, drain, close.
	var order []string
	for _, step := range []string{"api stopped", "listener stopped", "dns stopped", "pipeline drained", "spool closed", "database closed"} {
		if len(s.lines(step)) == 0 {
			t.Fatalf("no step %q logged:\n%s", step, s.logs)
		}
		order = append(order, step)
	}
	var logged []string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		for _, step := range order {
			if strings.Contains(l, `"msg":"`+step+`"`) && !slices.Contains(logged, step) {
				logged = append(logged, step)
			}
		}
	}
	if !slices.Equal(logged, order) {
		t.Fatalf("shutdown steps %v, want %v", logged, order)
	}
	for _, step := range order {
		if _, ok := s.lines(step)[0]["took"]; !ok {
			t.Errorf("step %q logged without its duration", step)
		}
	}
	p := s.lines("pipeline")
	if len(p) != 1 {
		t.Fatalf("pipeline stats logged %d times:\n%s", len(p), s.logs)
	}
	if p[0]["recorded"] != p[0]["stored"] || p[0]["left_in_spool"] != 0.0 || p[0]["dropped"] != 0.0 {
		t.Fatalf("pipeline at the end: %v", p[0])
	}

	got := map[string]bool{}
	for _, e := range events(t, cfg) {
		switch e.Protocol {
		case event.ProtoDNS:
			got[e.Domain] = true
		case event.ProtoHTTP:
			got[e.HTTPPath] = true
		case event.ProtoSMTP:
			got[e.SMTPSubject] = true
		}
	}
	if len(got) != len(want) || float64(len(got)) != p[0]["stored"] {
		t.Errorf("%d distinct requests stored (pipeline stored %v), want %d", len(got), p[0]["stored"], len(want))
	}
	for k := range want {
		if !got[k] {
			t.Errorf("%s answered but not stored", k)
		}
	}
}

// TestReloadUnderLoad: SIGHUPs while HTTP and DNS clients keep serve busy;
// one reload switches the rules file and the log level, another changes
// a key that needs a restart. Every request is answered, every answered
// request is stored, and the requests sent after the rules reload are
// classified by the new rules.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "takedown.yaml")
	writeText(t, filepath.Join(dir, "rules.yaml"), rulesFamily("before"))
	writeText(t, cfgPath, lifecycleConfig(dir, ""))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "waledac", "waledac", seizedZone)
	level := new(slog.LevelVar)        // info, as configured
	reloads := make(chan os.Signal, 1) // what takedown serve fills with SIGHUP
	s := serveLogged(t, cfg, Hooks{Reloads: reloads, Reload: func() (config.Config, error) { return config.Load(cfgPath) }, LogLevel: level})
	dnsAddr := s.addr(t, "dns sinkhole listening", "addrs")
	httpAddr := s.addr(t, "http listeners started", "http")

	var (
		mu       sync.Mutex
		answered = map[string]bool{}
		after    = map[string]bool{} // HTTP paths sent once the new rules were in force
		switched atomic.Bool
		stopLoad = make(chan struct{})
		wg       sync.WaitGroup
		failures atomic.Int64
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	for g := range 2 {
		wg.Go(func() { // HTTP, keep-alive
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				path := fmt.Sprintf("/h%d-%d.png", g, i)
				isAfter := switched.Load()
				req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
				req.Host = seizedZone
				resp, err := hc.Do(req)
				if err != nil {
					fail("GET %s: %v", path, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail("GET %s: %s", path, resp.Status)
					continue
				}
				mu.Lock()
				answered[path] = true
				if isAfter {
					after[path] = true
				}
				mu.Unlock()
			}
		})
		wg.Go(func() { // DNS over UDP
			conn, err := net.Dial("udp", dnsAddr)
			if err != nil {
				fail("%v", err)
				return
			}
			defer conn.Close()
			dc := &dns.Conn{Conn: conn}
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				name := fmt.Sprintf("d%d-%d.%s", g, i, seizedZone)
				m := new(dns.Msg).SetQuestion(name+".", dns.TypeA)
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				if err := dc.WriteMsg(m); err != nil {
					fail("query %s: %v", name, err)
					continue
				}
				r, err := dc.ReadMsg()
				if err != nil || r.Id != m.Id || len(r.Answer) != 1 {
					fail("query %s: %v %v", name, r, err)
					continue
				}
				mu.Lock()
				answered[name] = true
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(answered) }
	hup := func(n int) {
		t.Helper()
		reloads <- syscall.SIGHUP
		s.waitLines(t, "SIGHUP: reloaded config, rules and enrichment files", n)
	}
	loadFor := func(d time.Duration) { // keep the load going, and moving
		n0 := count()
		time.Sleep(d)
		if count() == n0 {
			t.Fatalf("no request answered in %v", d)
		}
	}
	loadFor(600 * time.Millisecond)
	// A new rules file, and the log level.
	writeText(t, filepath.Join(dir, "rules2.yaml"), rulesFamily("after"))
	writeText(t, cfgPath, strings.Replace(lifecycleConfig(dir, "log: {level: debug}\n"), "rules.yaml", "rules2.yaml", 1))
	hup(1)
	switched.Store(true)
	if l := s.lines("SIGHUP: reloaded config, rules and enrichment files")[0]; l["applied"] != "log.level,classify.rules" || l["failed"] != "" {
		t.Errorf("reload: %v", l)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after the reload, want debug", level.Level())
	}
	loadFor(600 * time.Millisecond)
	hup(2) // nothing changed
	loadFor(600 * time.Millisecond)
	writeText(t, cfgPath, strings.Replace(lifecycleConfig(dir, "log: {level: debug}\nstore: {retention_days: 30}\n"), "rules.yaml", "rules2.yaml", 1))
	hup(3)
	if w := s.lines("store.retention_days changed; takes effect on restart"); len(w) != 1 {
		t.Errorf("no restart warning for store.retention_days:\n%s", s.logs)
	}
	loadFor(600 * time.Millisecond)
	hup(4)
	loadFor(600 * time.Millisecond)
	close(stopLoad)
	wg.Wait()
	s.stop(t)
	if failures.Load() > 0 {
		t.Fatalf("%d requests not answered", failures.Load())
	}

	stored := map[string]string{}
	for _, e := range events(t, cfg) {
		switch e.Protocol {
		case event.ProtoDNS:
			stored[e.Domain] = e.Family
		case event.ProtoHTTP:
			stored[e.HTTPPath] = e.Family
		}
	}
	missing := 0
	for k := range answered {
		if _, ok := stored[k]; !ok {
			missing++
		}
	}
	wrong := 0
	for k := range after {
		if stored[k] != "after" {
			wrong++
		}
	}
	t.Logf("%d requests answered and stored, %d of them HTTP after the rules reload", len(answered), len(after))
	if missing > 0 || len(stored) != len(answered) {
		t.Fatalf("%d answered requests not stored; %d stored, %d answered", missing, len(stored), len(answered))
	}
	if len(after) == 0 || wrong > 0 {
		t.Fatalf("%d of %d HTTP requests after the rules reload classified by the old rules", wrong, len(after))
	}
}

// TestReloadBadConfig: a config file that does not validate changes
// nothing on SIGHUP and is logged with its error; once fixed, the next
// SIGHUP applies it.
func TestReloadBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "takedown.yaml")
	base := fmt.Sprintf("data_dir: %s\napi: {listen: \"127.0.0.1:0\"}\ndns: {listen: []}\ntransfer: {listen: []}\nlisten: {http: [], https: [], smtp: []}\n", filepath.Join(dir, "data"))
	writeText(t, cfgPath, base)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	reloads := make(chan os.Signal, 1)
	s := serveLogged(t, cfg, Hooks{Reloads: reloads, Reload: func() (config.Config, error) { return config.Load(cfgPath) }, LogLevel: level})
	hup := func() { reloads <- syscall.SIGHUP }
	writeText(t, cfgPath, base+"log: {level: debug}\nclassify: {rules: /nonexistent.yaml}\npipeline: {flush_ms: -5}\n")
	hup()
	l := s.waitLines(t, "SIGHUP: config not reloaded; the running config stays", 1)[0]
	if l["level"] != "ERROR" || !strings.Contains(fmt.Sprint(l["err"]), "pipeline.flush_ms: -5 is negative") {
		t.Fatalf("logged %v", l)
	}
	if level.Level() != slog.LevelInfo || len(s.lines("SIGHUP: reloaded config, rules and enrichment files")) != 0 {
		t.Fatalf("a bad config was applied: level %v\n%s", level.Level(), s.logs)
	}
	// A rules file that does not load keeps the rules in force; the rest
	// applies.
	writeText(t, cfgPath, base+"log: {level: debug}\nclassify: {rules: /nonexistent.yaml}\nstore: {retention_days: 30}\n")
	hup()
	l = s.waitLines(t, "SIGHUP: reloaded config, rules and enrichment files", 1)[0]
	if l["applied"] != "log.level" || l["failed"] != "classify.rules" || l["restart_needed"] != "store.retention_days" || level.Level() != slog.LevelDebug {
		t.Fatalf("reload: %v, level %v", l, level.Level())
	}
	if len(s.lines("store.retention_days changed; takes effect on restart")) != 1 {
		t.Fatalf("no restart warning:\n%s", s.logs)
	}
}

// TestReadyz: /readyz answers 503 naming the spool while serve replays the
// backlog a previous run left, and 200 once it is stored; /healthz
// answers 200 throughout.
func TestReadyz(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: [], https: [], smtp: []}
pipeline: {batch_size: 10, flush_ms: 10}
`, filepath.Join(dir, "data"))))
	if err != nil {
		t.Fatal(err)
	}
	// The backlog: events recorded by a pipeline that never ran. With ten
	// events per store transaction, replaying them takes a second or more
	// (some 200 transactions), while the API starts in milliseconds.
	const backlog = 2000
	sp, err := spool.Open(spool.Config{Dir: cfg.Pipeline.SpoolDir})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Spool: sp, Store: nopStore{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range backlog {
		p.Record(&event.Event{Time: time.Now().UTC(), Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP: netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), Domain: fmt.Sprintf("b%d.%s", i, seizedZone)})
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	s := serveLogged(t, cfg, Hooks{})
	get := func(path string) (int, readyBody) {
		t.Helper()
		resp, err := http.Get("http://" + s.api + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b readyBody
		if path == "/readyz" {
			if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, b
	}
	code, b := get("/readyz")
	if code != http.StatusServiceUnavailable || !slices.Equal(b.NotReady, []string{"spool"}) || b.Ready ||
		b.Checks["listeners"] != "ok" || b.Checks["store"] != "ok" || !strings.HasPrefix(b.Checks["spool"], "replaying") {
		t.Fatalf("/readyz during the replay: %d %+v", code, b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz during the replay: %d", code)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, b = get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60 s: %d %+v", code, b)
		}
	}
	if !b.Ready || len(b.NotReady) != 0 || b.Checks["spool"] != "ok" {
		t.Fatalf("/readyz when ready: %+v", b)
	}
	tok, err := ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := api.NewClient(s.api, tok, "test").Status(context.Background()); err != nil || st.Store.Events != backlog {
		t.Fatalf("ready with %d of %d events stored (%v)", st.Store.Events, backlog, err)
	}
	s.stop(t)
	if n := len(events(t, cfg)); n != backlog {
		t.Fatalf("%d events stored, want the backlog of %d", n, backlog)
	}
}

// nopStore stands in for the store of a pipeline that only records.
type nopStore struct{}

func (nopStore) AppendMarked(context.Context, []event.Event, string, []byte) error { return nil }
func (nopStore) Mark(context.Context, string) ([]byte, error)                      { return nil, nil }
