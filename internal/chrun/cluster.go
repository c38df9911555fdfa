package chrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/spawn"
)

// Config says what Start starts. The zero value of every field but Dir
// works.
type Config struct {
	// Dir holds everything: each node's configuration, data and logs
	// (n0/, n1/, …). Required; created 0700 when missing.
	Dir string
	// Shards is the number of servers, one shard each. Default 1.
	Shards int
	// Binary is the clickhouse-server to run. Default: Binary().
	Binary string
	// Cluster is the name of the cluster in every node's <remote_servers>,
	// which a Distributed table names. Default "takedown".
	Cluster string
	// User and Password are the account takedown connects with. Default
	// user "takedown" and a random password.
	User, Password string
	// Logger receives the nodes' starts, stops and exits. Default: discard.
	Logger *slog.Logger
	// ReadyTimeout bounds every wait for servers to be ready (Start,
	// Restart). Default 60 s.
	ReadyTimeout time.Duration
}

// Cluster is a running set of clickhouse-server processes on 127.0.0.1.
// Methods may be called from several goroutines.
type Cluster struct {
	cfg   Config
	bin   string
	log   *slog.Logger
	nodes []*node

	mu sync.Mutex // guards each node's proc
}

type node struct {
	conf    NodeConfig
	outPath string      // the process's stdout and stderr
	proc    *spawn.Proc // nil while stopped
}

// Start writes each node's configuration into cfg.Dir, starts the
// servers and returns once every one answers SELECT 1 on its native port.
// Ports are drawn from internal/freeport; should another process take one
// before a server binds it, Start tries again with new ones (three times
// at most). On error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("chrun: no directory")
	}
	if cfg.Shards == 0 {
		cfg.Shards = 1
	}
	if cfg.Shards < 1 || cfg.Shards > 8 {
		return nil, fmt.Errorf("chrun: %d shards: want 1 to 8", cfg.Shards)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "takedown"
	}
	if cfg.User == "" {
		cfg.User = "takedown"
	}
	if err := checkNames(cfg.User, cfg.Cluster); err != nil {
		return nil, err
	}
	if cfg.Password == "" {
		b := make([]byte, 16)
		rand.Read(b)
		cfg.Password = hex.EncodeToString(b)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	c := &Cluster{cfg: cfg, bin: cfg.Binary, log: cfg.Logger}
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
	c.nodes = make([]*node, cfg.Shards)
	for i := range c.nodes {
		dir, err := filepath.Abs(filepath.Join(cfg.Dir, "n"+strconv.Itoa(i)))
		if err != nil {
			return nil, err
		}
		for _, sub := range []string{"", "data", "tmp", "user_files", "format_schemas"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				return nil, fmt.Errorf("chrun: %w", err)
			}
		}
		c.nodes[i] = &node{
			conf: NodeConfig{
				Dir: dir, Host: "127.0.0.1",
				User: cfg.User, Password: cfg.Password, Cluster: cfg.Cluster,
			},
			outPath: filepath.Join(dir, "stdout.log"),
		}
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
			c.log.Info("clickhouse ready", "shards", cfg.Shards, "addrs", strings.Join(c.Addrs(), ","), "dir", cfg.Dir)
			return c, nil
		}
		c.KillAll()
		if !c.portTaken() {
			break
		}
		c.log.Warn("clickhouse: a port was taken before a server bound it; trying new ones", "attempt", attempt)
	}
	return nil, err
}

// layout draws the ports and writes every node's configuration.
func (c *Cluster) layout() error {
	ports, err := freeport.Distinct(3 * len(c.nodes))
	if err != nil {
		return fmt.Errorf("chrun: %w", err)
	}
	shards := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		n.conf.TCPPort, n.conf.HTTPPort, n.conf.InterserverPort = ports[3*i], ports[3*i+1], ports[3*i+2]
		shards[i] = net.JoinHostPort(n.conf.Host, strconv.Itoa(n.conf.TCPPort))
	}
	for _, n := range c.nodes {
		n.conf.Shards = shards
		if err := writeFile(filepath.Join(n.conf.Dir, "config.xml"), []byte(n.conf.Render())); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(n.conf.Dir, "users.xml"), []byte(n.conf.RenderUsers())); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("chrun: %w", err)
	}
	return nil
}

