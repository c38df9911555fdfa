package natsrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/spawn"
)

// Config says what cluster Start starts. The zero value of every field
// but Dir works.
type Config struct {
	// Dir holds everything: each node's configuration, JetStream store
	// and log (n0/, n1/, …), the credentials (creds/) and the TLS files
	// (tls/). Required; created 0700 when missing.
	Dir string
	// Nodes is the number of servers: 1 (JetStream without a cluster) or
	// 3 (a JetStream cluster, streams up to R3). Default 3.
	Nodes int
	// TLS makes the client ports speak TLS only, with a certificate from
	// a CA generated for the cluster (CAFile).
	TLS bool
	// Sensors are the sensor ids that get a user (an NKey) besides the
	// central (a password).
	Sensors []string
	// Binary is the nats-server to run. Default: Binary().
	Binary string
	// Logger receives the nodes' starts, stops and exits. Default: discard.
	Logger *slog.Logger
	// ReadyTimeout bounds every wait for servers to be ready (Start,
	// Restart, StartAll). Default 60 s.
	ReadyTimeout time.Duration
}

// Cluster is a running set of nats-server processes on 127.0.0.1.
// Methods may be called from several goroutines.
type Cluster struct {
	cfg   Config
	bin   string
	log   *slog.Logger
	tls   TLSFiles
	creds map[string]string
	nodes []*node

	mu sync.Mutex // guards each node's proc
}

type node struct {
	conf     NodeConfig
	confPath string
	logPath  string
	proc     *spawn.Proc // nil while stopped
}

// Start writes the credentials, the TLS files and each node's
// configuration into cfg.Dir, starts the servers and returns once every
// one answers its health check and, with several nodes, they have elected
// a JetStream meta leader. Ports are drawn from internal/freeport; should
// another process take one before a server binds it, Start tries again
// with new ones (three times at most). On error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("natsrun: no directory")
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes < 1 || cfg.Nodes > 7 {
		return nil, fmt.Errorf("natsrun: %d nodes: want 1 to 7 (1 or 3 make sense)", cfg.Nodes)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	c := &Cluster{cfg: cfg, bin: cfg.Binary, log: cfg.Logger, creds: map[string]string{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.bin == "" {
		b, err := Binary()
		if err != nil {
			return nil, err
		}
		c.bin = b
	}
	if err := c.prepare(); err != nil {
		return nil, err
	}
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = c.layout(); err != nil {
			return nil, err
		}
		for i := range c.nodes {
			if err = c.startNode(i); err != nil {
				break
			}
		}
		if err == nil {
			err = c.waitReady(ctx, c.all())
		}
		if err == nil {
			c.log.Info("nats cluster ready", "nodes", cfg.Nodes, "urls", strings.Join(c.URLs(), ","), "dir", cfg.Dir)
			return c, nil
		}
		c.KillAll()
		if !c.portTaken() {
			break
		}
		c.log.Warn("nats: a port was taken before a server bound it; trying new ones", "attempt", attempt)
	}
	return nil, err
}

// prepare writes the credentials and TLS files, once for the cluster's
// life.
func (c *Cluster) prepare() error {
	seen := map[string]bool{}
	for _, s := range c.cfg.Sensors {
		if !bus.ValidSensorID(s) {
			return fmt.Errorf("natsrun: sensor id %q is not a DNS label in lower case", s)
		}
		if s == bus.CentralUser || seen[s] {
			return fmt.Errorf("natsrun: sensor id %q twice or the central's", s)
		}
		seen[s] = true
	}
	credDir := filepath.Join(c.cfg.Dir, "creds")
	if err := os.MkdirAll(credDir, 0o700); err != nil {
		return err
	}
	// Each sensor gets an NKey, the central a password: both credential
	// formats of package bus are in use in every cluster.
	hash, err := WritePasswordCredential(filepath.Join(credDir, bus.CentralUser+".creds"), bus.CentralUser, 0)
	if err != nil {
		return err
	}
	c.creds[bus.CentralUser] = filepath.Join(credDir, bus.CentralUser+".creds")
	users := []User{{Name: bus.CentralUser, Password: hash}}
	for _, s := range c.cfg.Sensors {
		p := filepath.Join(credDir, s+".creds")
		pub, err := WriteNKeyCredential(p)
		if err != nil {
			return err
		}
		c.creds[s] = p
		users = append(users, User{Name: s, NKey: pub})
	}
	sysPath := filepath.Join(credDir, "sys.creds")
	sysHash, err := WritePasswordCredential(sysPath, "sys", 0)
	if err != nil {
		return err
	}
	c.creds["sys"] = sysPath
	accounts, err := RenderAccounts(users, &User{Name: "sys", Password: sysHash})
	if err != nil {
		return err
	}
	if c.cfg.TLS {
		dir := filepath.Join(c.cfg.Dir, "tls")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if c.tls, err = WriteTLS(dir, 30*24*time.Hour); err != nil {
			return err
		}
	}
	c.nodes = make([]*node, c.cfg.Nodes)
	for i := range c.nodes {
		dir := filepath.Join(c.cfg.Dir, "n"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		c.nodes[i] = &node{
			conf: NodeConfig{
				Name:     "n" + strconv.Itoa(i),
				Host:     "127.0.0.1",
				StoreDir: filepath.Join(dir, "jetstream"),
				TLS:      c.tls,
				Accounts: accounts,
			},
			confPath: filepath.Join(dir, "nats.conf"),
			logPath:  filepath.Join(dir, "nats.log"),
		}
	}
	return nil
}

// layout draws the ports and writes every node's configuration.
func (c *Cluster) layout() error {
	ports, err := freeport.Distinct(3 * len(c.nodes))
	if err != nil {
		return fmt.Errorf("natsrun: %w", err)
	}
	for i, n := range c.nodes {
		n.conf.Port, n.conf.ClusterPort, n.conf.MonitorPort = ports[3*i], ports[3*i+1], ports[3*i+2]
	}
	for i, n := range c.nodes {
		n.conf.Routes = nil
		if len(c.nodes) > 1 {
			for j, o := range c.nodes {
				if j != i {
					n.conf.Routes = append(n.conf.Routes, hostPort(o.conf.Host, o.conf.ClusterPort))
				}
			}
		}
		if err := writeFile(n.confPath, []byte(n.conf.Render()), 0o600); err != nil {
			return fmt.Errorf("natsrun: %w", err)
		}
	}
	return nil
}

// portTaken reports whether a node's log says a port was in use.
func (c *Cluster) portTaken() bool {
	for i := range c.nodes {
		if strings.Contains(c.Logs(i), "address already in use") {
			return true
		}
	}
	return false
}

func (c *Cluster) all() []int {
	idx := make([]int, len(c.nodes))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// startNode starts node i's process, its output appended to its log.
func (c *Cluster) startNode(i int) error {
	n := c.nodes[i]
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("natsrun: node %d is running", i)
	}
	logf, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- natsrun: starting %s at %s\n", n.conf.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, "-c", n.confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := spawn.Run(cmd, func(err error) {
		c.log.Info("nats node exited", "node", i, "pid", cmd.Process.Pid, "status", err)
	})
	if err != nil {
		return fmt.Errorf("natsrun: starting %s: %w", c.bin, err)
	}
	n.proc = p
	c.log.Info("nats node started", "node", i, "pid", cmd.Process.Pid, "port", n.conf.Port)
	return nil
}

