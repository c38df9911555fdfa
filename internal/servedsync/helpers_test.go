package servedsync

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/servedset"
)

// sensorPublish is what the sensor s1 may publish: the JetStream API
// subjects a Follower uses, and nothing else. Its subscriptions are its
// own inbox. The permissions helper of the deployment writes the same.
var sensorPublish = []string{
	"$JS.API.STREAM.INFO.TAKEDOWN_SERVED",
	"$JS.API.STREAM.INFO.OBJ_takedown_served",
	"$JS.API.CONSUMER.CREATE.TAKEDOWN_SERVED.>",
	"$JS.API.CONSUMER.CREATE.OBJ_takedown_served.>",
	"$JS.API.CONSUMER.MSG.NEXT.TAKEDOWN_SERVED.*",
	"$JS.API.CONSUMER.MSG.NEXT.OBJ_takedown_served.*",
	"$JS.API.CONSUMER.DELETE.TAKEDOWN_SERVED.*",
	"$JS.API.CONSUMER.DELETE.OBJ_takedown_served.*",
	"$JS.API.DIRECT.GET.OBJ_takedown_served.>",
}

const testPassword = "secret"

// natsConf is the server's configuration: one account with JetStream, the
// central with every right, the sensor s1 with sensorPublish and its inbox.
func natsConf(port int, dir string) string {
	quoted := make([]string, len(sensorPublish))
	for i, s := range sensorPublish {
		quoted[i] = strconv.Quote(s)
	}
	return fmt.Sprintf(`listen: 127.0.0.1:%d
jetstream { store_dir: %q }
accounts {
  TAKEDOWN {
    jetstream: enabled
    users: [
      { user: central, password: %q }
      { user: s1, password: %q, permissions: {
          publish: { allow: [%s] }
          subscribe: { allow: ["_INBOX_s1.>"] }
      } }
    ]
  }
}
`, port, dir, testPassword, testPassword, strings.Join(quoted, ", "))
}

// testServer is one NATS server with JetStream on a directory of the test.
// By default it runs embedded; with SERVEDSYNC_NATS_SERVER naming a
// nats-server binary (e.g. Debian's 2.9), the same tests run against that
// binary as a process.
type testServer struct {
	t    testing.TB
	port int
	conf string
	srv  *server.Server
	cmd  *exec.Cmd
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ts := &testServer{t: t, port: port, conf: filepath.Join(dir, "nats.conf")}
	if err := os.WriteFile(ts.conf, []byte(natsConf(port, filepath.Join(dir, "js"))), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ts.port) }

func (ts *testServer) start() {
	ts.t.Helper()
	if bin := os.Getenv("SERVEDSYNC_NATS_SERVER"); bin != "" {
		ts.cmd = exec.Command(bin, "-c", ts.conf)
		if err := ts.cmd.Start(); err != nil {
			ts.t.Fatal(err)
		}
		waitFor(ts.t, 10*time.Second, "the nats-server process to listen", func() bool {
			nc, err := nats.Connect(ts.url(), nats.UserInfo("central", testPassword))
			if err == nil {
				nc.Close()
			}
			return err == nil
		})
		return
	}
	opts, err := server.ProcessConfigFile(ts.conf)
	if err != nil {
		ts.t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		ts.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		ts.t.Fatal("nats server not ready")
	}
	ts.srv = s
}

func (ts *testServer) stop() {
	if ts.cmd != nil {
		ts.cmd.Process.Kill()
		ts.cmd.Wait()
		ts.cmd = nil
	}
	if ts.srv != nil {
		ts.srv.Shutdown()
		ts.srv.WaitForShutdown()
		ts.srv = nil
	}
}

// client is a connection of a user, which records the errors the server
// sends it (a permissions violation among them).
type client struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu   sync.Mutex
	errs []string
}

func connect(t testing.TB, ts *testServer, user string) *client {
	t.Helper()
	c := &client{}
	nc, err := nats.Connect(ts.url(),
		nats.UserInfo(user, testPassword),
		nats.CustomInboxPrefix("_INBOX_"+user),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err.Error())
			c.mu.Unlock()
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return c
}

