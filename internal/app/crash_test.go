package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/spawn"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/testnet"
)

// serveEnv names the config file with which the test binary, started
// again by a test, runs `takedown serve` instead of the tests: a real
// process that the test can kill -9.
const serveEnv = "TAKEDOWN_TEST_SERVE_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(serveEnv); path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		hup := make(chan os.Signal, 1) // as takedown serve
		signal.Notify(hup, syscall.SIGHUP)
		reload := func() (config.Config, error) { return config.Load(path) }
		if err := ServeWith(ctx, cfg, log, Hooks{Reloads: hup, Reload: reload}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testnet.Turn()
	os.Exit(m.Run())
}

// child is `takedown serve` in a process of its own.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

// startServe starts serve with the config file cfgPath in a child
// process, with env (NAME=VALUE) added to its environment.
func startServe(t *testing.T, cfgPath string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), serveEnv+"="+cfgPath), env...)
	cmd.Stderr = new(testnet.Buffer) // kept for the failure message
	// The child dies with the test binary, even one killed by -timeout
	// (spawn forks it from a thread that lives as long as the binary).
	if err := spawn.Start(cmd); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

func (c *child) stderr() string { return c.cmd.Stderr.(*testnet.Buffer).String() }

// TestKill9UnderLoad runs serve in a process of its own under a sustained
// DNS load from many loopback addresses, kills it with SIGKILL, and starts
// it again. Every event that was in the store or in the spool at the kill
// is then stored exactly once; what is lost is what was still in the
// process's memory (the spool's write buffer, flushed every 10 ms), which
// the test bounds.
func TestKill9UnderLoad(t *testing.T) {
	dir := t.TempDir()
	dnsPort, apiPort := testnet.FreePort(t), testnet.FreePort(t)
	world, err := demoworld.New()
	if err != nil {
		t.Fatal(err)
	}
	worldDB := filepath.Join(dir, "world.mmdb")
	if err := world.WriteFile(worldDB); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "takedown.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns:
  listen: ["127.0.0.1:%d"]
  rrl: {responses_per_second: -1}
transfer: {listen: []}
listen: {http: ["127.0.0.1:0"], https: ["127.0.0.1:0"], smtp: ["127.0.0.1:0"]}
enrich: {databases: [%s]}
`, filepath.Join(dir, "data"), apiPort, dnsPort, worldDB)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := registry.Change{Actor: "test"}
	if _, err := local.Registry.AddCase(ctx, registry.NewCase{Name: "waledac", Court: "E.D. Va.", Docket: "1:10-cv-00156"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.ImportDomains(ctx, "waledac", "t", []byte("seized.example.com\n"), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.SetState(ctx, []string{"seized.example.com"}, registry.StateRestrained, ch); err != nil {
		t.Fatal(err)
	}
	local.Close()

	dnsAddr := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	srv := startServe(t, cfgPath)
	waitUp(t, srv, dnsAddr)

	// The load: bots on 16 loopback addresses of the demo world, each
	// query a name of its own, so that the store's rows can be matched
	// one to one with the answers.
	var answered sync.Map
	var sent, nanswered atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for b := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := world.Addr(uint64(b) * 997)
			conn, err := net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice()}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dnsAddr)))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			buf := make([]byte, 512)
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				name := fmt.Sprintf("b%d-q%d.seized.example.com.", b, i)
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				raw, _ := m.Pack()
				sent.Add(1)
				if _, err := conn.Write(raw); err != nil {
					return
				}
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				// The answer to this query; one that comes later than
				// the deadline (a loaded machine) is read here as a
				// stale answer to an earlier query and skipped, or every
				// answer after it would be taken for the one before.
				for {
					n, err := conn.Read(buf)
					if err != nil {
						break
					}
					var r dns.Msg
					if r.Unpack(buf[:n]) != nil || r.Id != m.Id {
						continue
					}
					if len(r.Answer) == 1 {
						answered.Store(strings.TrimSuffix(name, "."), true)
						nanswered.Add(1)
					}
					break
				}
				// Paced, at most 1,000 queries a second each: a load
				// that takes every CPU leaves the store writer, in the
				// idle CPU class, nothing until it eases (by design:
				// the spool holds the difference), and this test wants
				// events stored while the load runs.
				time.Sleep(time.Millisecond)
			}
		}()
	}
	// Load until some events are in the store and more wait in the
	// spool, then the kill, with the load still running.
	// The API starts after the sinkhole: wait for its token.
	var tok string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if tok, err = ReadToken(cfg.API.TokenFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	cl := api.NewClient(cfg.API.Listen, tok, "test")
	loadStart := time.Now()
	for deadline := loadStart.Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := cl.Status(ctx)
		if err == nil && st.Pipeline.Stored > 0 && nanswered.Load() >= 20000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no events stored under load: %+v %v\n%s", st, err, srv.stderr())
		}
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	close(stopLoad)
	wg.Wait()
	loadTime := time.Since(loadStart)
	t.Logf("load: %d queries sent, %d answered in %v before the kill", sent.Load(), nanswered.Load(), loadTime.Round(time.Millisecond))

	// What the kill left: events in the store, and in the spool after the
	// store's mark.
	inStore := storedDomains(t, cfg)
	inSpool := spooledDomains(t, cfg)
	for d, n := range inStore {
		if n != 1 {
			t.Fatalf("%s stored %d times before the restart", d, n)
		}
	}
	for d := range inSpool {
		if inStore[d] > 0 {
			t.Fatalf("%s is both in the store and in the spool after the mark", d)
		}
	}
	t.Logf("after the kill: %d events in the store, %d waiting in the spool", len(inStore), len(inSpool))

	// Restart: the spool is replayed into the store.
	srv = startServe(t, cfgPath)
	waitUp(t, srv, dnsAddr)
	want := int64(len(inStore) + len(inSpool))
	var st api.Status
	for end := time.Now().Add(30 * time.Second); ; {
		st, err = cl.Status(ctx)
		if err == nil && st.Store.Events >= want {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("store holds %d events, want %d (status %+v, err %v)\n%s", st.Store.Events, want, st, err, srv.stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-srv.done; err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, srv.stderr())
	}
	if strings.Contains(srv.stderr(), "level=ERROR") {
		t.Fatalf("serve logged errors after the restart:\n%s", srv.stderr())
	}

	final := storedDomains(t, cfg)
	for d, n := range final {
		if n != 1 {
			t.Fatalf("%s stored %d times after the restart (before it: %d in the store, in the spool after the mark: %v)\n%s",
				d, n, inStore[d], inSpool[d], srv.stderr())
		}
	}
	if int64(len(final)) != want {
		t.Fatalf("%d events stored after the restart, want %d", len(final), want)
	}
	for d := range inSpool {
		if final[d] != 1 {
			t.Fatalf("%s, in the spool at the kill, was not stored", d)
		}
	}
	// Every answered query was recorded before its answer went out; those
	// missing were in the write buffer at the kill.
	lost := 0
	answered.Range(func(k, _ any) bool {
		if final[k.(string)] == 0 {
			lost++
		}
		return true
	})
	t.Logf("answered before the kill and lost: %d of %d", lost, nanswered.Load())
	// The buffer is written every 10 ms; allow for a slow machine a
	// quarter of a second of this load.
	if limit := int(float64(nanswered.Load()) / loadTime.Seconds() / 4); lost > max(limit, 50) {
		t.Fatalf("%d answered queries lost, more than a quarter second of load (%d)", lost, limit)
	}
}

// waitUp waits until the sinkhole answers a query.
func waitUp(t *testing.T, c *child, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion("up.seized.example.com.", dns.TypeA)
		cl := &dns.Client{Timeout: 200 * time.Millisecond}
		if r, _, err := cl.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return
		}
		select {
		case err := <-c.done:
			t.Fatalf("serve exited: %v\n%s", err, c.stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer DNS in time\n%s", c.stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedDomains counts the stored events per domain, and checks that the
// load's events were enriched from the demo world.
func storedDomains(t *testing.T, cfg config.Config) map[string]int {
	t.Helper()
	local, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	out := map[string]int{}
	err = local.Store.Scan(context.Background(), eventstore.ScanQuery{}, func(e *event.Event) error {
		if strings.HasPrefix(e.Domain, "up.") {
			return nil
		}
		if e.ASN == 0 || e.CountryCode == "" {
			return fmt.Errorf("event of %s from %s not enriched: asn %d country %q", e.Domain, e.SrcIP, e.ASN, e.CountryCode)
		}
		out[e.Domain]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// spooledDomains reads the spool from the store's mark on, as the next
// serve will.
func spooledDomains(t *testing.T, cfg config.Config) map[string]bool {
	t.Helper()
	local, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := local.Store.Mark(context.Background(), pipeline.MarkSource)
	local.Close()
	if err != nil {
		t.Fatal(err)
	}
	var from spool.Pos
	if raw != nil {
		// The mark is the spool's identity, then the position.
		if err := from.UnmarshalBinary(raw[len(raw)-16:]); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := spool.Open(spool.Config{Dir: cfg.Pipeline.SpoolDir})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	r, err := sp.NewReader(from)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string]bool{}
	var dec event.Decoder
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		rec, _, err := r.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var e event.Event
		if err := dec.Decode(rec, &e); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.Domain, "up.") {
			if out[e.Domain] {
				t.Fatalf("%s twice in the spool", e.Domain)
			}
			out[e.Domain] = true
		}
	}
}
