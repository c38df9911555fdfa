package natstest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/natsrun"
)

// Binary returns the nats-server to test with ($TAKEDOWN_NATS_SERVER,
// else the PATH, else /usr/sbin), failing the test with how to install it
// when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := natsrun.Binary()
	if err != nil {
		t.Fatalf("%v (Debian package nats-server; .ci/run installs it, and builds the latest release for $%s)", err, natsrun.EnvLatestBinary)
	}
	return p
}

var (
	versionsMu sync.Mutex
	versions   = map[string]string{} // binary → version
)

// Version returns bin's version ("2.9.10"), failing the test when it
// cannot tell.
func Version(t testing.TB, bin string) string {
	t.Helper()
	versionsMu.Lock()
	defer versionsMu.Unlock()
	if v, ok := versions[bin]; ok {
		return v
	}
	v, err := natsrun.Version(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	versions[bin] = v
	return v
}

// Binaries returns the nats-server binaries to run a test against, by
// version: Binary, and $TAKEDOWN_NATS_SERVER_LATEST when it is set (.ci/run
// sets it: Debian's 2.9 and the current release). A test that must hold on
// both loops over it with t.Run("nats-"+version, …).
func Binaries(t testing.TB) map[string]string {
	t.Helper()
	bin := Binary(t)
	out := map[string]string{Version(t, bin): bin}
	latest, err := natsrun.LatestBinary()
	if err != nil {
		t.Fatal(err)
	}
	if latest != "" {
		out[Version(t, latest)] = latest
	}
	return out
}

// Options say what cluster Start starts.
type Options struct {
	// Nodes is 1 or 3 (default 3).
	Nodes int
	// TLS makes the client ports speak TLS only; clients trust CAFile.
	TLS bool
	// Sensors get a user each (an NKey); the central always has one (a
	// password).
	Sensors []string
	// Binary is the nats-server to run; default Binary(t).
	Binary string
}

// Cluster is a natsrun.Cluster bound to a test: its methods that could
// fail end the test instead, and must be called from the test's
// goroutine. The natsrun methods that take a context are still there as
// c.Cluster.Restart(ctx, i) and so on.
type Cluster struct {
	*natsrun.Cluster
	t testing.TB
}

// Start starts a cluster of real nats-server processes on 127.0.0.1 in a
// temporary directory and returns once it is ready (see natsrun.Start).
// The processes are killed when the test ends, passed or failed; when it
// failed, the end of each node's log is in the test's output.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Binary == "" {
		o.Binary = Binary(t)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := natsrun.Start(ctx, natsrun.Config{
		Dir:     dir,
		Nodes:   o.Nodes,
		TLS:     o.TLS,
		Sensors: o.Sensors,
		Binary:  o.Binary,
	})
	if err != nil {
		t.Fatal(err)
	}
	tc := &Cluster{Cluster: c, t: t}
	// Registered after TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		if err := c.KillAll(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for i := range c.Nodes() {
				t.Logf("nats node %d log (%s):\n%s", i, c.Binary(), lastLines(c.Logs(i), 40))
			}
		}
	})
	return tc
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) check(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// Kill sends SIGKILL to node i and waits for it to exit.
func (c *Cluster) Kill(i int) { c.t.Helper(); c.check(c.Cluster.Kill(i)) }

// Stop shuts node i down (SIGTERM).
func (c *Cluster) Stop(i int) { c.t.Helper(); c.check(c.Cluster.Stop(i)) }

// Restart starts node i again with the same ports, store and
// configuration, and waits until it is ready.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.check(c.Cluster.Restart(ctx, i))
}

// StopAll stops every node: clients lose the whole cluster.
func (c *Cluster) StopAll() { c.t.Helper(); c.check(c.Cluster.StopAll()) }

// StartAll starts the stopped nodes and waits until the cluster is ready.
func (c *Cluster) StartAll() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.check(c.Cluster.StartAll(ctx))
}

// StreamLeader returns the index of the node leading stream, waiting
// until a running node leads it.
func (c *Cluster) StreamLeader(t testing.TB, stream string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	i, err := c.Cluster.StreamLeader(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// Connect connects user (bus.CentralUser or a sensor id) with package
// bus, as takedown does, waits (10 s at most) until the connection is up,
// and closes it when the test ends. With servers, it connects to those
// URLs only (c.URL(0): a test that needs both ends on one server).
func (c *Cluster) Connect(t testing.TB, user string, servers ...string) *nats.Conn {
	t.Helper()
	cfg := c.BusConfig(user)
	if cfg.Credentials == "" {
		t.Fatalf("natstest: the cluster has no user %q", user)
	}
	if len(servers) > 0 {
		cfg.Servers = servers
	}
	nc, err := bus.Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("natstest: %s not connected after 10 s (last error: %v)", user, nc.LastError())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nc
}