// portTaken reports whether a node's logs say a port was in use.
func (c *Cluster) portTaken() bool {
	for i := range c.nodes {
		if strings.Contains(c.Logs(i), "Address already in use") {
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

// args returns the command line of a node: a clickhouse-server binary
// takes --config-file; the single binary of current releases, named
// clickhouse, takes the subcommand server first.
func (c *Cluster) args(n *node) []string {
	conf := "--config-file=" + filepath.Join(n.conf.Dir, "config.xml")
	if filepath.Base(c.bin) == "clickhouse" {
		return []string{"server", conf}
	}
	return []string{conf}
}

// startNode starts node i's process, its output appended to stdout.log.
func (c *Cluster) startNode(i int) error {
	n := c.nodes[i]
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("chrun: node %d is running", i)
	}
	out, err := os.OpenFile(n.outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("chrun: %w", err)
	}
	defer out.Close()
	fmt.Fprintf(out, "--- chrun: starting n%d at %s\n", i, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, c.args(n)...)
	cmd.Dir = n.conf.Dir
	cmd.Stdout, cmd.Stderr = out, out
	p, err := spawn.Run(cmd, func(err error) {
		c.log.Info("clickhouse node exited", "node", i, "pid", cmd.Process.Pid, "status", err)
	})
	if err != nil {
		return fmt.Errorf("chrun: starting %s: %w", c.bin, err)
	}
	n.proc = p
	c.log.Info("clickhouse node started", "node", i, "pid", cmd.Process.Pid, "port", n.conf.TCPPort)
	return nil
}

// waitReady waits until every node of idx answers SELECT 1 on its native
// port, or one of them exits, or cfg.ReadyTimeout passes.
func (c *Cluster) waitReady(ctx context.Context, idx []int) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	for _, i := range idx {
		var last error
		for {
			p := c.running(i)
			if p == nil {
				return fmt.Errorf("chrun: node %d exited while starting: %s", i, lastLines(c.Logs(i), 10))
			}
			if last = c.ping(ctx, i); last == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("chrun: node %d (%s) not ready after %s: %v", i, c.Addr(i), c.cfg.ReadyTimeout, last)
			case <-p.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// ping runs SELECT 1 on node i.
func (c *Cluster) ping(ctx context.Context, i int) error {
	conn, err := c.Open(i)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var one uint8
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// Open returns a native-protocol connection to node i as the cluster's
// user (clickhouse-go: it dials on first use).
func (c *Cluster) Open(i int) (clickhouse.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{
		Addr:        []string{c.Addr(i)},
		Auth:        clickhouse.Auth{Username: c.cfg.User, Password: c.cfg.Password},
		DialTimeout: 2 * time.Second,
	})
}

// Version returns what node 0 says its version is ("18.16.1").
func (c *Cluster) Version(ctx context.Context) (string, error) {
	conn, err := c.Open(0)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("chrun: asking %s its version: %w", c.Addr(0), err)
	}
	return v, nil
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

// Shards returns the number of nodes, one shard each.
func (c *Cluster) Shards() int { return len(c.nodes) }

// Binary returns the clickhouse-server the cluster runs.
func (c *Cluster) Binary() string { return c.bin }

// Name returns the cluster's name in <remote_servers>.
func (c *Cluster) Name() string { return c.cfg.Cluster }

// User and Password are the account to connect with.
func (c *Cluster) User() string     { return c.cfg.User }
func (c *Cluster) Password() string { return c.cfg.Password }

// Addr returns node i's native address, 127.0.0.1:port.
func (c *Cluster) Addr(i int) string {
	n := c.nodes[i]
	return net.JoinHostPort(n.conf.Host, strconv.Itoa(n.conf.TCPPort))
}

// Addrs returns every node's native address.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.Addr(i)
	}
	return out
}

// NodeDir returns node i's directory; its data is in NodeDir(i)/data/.
func (c *Cluster) NodeDir(i int) string { return c.nodes[i].conf.Dir }

// Logs returns what node i wrote: its process output (each run after a
// "--- chrun: starting" line), then its server log and error log.
func (c *Cluster) Logs(i int) string {
	var b strings.Builder
	for _, name := range []string{"stdout.log", "server.log", "err.log"} {
		data, err := os.ReadFile(filepath.Join(c.nodes[i].conf.Dir, name))
		if err == nil && len(data) > 0 {
			fmt.Fprintf(&b, "--- %s:\n%s", name, data)
		}
	}
	return b.String()
}

// Kill sends SIGKILL to node i and waits (10 s at most) for it to exit.
// Killing a node that is not running does nothing.
func (c *Cluster) Kill(i int) error { return c.stop(i, syscall.SIGKILL, 10*time.Second) }

// Stop asks node i to shut down (SIGTERM), and kills it when it has not
// exited after 30 s.
func (c *Cluster) Stop(i int) error { return c.stop(i, syscall.SIGTERM, 30*time.Second) }

func (c *Cluster) stop(i int, sig syscall.Signal, wait time.Duration) error {
	c.mu.Lock()
	p := c.nodes[i].proc
	c.nodes[i].proc = nil
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	c.log.Info("clickhouse node stopping", "node", i, "signal", sig.String())
	killed, err := p.Stop(sig, wait)
	if killed {
		c.log.Warn("clickhouse node did not stop in time; killed it", "node", i, "after", wait)
	}
	if err != nil {
		return fmt.Errorf("chrun: node %d %w", i, err)
	}
	return nil
}

// Restart starts node i again, stopped or killed, with the same ports,
// data and configuration, and waits until it answers. A running node is
// stopped first.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.Stop(i); err != nil {
		return err
	}
	if err := c.startNode(i); err != nil {
		return err
	}
	return c.waitReady(ctx, []int{i})
}

// KillAll kills every node; the cluster's directory stays.
func (c *Cluster) KillAll() error {
	var errs []error
	for i := range c.nodes {
		errs = append(errs, c.Kill(i))
	}
	return errors.Join(errs...)
}

// StopAll stops every node (SIGTERM, then SIGKILL).
func (c *Cluster) StopAll() error {
	var errs []error
	for i := range c.nodes {
		errs = append(errs, c.Stop(i))
	}
	return errors.Join(errs...)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