// permissionErrors returns the permissions violations the server sent.
func (c *client) permissionErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.errs {
		if strings.Contains(strings.ToLower(e), "permission") {
			out = append(out, e)
		}
	}
	return out
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var testSinkhole = servedset.Sinkhole{
	NameServers: []servedset.NameServer{{Name: "ns1.sinkhole.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}},
	A:           []netip.Addr{netip.MustParseAddr("192.0.2.1")},
	TTL:         300,
}

// fullDelta is the full form of n zones d<i>.example of two cases.
func fullDelta(serial uint32, n int) *servedset.Delta {
	d := &servedset.Delta{To: serial, Sinkhole: &testSinkhole, Cases: []servedset.Case{
		{Name: "case-a", Family: "conficker", TXT: "sinkholed by order A"},
		{Name: "case-b", Family: "waledac", TXT: "sinkholed by order B"},
	}}
	d.Put = make([]servedset.Zone, n)
	for i := range n {
		d.Put[i] = servedset.Zone{Name: fmt.Sprintf("d%07d.example", i), Case: []string{"case-a", "case-b"}[i%2]}
	}
	return d
}

func fullSnapshot(t testing.TB, serial uint32, n int) *servedset.Snapshot {
	t.Helper()
	s, err := servedset.Empty().Apply(fullDelta(serial, n))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// central is a served set and its Publisher.
type central struct {
	t    testing.TB
	set  *servedset.Set
	pub  *Publisher
	stop func()
	n    int // names made so far by change
}

func startCentral(t testing.TB, c *client, snap *servedset.Snapshot, cfg PublisherConfig) *central {
	t.Helper()
	cen := &central{t: t, set: servedset.NewSet()}
	if snap != nil {
		cen.set.Replace(snap)
	}
	cfg.JS, cfg.Set = c.js, cen.set
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cen.pub = p
	cen.stop = goRun(t, "publisher", p.Run)
	if snap != nil && c.nc.IsConnected() {
		// Steps made from now on are deltas: the publisher put the set.
		waitFor(t, 10*time.Second, "the first full form", func() bool { return testutil.ToFloat64(p.m.fulls) >= 1 })
	}
	return cen
}

// change applies one step to the central's set: a new zone, and the zone
// added two steps before removed; it returns the step.
func (c *central) change() *servedset.Delta {
	c.t.Helper()
	cur := c.set.Load()
	d := &servedset.Delta{From: cur.Serial(), To: cur.Serial() + 1,
		Put: []servedset.Zone{{Name: fmt.Sprintf("new%d.example", c.n), Case: "case-b"}}}
	if c.n >= 2 {
		d.Remove = []string{fmt.Sprintf("new%d.example", c.n-2)}
	}
	c.n++
	if err := c.set.Apply(d); err != nil {
		c.t.Fatal(err)
	}
	return d
}

// sensor is a served set and its Follower.
type sensor struct {
	set  *servedset.Set
	f    *Follower
	stop func()
}

func startSensor(t testing.TB, c *client, set *servedset.Set, cfg FollowerConfig) *sensor {
	t.Helper()
	if set == nil {
		set = servedset.NewSet()
	}
	cfg.JS, cfg.Set = c.js, set
	f, err := NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &sensor{set: set, f: f, stop: goRun(t, "follower", f.Run)}
}

// goRun runs run until the returned stop (or the test's end) cancels it.
func goRun(t testing.TB, what string, run func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s Run: %v", what, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// rig is a server, a central with a set of 100 zones and a sensor that
// has the central's set after one change.
type rig struct {
	ts     *testServer
	cc, sc *client
	cen    *central
	sen    *sensor
}

func newRig(t testing.TB, pcfg PublisherConfig, fcfg FollowerConfig) *rig {
	t.Helper()
	r := &rig{ts: newTestServer(t)}
	r.cc, r.sc = connect(t, r.ts, "central"), connect(t, r.ts, "s1")
	r.cen = startCentral(t, r.cc, fullSnapshot(t, 1000, 100), pcfg)
	r.sen = startSensor(t, r.sc, nil, fcfg)
	r.cen.change()
	waitSame(t, 10*time.Second, r.cen, r.sen)
	return r
}

// same reports whether two snapshots serve the same: serial, sinkhole,
// cases and zones.
func same(a, b *servedset.Snapshot) bool {
	if a.Serial() != b.Serial() || a.Len() != b.Len() || !slices.EqualFunc(a.Cases(), b.Cases(), func(x, y servedset.Case) bool { return x.Equal(&y) }) {
		return false
	}
	for name, c := range a.All() {
		if bc, ok := b.Has(name); !ok || bc.Name != c.Name {
			return false
		}
	}
	return true
}

// waitSame waits until the sensor's set is the central's.
func waitSame(t testing.TB, d time.Duration, cen *central, sen *sensor) {
	t.Helper()
	waitFor(t, d, "the sensor's set to be the central's", func() bool {
		return same(cen.set.Load(), sen.set.Load())
	})
}
