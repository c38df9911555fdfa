package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/testnet"
)

// readyz returns /readyz's status code and body.
func readyz(t *testing.T, addr string) (int, readyBody) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b readyBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func waitReadyz(t *testing.T, addr string, want int, check func(readyBody) bool) readyBody {
	t.Helper()
	var code int
	var b readyBody
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, b = readyz(t, addr)
		if code == want && (check == nil || check(b)) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %+v, want %d", code, b, want)
		}
	}
}

func client(t *testing.T, cfg config.Config, addr string) *api.Client {
	t.Helper()
	tok, err := ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(addr, tok, "test")
}

func dnsEvent(i int) *event.Event {
	return &event.Event{Time: time.Now().UTC(), Protocol: event.ProtoDNS, Transport: event.TransportUDP,
		SrcIP: netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), Domain: fmt.Sprintf("b%d.%s", i, seizedZone)}
}

// TestBadRecordsDoNotStopTheStore is the year-1000 event, left in
// the spool (by an older version that let it through, or a damaged disk)
// with an undecodable record: serve becomes ready, stores every event
// around them, lists them in its status and quarantine, and a replay after
// a fix stores what is now acceptable and keeps the rest.
func TestBadRecordsDoNotStopTheStore(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: [], https: [], smtp: []}
pipeline: {batch_size: 100, flush_ms: 10}
`, filepath.Join(dir, "data"))))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(spool.Config{Dir: cfg.Pipeline.SpoolDir})
	if err != nil {
		t.Fatal(err)
	}
	old := dnsEvent(7)
	old.Time = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 300 {
		var rec []byte
		switch i {
		case 100:
			rec = event.AppendBinary(nil, old)
		case 200:
			rec = []byte("\xffnot an event")
		default:
			rec = event.AppendBinary(nil, dnsEvent(i))
		}
		if err := sp.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	// A record the store refused once, for a reason since fixed: the
	// replay stores it.
	q, err := quarantine.Open(cfg.Pipeline.QuarantineDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Add(quarantine.NewEntry(quarantine.KindRefused, "engine error", "test", event.AppendBinary(nil, dnsEvent(1000)), time.Now())); err != nil {
		t.Fatal(err)
	}

	s := serveLogged(t, cfg, Hooks{})
	waitReadyz(t, s.api, http.StatusOK, nil)
	c := client(t, cfg, s.api)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Store.Events != 298 || st.Pipeline.Quarantined != 2 || st.Quarantine.Entries != 3 {
		t.Fatalf("status: %d events stored, pipeline %+v, quarantine %+v; want 298 stored, 2 quarantined, 3 in the quarantine",
			st.Store.Events, st.Pipeline, st.Quarantine)
	}
	list, err := c.QuarantineList(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, k := range list.Summary.Kinds {
		kinds[k.Kind] = k.Entries
	}
	if len(list.Entries) != 3 || kinds[quarantine.KindInvalid] != 1 || kinds[quarantine.KindUndecodable] != 1 || kinds[quarantine.KindRefused] != 1 {
		t.Fatalf("quarantine list: %+v", list)
	}
	for _, en := range list.Entries {
		if en.Kind == quarantine.KindInvalid && !strings.Contains(en.Reason, "time 1000-01-01T00:00:00Z is not between") {
			t.Errorf("reason %q", en.Reason)
		}
	}
	res, err := c.ReplayQuarantine(ctx)
	if err != nil || res.Replayed != 1 || res.Kept != 2 {
		t.Fatalf("replay: %+v, %v; want 1 replayed, 2 kept", res, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err = c.Status(ctx); err == nil && st.Store.Events == 299 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replayed event is not stored: %+v %v", st.Store, err)
		}
	}
	if st.Quarantine.Entries != 2 {
		t.Fatalf("quarantine after the replay: %+v", st.Quarantine)
	}
	s.stop(t)
	// The evidence log lists exactly the stored events: not the one
	// refused.
	logMatchesStore(t, cfg, 299)

	// Without a serve the replay goes to the spool, and keeps what is
	// still invalid.
	res, err = LocalQuarantine{Cfg: cfg}.ReplayQuarantine(ctx)
	if err != nil || res.Replayed != 0 || res.Kept != 2 {
		t.Fatalf("local replay: %+v, %v", res, err)
	}
}

// TestIngestRefusesTimesTheStoreCannotTake: the year-1000 event sent to
// /v1/ingest is refused whole with a 400 naming the event and its time,
// and nothing of the request is recorded.
func TestIngestRefusesTimesTheStoreCannotTake(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: [], https: [], smtp: []}
`, filepath.Join(dir, "data"))))
	if err != nil {
		t.Fatal(err)
	}
	s := serveLogged(t, cfg, Hooks{})
	tok, _ := ReadToken(cfg.API.TokenFile)
	for _, when := range []string{"1000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2262-01-01T00:00:00Z"} {
		body := `{"time.source":"2026-11-30T10:00:00Z","source.ip":"127.1.2.3","protocol.application":"http"}` + "\n" +
			`{"time.source":"` + when + `","source.ip":"127.1.2.3","protocol.application":"http"}` + "\n"
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.api+"/v1/ingest?sensor=s1", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "event 2: ") || !strings.Contains(string(b), when[:10]) {
			t.Fatalf("ingest of a time %s: %d %s", when, resp.StatusCode, b)
		}
	}
	st, err := client(t, cfg, s.api).Status(context.Background())
	if err != nil || st.Pipeline.Recorded != 0 {
		t.Fatalf("recorded after refusals: %+v %v", st.Pipeline, err)
	}
}

