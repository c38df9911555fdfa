package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/natstest"
	"github.com/takedown-project/takedown/internal/spawn"
)

// The fleet tests run takedown as its users run it on several machines:
// a three-node NATS JetStream cluster (real nats-server processes, TLS, a
// credential per sensor), a central and sensors, each a process of the
// takedown binary built for the test, which the tests kill -9.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// takedownBinary builds cmd/takedown once per test process.
func takedownBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "takedown-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "takedown")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/takedown-project/takedown/cmd/takedown").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one serve of the fleet, a process the test can kill.
type proc struct {
	name, path, log string
	cfg             config.Config
	bin             string
	// env is added to the process's environment at its next start.
	env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "-c", p.path, "serve")
	cmd.Stdout, cmd.Stderr = f, f
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	// It dies with the test process, however that ends (spawn forks it
	// from a thread that lives as long as the process).
	if err := spawn.Start(cmd); err != nil {
		t.Fatal(err)
	}
	f.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() //nolint:errcheck // how it ended is in its log
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	ready := "http://" + p.cfg.API.Listen + "/readyz"
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("%s exited at start:\n%s", p.name, tail(p.log))
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 90 s:\n%s", p.name, tail(p.log))
		}
	}
}

// signal sends sig and waits for the process to end.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig) //nolint:errcheck // it may have ended
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill() //nolint:errcheck // the same
		t.Errorf("%s did not end within 60 s of %v", p.name, sig)
		<-done
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// fleet is a NATS cluster, a central and sensors.
type fleet struct {
	nats    *natstest.Cluster
	central *proc
	sensors []*proc
	ids     []string
	client  *api.Client
	world   string
	cfg     config.Config // the central's
}

// newFleet starts a three-node NATS cluster with nats-server bin, a
// central and n sensors (sensor i on 127.0.0.(i+2)); seize, if set, is
// called with the central's config before it starts, to seize domains.
// extraUsers get NATS credentials without being sensors of the central.
func newFleet(t *testing.T, natsBin string, n int, extraUsers []string, seize func(cfg config.Config)) *fleet {
	t.Helper()
	dir := t.TempDir()
	f := &fleet{}
	for i := range n {
		f.ids = append(f.ids, fmt.Sprintf("s%d", i+1))
	}
	f.nats = natstest.Start(t, natstest.Options{Nodes: 3, TLS: true, Sensors: append(append([]string{}, f.ids...), extraUsers...), Binary: natsBin})
	world, err := demoworld.New()
	if err != nil {
		t.Fatal(err)
	}
	f.world = filepath.Join(dir, demoworld.FileName)
	if err := world.WriteFile(f.world); err != nil {
		t.Fatal(err)
	}
	mk := func(name, role, addr, pipeline, extra string) *proc {
		return f.newProc(t, dir, name, role, addr, pipeline, extra)
	}
	f.central = mk("central", config.RoleCentral, "127.0.0.1", "{flush_ms: 100}", "central: {sensors: ["+strings.Join(f.ids, ", ")+"]}\n")
	f.cfg = f.central.cfg
	for i, id := range f.ids {
		// Every event is written before its sink answers: a kill -9 of a
		// sensor loses nothing it answered.
		f.sensors = append(f.sensors, mk(id, config.RoleSensor, fmt.Sprintf("127.0.0.%d", i+2), "{flush_ms: 100, spool_flush_ms: -1}", ""))
	}
	if seize != nil {
		seize(f.cfg)
	}
	f.central.start(t)
	t.Cleanup(func() {
		for _, p := range append(f.sensors, f.central) {
			p.signal(t, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, p := range append(f.sensors, f.central) {
				t.Logf("%s log:\n%s", p.name, tail(p.log))
			}
		}
	})
	token, err := app.ReadToken(f.cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	f.client = api.NewClient(f.cfg.API.Listen, token, "e2e")
	for _, s := range f.sensors {
		s.start(t)
	}
	return f
}

// newProc makes the config of a serve of the fleet, name in role on addr
// (its API, DNS, HTTP and SMTP on free ports there), its data in
// dir/name, with the pipeline section pipeline and extra lines; a sensor
// connects to NATS as itself, the other roles as the central.
func (f *fleet) newProc(t *testing.T, dir, name, role, addr, pipeline, extra string) *proc {
	t.Helper()
	ports, err := freeport.Distinct(4)
	if err != nil {
		t.Fatal(err)
	}
	at := func(i int) string { return net.JoinHostPort(addr, strconv.Itoa(ports[i])) }
	user := name
	if role != config.RoleSensor {
		user = "central"
	}
	servers := `["` + strings.Join(f.nats.URLs(), `", "`) + `"]`
	doc := fmt.Sprintf(`data_dir: %s
sensor: %s
role: %s
log: {level: info}
api: {listen: "%s"}
dns: {listen: ["%s"], rrl: {responses_per_second: -1}}
transfer: {listen: []}
listen: {http: ["%s"], https: [], smtp: ["%s"], tcp: [], udp: []}
enrich: {databases: [%s]}
pipeline: %s
nats: {servers: %s, credentials: %s, tls: {ca_file: %s}, replicas: 3, max_stream_mb: 512}
%s`, filepath.Join(dir, name), name, role, at(0), at(1), at(2), at(3), f.world, pipeline, servers, f.nats.Creds(user), f.nats.CAFile(), extra)
	cfg, err := config.Parse(name+".yaml", []byte(doc))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return &proc{name: name, path: path, log: filepath.Join(dir, name+".log"), cfg: app.Effective(cfg), bin: takedownBinary(t)}
}

// dnsAddr is where sensor i answers DNS.
func (f *fleet) dnsAddr(i int) string { return f.sensors[i].cfg.DNS.Listen[0] }

// answers asks sensor i for name's A record and reports whether it
// answered it (NOERROR with an answer) rather than refusing it.
func answers(t *testing.T, addr, name string) bool {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := dns.Client{Timeout: time.Second}
	for range 3 {
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			continue
		}
		if os.Getenv("FLEET_DEBUG") != "" {
			t.Logf("%s %s: %s", addr, name, r)
		}
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
	}
	t.Fatalf("%s does not answer DNS", addr)
	return false
}

// centralStatus is the central's status, retried while it restarts.
func (f *fleet) centralStatus(t *testing.T) api.Status {
	t.Helper()
	var err error
	for range 600 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var st api.Status
		st, err = f.client.Status(ctx)
		cancel()
		if err == nil {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("central status: %v", err)
	return api.Status{}
}
