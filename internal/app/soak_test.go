package app

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/testnet"
)

// soakEnv turns on TestSoakMemory, which takes a minute and a half and
// most of a small machine.
const soakEnv = "TAKEDOWN_SOAK"

// Bounds TestSoakMemory asserts: what a small sinkhole with the default
// config may hold (README.md, "What bounds memory").
const (
	soakPeakRSS = 512 << 20
	// soakSettle is how long serve has to come back down after the load:
	// its heap goal follows the live heap at the next collection, which
	// the runtime forces at least every two minutes.
	soakSettle = 150 * time.Second
	// soakBatchEvent is what one event of the pipeline's batch may keep
	// on the heap after the load: the batch's array (696 bytes an event)
	// stays, and its events' decoded fields until they are overwritten.
	soakBatchEvent = 1 << 10
	// soakHeapSlack is the rest of the live heap the load may leave: the
	// live counters (exact sets of up to 100,000 hosts and bot ids), pools.
	soakHeapSlack = 16 << 20
)

// TestSoakMemory runs serve with the default config (loopback ports, no
// GOGC or GOMEMLIMIT) in a process of its own and loads its HTTP listener
// for a minute (TAKEDOWN_SOAK_SECONDS) with 2,000 keep-alive connections that
// each ask every 2 s, 200 slowloris clients and four streams of
// one-request connections. It asserts that serve's peak RSS (VmHWM) stays
// under 512 MiB, and that after the load its live Go heap comes back to
// what it was at start plus what the pipeline's batch keeps: nothing the
// connections held stays. RSS itself does not come back, by design:
// DuckDB keeps the blocks it wrote cached up to store.memory_limit_mb, and
// the Go runtime keeps the pages of its heap goal.
func TestSoakMemory(t *testing.T) {
	if os.Getenv(soakEnv) == "" {
		t.Skip("a soak of two minutes or more: set " + soakEnv + "=1 to run it")
	}
	loadFor := time.Minute
	if s := os.Getenv(soakEnv + "_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s_SECONDS=%q is not a number of seconds", soakEnv, s)
		}
		loadFor = time.Duration(n) * time.Second
	}
	// The clients' descriptors: 2,000 + 200 + the streams'.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 4096 {
		t.Skipf("RLIMIT_NOFILE's hard limit is %d; the soak needs 4096", lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// serve's defaults, whatever the shell says.
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "off")

	dir := t.TempDir()
	apiPort, dnsPort, httpPort := testnet.FreePort(t), testnet.FreePort(t), testnet.FreePort(t)
	cfgPath := filepath.Join(dir, "takedown.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"]}