// running returns node i's process, nil if it is not running.
func (c *Cluster) running(i int) *spawn.Proc {
	c.mu.Lock()
	p := c.nodes[i].proc
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.Done():
		return nil
	default:
		return p
	}
}

// Running reports whether node i's process runs.
func (c *Cluster) Running(i int) bool { return c.running(i) != nil }

// Nodes returns the number of nodes.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// Dir returns the cluster's directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// Binary returns the nats-server the cluster runs.
func (c *Cluster) Binary() string { return c.bin }

// URL returns node i's client URL: tls://127.0.0.1:port with TLS,
// nats://127.0.0.1:port without.
func (c *Cluster) URL(i int) string {
	scheme := "nats://"
	if c.cfg.TLS {
		scheme = "tls://"
	}
	return scheme + hostPort(c.nodes[i].conf.Host, c.nodes[i].conf.Port)
}

// URLs returns every node's client URL.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.URL(i)
	}
	return out
}

// MonitorURL returns node i's monitoring address (http://127.0.0.1:port).
func (c *Cluster) MonitorURL(i int) string {
	return "http://" + hostPort(c.nodes[i].conf.Host, c.nodes[i].conf.MonitorPort)
}

// CAFile returns the PEM file of the CA that signed the servers'
// certificates, "" without TLS.
func (c *Cluster) CAFile() string { return c.tls.CAFile }

// ConfigFile returns node i's configuration file.
func (c *Cluster) ConfigFile(i int) string { return c.nodes[i].confPath }

