package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/natsrun"
	"github.com/takedown-project/takedown/internal/sim"
)

// A demoFleet is the demo on several machines, played on this one: a
// three-node NATS JetStream cluster, a central and n sensors, each a
// process of its own (this program, `serve --role ...`) on loopback
// addresses of its own (sensor i answers on 127.0.0.(i+1)).
type demoFleet struct {
	dir     string
	nats    *natsrun.Cluster
	central *demoProc
	sensors []*demoProc
	ids     []string
	targets []sim.Targets
	client  *api.Client // the central's API
	log     *slog.Logger
}

// demoProc is one serve process of the fleet.
type demoProc struct {
	name string
	cfg  config.Config
	cmd  *exec.Cmd
	done chan error
	log  string
}

// startFleet starts the NATS cluster, the central (with cfg: the demo's
// configuration, its store already holding the seized domains) and n
// sensors, and waits until every sensor answers from the central's served
// set.
func startFleet(ctx context.Context, w io.Writer, cfg config.Config, n int, dir string) (f *demoFleet, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "fleet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	f = &demoFleet{dir: dir, log: slog.New(slog.NewTextHandler(logFile, nil))}
	defer func() {
		if err != nil {
			f.stop(io.Discard)
		}
	}()
	for i := range n {
		f.ids = append(f.ids, fmt.Sprintf("sensor-%d", i+1))
	}
	t0 := time.Now()
	f.nats, err = natsrun.Start(ctx, natsrun.Config{Dir: filepath.Join(dir, "nats"), Nodes: 3, TLS: true, Sensors: f.ids, Logger: f.log})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	fmt.Fprintf(w, "2. sinkhole NATS JetStream: three nodes (%s), TLS, a credential per sensor, up in %s\n",
		strings.Join(f.nats.URLs(), ", "), time.Since(t0).Round(time.Millisecond))
	withNATS := func(c config.Config, role, user string) config.Config {
		c.Role = role
		c.NATS.Servers = f.nats.URLs()
		c.NATS.Credentials = f.nats.Creds(user)
		c.NATS.TLS.CAFile = f.nats.CAFile()
		c.NATS.Replicas = 3
		// The demo's nodes keep their streams in the temporary directory.
		c.NATS.MaxStreamMB = 1024
		return c
	}
	cc := withNATS(cfg, config.RoleCentral, "central")
	cc.Central.Sensors = f.ids
	if f.central, err = f.start(ctx, exe, "central", cc); err != nil {
		return nil, err
	}
	token, err := app.ReadToken(cc.API.TokenFile)
	if err != nil {
		return nil, err
	}
	f.client = api.NewClient(cc.API.Listen, token, "demo")
	fmt.Fprintf(w, "            central  pid %d, API http://%s/ (log: %s)\n", f.central.cmd.Process.Pid, cc.API.Listen, f.central.log)
	for i, id := range f.ids {
		sc, err := sensorConfig(withNATS(cfg, config.RoleSensor, id), filepath.Join(dir, id), id, fmt.Sprintf("127.0.0.%d", i+2))
		if err != nil {
			return nil, err
		}
		p, err := f.start(ctx, exe, id, sc)
		if err != nil {
			return nil, err
		}
		f.sensors = append(f.sensors, p)
		f.targets = append(f.targets, sim.Targets{DNS: sc.DNS.Listen[0], HTTP: sc.Listen.HTTP[0], SMTP: sc.Listen.SMTP[0]})
		fmt.Fprintf(w, "            %s pid %d, DNS %s HTTP %s SMTP %s (log: %s)\n", id, p.cmd.Process.Pid,
			sc.DNS.Listen[0], sc.Listen.HTTP[0], sc.Listen.SMTP[0], p.log)
	}
	// Every sensor answers from the central's served set before a bot
	// calls.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		st, err := f.client.Status(wctx)
		if err == nil && len(st.Sensors) == n && allServed(st.Sensors) {
			break
		}
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("the sensors did not report the central's served set within a minute (see %s)", dir)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return f, nil
}

// allServed reports whether every sensor is up and answers from a served
// set with zones.
func allServed(ss []api.SensorStatus) bool {
	for _, s := range ss {
		if !s.Up || s.ServedZones == 0 {
			return false
		}
	}
	return true
}