transfer: {listen: []}
listen: {http: ["127.0.0.1:%d"], https: [], smtp: []}
`, filepath.Join(dir, "data"), apiPort, dnsPort, httpPort)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "waledac", "waledac", "seized.example.com")
	srv := startServe(t, cfgPath)
	pid := srv.cmd.Process.Pid
	api := cfg.API.Listen
	waitReady(t, srv, api)
	base, baseGo := procMem(t, pid), goMem(t, api, cfg.API.TokenFile)
	t.Logf("ready: RSS %d MiB; Go: heap in use %d MiB, goal %d MiB", base.rss>>20, baseGo.inUse>>20, baseGo.goal>>20)

	// A line every 5 s (VmHWM keeps the true peak).
	stopLog := make(chan struct{})
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopLog:
				return
			case <-tick.C:
			}
			m, ok := readProcMem(pid)
			g, gok := readGoMem(api, cfg.API.TokenFile)
			if ok && gok {
				t.Logf("RSS %d MiB (peak %d MiB); Go: obtained from the OS %d MiB, heap in use %d MiB, goal %d MiB",
					m.rss>>20, m.hwm>>20, g.sys>>20, g.inUse>>20, g.goal>>20)
			}
		}
	}()
	defer func() { close(stopLog); <-logged }()

	l := newSoakLoad(fmt.Sprintf("127.0.0.1:%d", httpPort))
	l.start(2000, 200, 4)
	select {
	case <-time.After(loadFor):
	case err := <-srv.done:
		l.stop()
		t.Fatalf("serve exited under load: %v\n%s", err, srv.stderr())
	}
	l.stop()
	under := procMem(t, pid)
	t.Logf("load of %v: %d keep-alive requests, %d one-request connections, %d slowloris connections; %d client errors",
		loadFor, l.kept.Load(), l.single.Load(), l.slow.Load(), l.errs.Load())
	t.Logf("at the end of the load: RSS %d MiB, peak %d MiB", under.rss>>20, under.hwm>>20)
	if l.kept.Load() < 1000 || l.single.Load() < 1000 {
		t.Errorf("the load did not get through: %d keep-alive requests, %d one-request connections", l.kept.Load(), l.single.Load())
	}

	// After the load the live heap, half the heap goal (GOGC 100), comes
	// back to its start plus the batch's keep.
	keep := int64(cfg.Pipeline.BatchSize)*soakBatchEvent + soakHeapSlack
	var g goMemStats
	var after memStatus
	start := time.Now()
	settled := pollUntil(soakSettle, func() bool {
		g, after = goMem(t, api, cfg.API.TokenFile), procMem(t, pid)
		return g.goal/2 <= baseGo.goal/2+keep
	})
	t.Logf("%v after the load: RSS %d MiB, peak %d MiB; Go: obtained from the OS %d MiB, heap in use %d MiB, goal %d MiB",
		time.Since(start).Round(time.Second), after.rss>>20, after.hwm>>20, g.sys>>20, g.inUse>>20, g.goal>>20)
	if after.hwm > soakPeakRSS {
		t.Errorf("peak RSS %d MiB, over the bound of %d MiB", after.hwm>>20, soakPeakRSS>>20)
	}
	if !settled {
		t.Errorf("Go heap goal %d MiB %v after the load: a live heap of about %d MiB, more than the %d MiB at start and the %d MiB the batch of %d events and the counters may keep",
			g.goal>>20, soakSettle, g.goal>>21, baseGo.goal>>21, keep>>20, cfg.Pipeline.BatchSize)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Errorf("serve: %v\n%s", err, srv.stderr())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("serve did not stop\n%s", srv.stderr())
	}
}

// soakLoad is TestSoakMemory's clients, each from a loopback address of
// its group's so that max_conns_per_ip (256) does not turn them away.
type soakLoad struct {
	addr                     string
	quit                     chan struct{}
	wg                       sync.WaitGroup
	kept, single, slow, errs atomic.Int64
}

func newSoakLoad(addr string) *soakLoad { return &soakLoad{addr: addr, quit: make(chan struct{})} }

func (l *soakLoad) stop() {
	close(l.quit)
	l.wg.Wait()
}

func (l *soakLoad) stopped() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

// dial connects from 127.0.group.(1 + i%16), trying again after retry
// while it fails; it returns nil when the load is stopping.
func (l *soakLoad) dial(group, i int, retry time.Duration) net.Conn {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(group), byte(1+i%16))}}
	for !l.stopped() {
		c, err := d.Dial("tcp", l.addr)
		if err == nil {
			return c
		}
		l.errs.Add(1)
		if l.pause(retry) {
			break
		}
	}
	return nil
}

func (l *soakLoad) start(keepAlive, slowloris, streams int) {
	for i := range keepAlive {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.keepAlive(i) }()
	}
	for i := range slowloris {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.slowloris(i) }()
	}
	for i := range streams {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.stream(i) }()
	}
}

// keepAlive holds a connection and asks on it every 2 s (the first time
// after up to 2 s, so that the 2,000 do not come at once).
func (l *soakLoad) keepAlive(i int) {
	wait := time.Duration(i%2000) * time.Millisecond
	for !l.stopped() {
		c := l.dial(1, i, time.Second)
		if c == nil {
			return
		}
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			if l.pause(wait) {
				c.Close()
				return
			}
			wait = 2 * time.Second
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET /gate.php?id=k%d&n=%d HTTP/1.1\r\nHost: www.seized.example.com\r\nUser-Agent: soak/%d\r\n\r\n", i, n, i)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				l.errs.Add(1)
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			l.kept.Add(1)
		}
		c.Close()
	}
}

// slowloris sends a header line a second until the server gives up on
// the request (the header timeout), then starts again.
func (l *soakLoad) slowloris(i int) {
	for !l.stopped() {
		c := l.dial(2, i, time.Second)
		if c == nil {
			return
		}
		l.slow.Add(1)
		_, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: www.seized.example.com\r\n")
		for n := 0; err == nil; n++ {
			if l.pause(time.Second) {
				c.Close()
				return
			}
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, err = fmt.Fprintf(c, "X-Slow-%d: %d\r\n", n, n)
		}
		c.Close()
	}
}

// stream makes one-request connections back to back.
func (l *soakLoad) stream(i int) {
	buf := make([]byte, 4096)
	for n := 0; !l.stopped(); n++ {
		c := l.dial(3, i, 100*time.Millisecond)
		if c == nil {
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		body := fmt.Sprintf("bot=%d-%d&data=0123456789abcdef", i, n)
		fmt.Fprintf(c, "POST /gate.php?id=s%d-%d HTTP/1.1\r\nHost: www.seized.example.com\r\nUser-Agent: soak-stream\r\n"+
			"Content-Length: %d\r\nConnection: close\r\n\r\n%s", i, n, len(body), body)
		var got []byte
		for {
			k, err := c.Read(buf)
			got = append(got, buf[:k]...)
			if err != nil {
				break
			}
		}
		c.Close()
		if bytes.HasPrefix(got, []byte("HTTP/1.1 200 ")) {
			l.single.Add(1)
		} else {
			l.errs.Add(1)
		}
	}
}

// pause waits d; it reports true when the load is stopping.
func (l *soakLoad) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.quit:
		return true
	case <-t.C:
		return false
	}
}

// memStatus is a process's resident memory now and at its peak.
type memStatus struct{ rss, hwm int64 }

func readProcMem(pid int) (memStatus, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, false
	}
	var m memStatus
	for line := range strings.SplitSeq(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			m.rss = kb << 10
		case "VmHWM":
			m.hwm = kb << 10
		}
	}
	return m, m.rss > 0
}

func procMem(t *testing.T, pid int) memStatus {
	t.Helper()
	m, ok := readProcMem(pid)
	if !ok {
		t.Fatalf("reading /proc/%d/status", pid)
	}
	return m
}

// goMemStats is what serve's /metrics says of its Go memory.
type goMemStats struct{ sys, inUse, goal int64 }

// soakClient asks serve's API during the soak.
var soakClient = &http.Client{Timeout: 5 * time.Second}

func readGoMem(api, tokenFile string) (goMemStats, bool) {
	resp, err := getMetrics(soakClient, api, tokenFile)
	if err != nil {
		return goMemStats{}, false
	}
	defer resp.Body.Close()
	var g goMemStats
	fields := map[string]*int64{
		"go_memstats_sys_bytes":        &g.sys,
		"go_memstats_heap_inuse_bytes": &g.inUse,
		"go_memstats_next_gc_bytes":    &g.goal,
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, val, _ := strings.Cut(sc.Text(), " ")
		if p := fields[name]; p != nil {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return goMemStats{}, false
			}
			*p = int64(f)
		}
	}
	return g, g.sys > 0 && g.goal > 0
}

func goMem(t *testing.T, api, tokenFile string) goMemStats {
	t.Helper()
	g, ok := readGoMem(api, tokenFile)
	if !ok {
		t.Fatalf("no Go memory statistics in http://%s/metrics", api)
	}
	return g
}

// waitReady waits until serve's /readyz says ready.
func waitReady(t *testing.T, c *child, api string) {
	t.Helper()
	if !pollUntil(30*time.Second, func() bool {
		select {
		case err := <-c.done:
			t.Fatalf("serve exited: %v\n%s", err, c.stderr())
		default:
		}
		resp, err := soakClient.Get("http://" + api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("serve not ready in 30 s\n%s", c.stderr())
	}
}

// pollUntil polls cond until it holds or d has passed; it reports whether
// it held.
func pollUntil(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}