// TestIngestAnswerMeansDurable: serve answers a sensor's POST /v1/ingest
// only once the events are written to the spool and fsynced, so that a
// kill -9 right after the 200 loses none of them (before, 2,647 of 5,000
// were stored after the restart). Three rounds.
func TestIngestAnswerMeansDurable(t *testing.T) {
	dir := t.TempDir()
	apiPort := testnet.FreePort(t)
	cfgPath := filepath.Join(dir, "takedown.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: [], https: [], smtp: []}
pipeline: {flush_ms: 50}
`, filepath.Join(dir, "data"), apiPort)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", apiPort)
	const perRound = 5000
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for round := range 3 {
		srv := startServe(t, cfgPath)
		waitAPI(t, srv, addr)
		tok, err := ReadToken(cfg.API.TokenFile)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		for i := range perRound {
			n := round*perRound + i
			e := event.Event{Time: base.Add(time.Duration(n) * time.Millisecond), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
				SrcIP: netip.AddrFrom4([4]byte{127, 2, byte(n >> 8), byte(n)}), SrcPort: uint16(n), DstPort: 80,
				Domain: "www.example.com", HTTPMethod: "POST", HTTPPath: fmt.Sprintf("/gate.php?n=%d", n),
				HTTPUserAgent: "Mozilla/4.0 (compatible; MSIE 7.0)", PayloadHead: bytes.Repeat([]byte("x"), 40)}
			body.Write(event.AppendJSON(nil, &e))
			body.WriteByte('\n')
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/ingest?sensor=probe", &body)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// The kill comes the moment the answer's head is in.
		srv.cmd.Process.Kill()
		var res api.IngestResult
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		<-srv.done
		if resp.StatusCode != http.StatusOK || err != nil || res.Accepted != perRound {
			t.Fatalf("round %d: ingest answered %d %+v %v", round, resp.StatusCode, res, err)
		}
	}
	// A last start stores what the spool holds.
	srv := startServe(t, cfgPath)
	waitAPI(t, srv, addr)
	want := int64(3 * perRound)
	var st api.Status
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tok, _ := ReadToken(cfg.API.TokenFile)
		st, err = api.NewClient(addr, tok, "test").Status(context.Background())
		if err == nil && st.Store.Events >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events stored after kill -9 right after each answer (%v)", st.Store.Events, want, err)
		}
	}
	if st.Store.Events != want {
		t.Fatalf("%d events stored, want %d", st.Store.Events, want)
	}
}

// waitAPI waits until serve's API answers.
func waitAPI(t *testing.T, srv *child, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-srv.done:
			t.Fatalf("serve exited: %v\n%s", err, srv.stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve's API not up\n%s", srv.stderr())
		}
	}
}

// tmpfs mounts a tmpfs of size bytes at dir for the test (the tests run as
// root, as .ci/run does).
func tmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs for the full-disk test (run as root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// fill writes a file into dir that leaves about free bytes of its
// filesystem free, and returns its path.
func fill(t *testing.T, dir string, free int64) string {
	t.Helper()
	avail, err := spool.FreeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n := avail - free; n > 0; n -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), n)]); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// queryLoad sends n DNS queries for names of the seized zone from a few
// loopback addresses, without waiting for answers for long.
func queryLoad(t *testing.T, dnsAddr string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for b := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 5, 0, byte(b+1))}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dnsAddr)))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			buf := make([]byte, 1500)
			for i := 0; sent.Add(1) <= int64(n); i++ {
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("b%d-q%d.%s.", b, i, seizedZone), dns.TypeA)
				raw, _ := m.Pack()
				if _, err := conn.Write(raw); err != nil {
					return
				}
				if i%16 == 0 {
					conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
					conn.Read(buf)
				}
			}
		}()
	}
	wg.Wait()
}

// scrape returns the value of a metric (summed over its series) from
// serve's /metrics on the API at addr, with the token of cfg.
func scrape(t *testing.T, cfg config.Config, addr, name string) float64 {
	t.Helper()
	resp, err := getMetrics(http.DefaultClient, addr, cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// TestFullDiskIsCounted is the full disk: data_dir on a small
// filesystem that fills up under load. Every event lost is counted where
// the README says (status, /v1/status, the shutdown log, /metrics, and
// they agree), the backlog is what the spool holds on disk, /readyz
// reports the spool or store that cannot write, and once there is room
// again everything recovers. With the free-space reserve the spool stops
// before the disk is full, and says why.
func TestFullDiskIsCounted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reserveMB int
		leave     int64 // bytes left free by the filler
	}{
		{name: "write errors", reserveMB: -1, leave: 1 << 20},
		{name: "reserve", reserveMB: 16, leave: 10 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			tmpfs(t, data, 96<<20)
			dnsPort := testnet.FreePort(t)
			cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
dns:
  listen: ["127.0.0.1:%d"]
  rrl: {responses_per_second: -1}
transfer: {listen: []}
listen: {http: [], https: [], smtp: []}
store: {memory_limit_mb: 64}
pipeline: {flush_ms: 20, disk_reserve_mb: %d}
`, data, dnsPort, tc.reserveMB)))
			if err != nil {
				t.Fatal(err)
			}
			seize(t, cfg, "wal", "waledac", seizedZone)
			s := serveLogged(t, cfg, Hooks{})
			waitReadyz(t, s.api, http.StatusOK, nil)
			filler := fill(t, data, tc.leave)
			dnsAddr := fmt.Sprintf("127.0.0.1:%d", dnsPort)
			c := client(t, cfg, s.api)
			ctx := context.Background()
			var st api.Status
			// Load, 20,000 queries at a time, until drops are counted.
			for deadline := time.Now().Add(30 * time.Second); ; {
				queryLoad(t, dnsAddr, 20_000)
				st, err = c.Status(ctx)
				if err == nil && st.Pipeline.Dropped > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no drops counted on a full disk: %+v, %+v (%v)", st.Pipeline, st.Spool, err)
				}
			}
			b := waitReadyz(t, s.api, http.StatusServiceUnavailable, nil)
			switch tc.name {
			case "reserve":
				if st.Spool.DroppedReserve == 0 || !st.Spool.LowSpace || !strings.Contains(b.Checks["spool"], "reserve") {
					t.Fatalf("below the reserve: spool %+v, readyz %+v", st.Spool, b)
				}
			default:
				if st.Spool.DroppedWrite+st.Spool.DroppedFull == 0 {
					t.Fatalf("a full disk: spool %+v", st.Spool)
				}
				if !strings.Contains(b.Checks["spool"], "cannot write") && !strings.Contains(b.Checks["store"], "cannot commit") {
					t.Fatalf("/readyz on a full disk: %+v", b)
				}
			}
			// The counts agree with /metrics, and the backlog is what
			// the spool's files hold, not what was recorded.
			if m := scrape(t, cfg, s.api, "takedown_spool_records_dropped_total"); uint64(m) < st.Pipeline.Dropped {
				t.Errorf("status dropped %d, /metrics %v", st.Pipeline.Dropped, m)
			}
			if waiting := st.Pipeline.Recorded - st.Pipeline.Stored; st.Pipeline.Backlog > waiting+waiting/20+10 || st.Pipeline.BacklogBytes > st.Spool.Bytes {
				t.Errorf("backlog %d (%d bytes) for %d recorded, %d stored, spool %d bytes", st.Pipeline.Backlog,
					st.Pipeline.BacklogBytes, st.Pipeline.Recorded, st.Pipeline.Stored, st.Spool.Bytes)
			}
			// Room again: the filler goes, and serve recovers.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			queryLoad(t, dnsAddr, 200)
			waitReadyz(t, s.api, http.StatusOK, nil)
			final, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.stop(t)
			logged := s.lines("pipeline")
			if len(logged) != 1 || uint64(logged[0]["dropped"].(float64)) != final.Pipeline.Dropped {
				t.Fatalf("shutdown log %v, status dropped %d", logged, final.Pipeline.Dropped)
			}
		})
	}
}