// sensorConfig is a sensor's configuration: its own data directory, its
// sinks on its own loopback address.
func sensorConfig(c config.Config, dir, id, addr string) (config.Config, error) {
	c, err := config.WithDataDir(c, dir)
	if err != nil {
		return c, err
	}
	c.Sensor = id
	c.Store.Path = filepath.Join(dir, "unused.duckdb")
	c.Store.Engine, c.Store.ClickHouse = config.EngineDuckDB, config.ClickHouse{} // a sensor keeps no events
	ports, err := freeport.Distinct(5)
	if err != nil {
		return c, err
	}
	at := func(i int) string { return net.JoinHostPort(addr, strconv.Itoa(ports[i])) }
	c.API.Listen = at(0)
	c.DNS.Listen = []string{at(1)}
	c.Listen.HTTP = []string{at(2)}
	c.Listen.HTTPS = []string{at(3)}
	c.Listen.SMTP = []string{at(4)}
	c.Transfer.Listen = []string{}
	// It answers with its own address: the bots it answers call it.
	c.DNS.A, c.DNS.AAAA = []string{addr}, []string{}
	return c, c.Validate()
}

// start runs `serve` with cfg as a process of its own, logging to a file
// in its data directory, and waits until its API answers /readyz.
func (f *demoFleet) start(ctx context.Context, exe, name string, cfg config.Config) (*demoProc, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.DataDir, name+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	p := &demoProc{name: name, cfg: cfg, done: make(chan error, 1), log: filepath.Join(cfg.DataDir, "serve.log")}
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	p.cmd = exec.Command(exe, "-c", path, "serve")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C in the terminal reaches the demo,
	// which stops the fleet in order.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	ready := "http://" + cfg.API.Listen + "/readyz"
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("%s exited: %v (see %s)", name, err, p.log)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s is not ready after a minute (see %s)", name, p.log)
		}
	}
}

// stop ends p with SIGTERM (SIGKILL after 30 s) and returns how it ended.
func (p *demoProc) stop() error {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill() //nolint:errcheck // the same
		return errors.New(p.name + " did not stop within 30 s: killed")
	}
}

// waitStored waits until the central has stored what each sensor
// recorded of the live run: truth.Sensors[i].Events events of sensor i.
func (f *demoFleet) waitStored(ctx context.Context, truth *sim.Truth) error {
	for {
		st, err := f.client.Status(ctx)
		if err != nil {
			return err
		}
		stored := map[string]uint64{}
		for _, s := range st.Sensors {
			stored[s.ID] = s.Stored
		}
		done := st.Pipeline.Backlog == 0
		for i, id := range f.ids {
			done = done && stored[id] >= uint64(truth.Sensors[i].Events)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the central has not stored every sensor's events: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// shares prints each sensor's share of the live run: the bots that
// called it and the events it recorded, by the simulator, and the events
// the central stored from it.
func (f *demoFleet) shares(ctx context.Context, w io.Writer, truth *sim.Truth) error {
	st, err := f.client.Status(ctx)
	if err != nil {
		return err
	}
	stored := map[string]api.SensorStatus{}
	for _, s := range st.Sensors {
		stored[s.ID] = s
	}
	fmt.Fprintf(w, "            each sensor's share of the live run:\n\n")
	t := newTable(w, "SENSOR", "BOTS", "CALLBACKS", "EVENTS", "STORED AT THE CENTRAL", "")
	for i, id := range f.ids {
		s, ok := truth.Sensors[i], "✓"
		if got := stored[id].Stored; got != uint64(s.Events) {
			ok = "✗ differs"
		}
		t.row(id, thousands(int64(s.Bots)), thousands(s.Callbacks), thousands(s.Events), thousands(int64(stored[id].Stored)), ok)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return nil
}

// stopOnce returns a stop of the fleet that stops it the first time only.
func (f *demoFleet) stopOnce(w io.Writer) func() error {
	stopped := false
	return func() error {
		if stopped {
			return nil
		}
		stopped = true
		return f.stop(w)
	}
}

// stop stops the sensors, then the central, then NATS, and says how long
// it took.
func (f *demoFleet) stop(w io.Writer) error {
	t0 := time.Now()
	var errs []error
	for _, p := range f.sensors {
		errs = append(errs, p.stop())
	}
	errs = append(errs, f.central.stop())
	if f.nats != nil {
		errs = append(errs, f.nats.Close())
	}
	fmt.Fprintf(w, "            sensors, central and NATS stopped in %s\n", time.Since(t0).Round(time.Millisecond))
	return errors.Join(errs...)
}