// Creds returns the credential file of user (bus.CentralUser, a sensor id
// or "sys", the system account's), "" for a user the cluster does not
// know.
func (c *Cluster) Creds(user string) string { return c.creds[user] }

// BusConfig returns how user (bus.CentralUser or a sensor id) connects:
// every server, its credential file, the CA with TLS.
func (c *Cluster) BusConfig(user string) bus.Config {
	return bus.Config{Servers: c.URLs(), Credentials: c.Creds(user), CAFile: c.CAFile(), User: user}
}

// Logs returns what node i wrote to its log (stdout and stderr of every
// run, each run after a "--- natsrun: starting" line).
func (c *Cluster) Logs(i int) string {
	b, err := os.ReadFile(c.nodes[i].logPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// Kill sends SIGKILL to node i and waits (10 s at most) for it to exit.
// Killing a node that is not running does nothing.
func (c *Cluster) Kill(i int) error { return c.stop(i, syscall.SIGKILL, 10*time.Second) }

// Stop asks node i to shut down (SIGTERM), and kills it when it has not
// exited after 15 s.
func (c *Cluster) Stop(i int) error { return c.stop(i, syscall.SIGTERM, 15*time.Second) }

func (c *Cluster) stop(i int, sig syscall.Signal, wait time.Duration) error {
	c.mu.Lock()
	p := c.nodes[i].proc
	c.nodes[i].proc = nil
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	c.log.Info("nats node stopping", "node", i, "signal", sig.String())
	killed, err := p.Stop(sig, wait)
	if killed {
		c.log.Warn("nats node did not stop in time; killed it", "node", i, "after", wait)
	}
	if err != nil {
		return fmt.Errorf("natsrun: node %d %w", i, err)
	}
	return nil
}

// Restart starts node i again, stopped or killed, with the same ports,
// store and configuration, and waits until it is ready (healthy, caught
// up, knowing the meta leader). A running node is stopped first.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.Stop(i); err != nil {
		return err
	}
	if err := c.startNode(i); err != nil {
		return err
	}
	return c.waitReady(ctx, []int{i})
}

// StopAll stops every node (in parallel), as a partition of the whole
// cluster from its clients.
func (c *Cluster) StopAll() error { return c.each(c.Stop) }

// KillAll kills every node (in parallel).
func (c *Cluster) KillAll() error { return c.each(c.Kill) }

// Close stops every node; the directory stays.
func (c *Cluster) Close() error { return c.StopAll() }

func (c *Cluster) each(f func(int) error) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StartAll starts every node that is not running and waits until the
// cluster is ready.
func (c *Cluster) StartAll(ctx context.Context) error {
	for i := range c.nodes {
		if c.Running(i) {
			continue
		}
		if err := c.startNode(i); err != nil {
			return err
		}
	}
	return c.waitReady(ctx, c.all())
}

// tail returns the last lines of node i's log, for errors.
func (c *Cluster) tail(i int) string {
	s := strings.TrimRight(c.Logs(i), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls nodes until each answers its health check and knows a
// meta leader (several nodes), bounded by ctx and ReadyTimeout. A node
// that exits meanwhile ends the wait with its log.
func (c *Cluster) waitReady(ctx context.Context, nodes []int) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = nil
		for _, i := range nodes {
			if c.running(i) == nil {
				return fmt.Errorf("natsrun: node %d exited while starting; its log ends:\n%s", i, c.tail(i))
			}
			if err := c.ready(ctx, i); err != nil {
				last = err
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsrun: servers not ready: %w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// ready checks one node: /healthz answers 200 (JetStream up and, in a
// cluster, current with the meta group and its streams), and with several
// nodes /jsz names a meta leader that is a running node.
func (c *Cluster) ready(ctx context.Context, i int) error {
	if err := c.healthz(ctx, i); err != nil {
		return err
	}
	if len(c.nodes) == 1 {
		return nil
	}
	var jsz struct {
		Meta *struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := c.getJSON(ctx, i, "/jsz", &jsz); err != nil {
		return err
	}
	if jsz.Meta == nil || jsz.Meta.Leader == "" {
		return fmt.Errorf("node %d: no meta leader yet", i)
	}
	l := c.nodeNamed(jsz.Meta.Leader)
	if l < 0 || !c.Running(l) {
		return fmt.Errorf("node %d: meta leader %q is not a running node", i, jsz.Meta.Leader)
	}
	return nil
}

func (c *Cluster) nodeNamed(name string) int {
	for i, n := range c.nodes {
		if n.conf.Name == name {
			return i
		}
	}
	return -1
}

var _ io.Closer = (*Cluster)(nil)
