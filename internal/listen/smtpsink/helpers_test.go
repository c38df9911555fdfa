package smtpsink

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/promtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memRecorder keeps copies of the events in memory.
type memRecorder struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *memRecorder) Record(e *event.Event) {
	c := *e // the server reuses e
	c.PayloadHead = append([]byte(nil), e.PayloadHead...)
	r.mu.Lock()
	r.events = append(r.events, c)
	r.mu.Unlock()
}

func (r *memRecorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

// wait returns the events once there are at least n.
func (r *memRecorder) wait(t testing.TB, n int) []event.Event {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(r.all()) >= n })
	return r.all()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// zones is a Zones with fixed entries.
type zones map[string][3]string

func (z zones) Zone(host string) (string, string, string, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for host != "" {
		if v, ok := z[host]; ok {
			return v[0], v[1], v[2], true
		}
		i := strings.IndexByte(host, '.')
		if i < 0 {
			break
		}
		host = host[i+1:]
	}
	return "", "", "", false
}

var testZones = zones{"seized.test": {"seized.test", "waledac-2010", "waledac"}}

const testRules = `
rules:
  - name: refuse-by-helo
    family: refusebot
    match:
      protocol: smtp
      helo: '^refuse\.example$'
    response: {status: 550, body: "5.7.1 Go away"}
  - name: close-by-helo
    family: closebot
    match:
      protocol: smtp
      helo: '^close\.example$'
    response: {status: 421, body: "4.7.0 Bye now"}
  - name: header-spam
    family: pillbot
    tag: pills
    match:
      protocol: smtp
      headers: [{name: Message-ID, regex: '@sender\.example>$'}]
`

func testClassifier(t testing.TB) Classifier {
	t.Helper()
	rs, err := classify.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// testTLS returns a server configuration with a self-signed certificate
// for mx.sinkhole.test.
func testTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.sinkhole.test"},
		DNSNames:     []string{"mx.sinkhole.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

type testServer struct {
	*Server
	rec  *memRecorder
	reg  *prometheus.Registry
	addr string
}

// start starts a server with cfg on 127.0.0.1:0 and stops it at the end of
// the test.
func start(t testing.TB, cfg Config) *testServer {
	t.Helper()
	rec := &memRecorder{}
	reg := prometheus.NewRegistry()
	cfg.Listen = []string{"127.0.0.1:0"}
	if cfg.Recorder == nil {
		cfg.Recorder = rec
	}
	cfg.Registerer = reg
	if cfg.Sensor == "" {
		cfg.Sensor = "test-node"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &testServer{Server: s, rec: rec, reg: reg, addr: s.Addrs()[0].String()}
}

func (ts *testServer) port() uint16 {
	_, p, _ := net.SplitHostPort(ts.addr)
	n, _ := strconv.Atoi(p)
	return uint16(n)
}

// counter reads a counter of the server's registry, e.g.
// ("limit_hits_total", "limit", "recipients").
func (ts *testServer) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return promtest.Value(t, ts.reg, "takedown_smtpsink_"+name, labels...)
}

// client is a minimal SMTP client on the raw socket.
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	if code, text := cl.reply(); code != 220 {
		t.Fatalf("greeting %d %s", code, text)
	}
	return cl
}

// reply reads one (possibly multi-line) reply.
func (cl *client) reply() (int, string) {
	cl.t.Helper()
	var text []string
	for {
		line, err := cl.r.ReadString('\n')
		if err != nil {
			cl.t.Fatalf("reading reply: %v (so far %q)", err, text)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			cl.t.Fatalf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			cl.t.Fatalf("reply line %q", line)
		}
		text = append(text, line[4:])
		if line[3] == ' ' {
			return code, strings.Join(text, "\n")
		}
	}
}

func (cl *client) send(s string) {
	cl.t.Helper()
	if _, err := cl.c.Write([]byte(s)); err != nil {
		cl.t.Fatal(err)
	}
}

// cmd sends a command line and returns the reply.
func (cl *client) cmd(line string) (int, string) {
	cl.t.Helper()
	cl.send(line + "\r\n")
	return cl.reply()
}

// expect sends a command and fails unless the reply has code.
func (cl *client) expect(line string, code int) string {
	cl.t.Helper()
	got, text := cl.cmd(line)
	if got != code {
		cl.t.Fatalf("%q: got %d %s, want %d", line, got, text, code)
	}
	return text
}

// fdCount counts the open file descriptors of the process.
func fdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// settle waits until the goroutine and descriptor counts are back at most
// at the baseline.
func settle(t testing.TB, goroutines, fds int) {
	t.Helper()
	waitFor(t, "goroutines and descriptors back to baseline", func() bool {
		return runtime.NumGoroutine() <= goroutines && fdCount(t) <= fds
	})
}
