package httpsink

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/takedown-project/takedown/internal/event"
)

// abuseServer is a server with short timeouts for the abuse tests.
func abuseServer(t *testing.T, change func(*Config)) *testServer {
	return startServer(t, func(c *Config) {
		c.ReadHeaderTimeout = 500 * time.Millisecond
		c.IdleTimeout = time.Second
		c.ConnTimeout = 5 * time.Second
		if change != nil {
			change(c)
		}
	})
}

// get makes one normal request and checks that it is answered.
func get(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/still-ok")
	if err != nil {
		t.Fatalf("normal request after abuse: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("normal request after abuse: %s", resp.Status)
	}
}

// exchange sends raw bytes on a new connection and returns what came back
// until the server closed it.
func exchange(t *testing.T, addr string, send []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(send) // the server may close before it has read everything
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func errorIs(msg string) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Error == msg }
}

func TestAbuse(t *testing.T) {
	ts := abuseServer(t, nil)
	get(t, ts.http)
	// What the server holds while idle: its listeners, accept loops or
	// event loops, parker and HTTP/2 server.
	fds0, g0 := resources()

	t.Run("slowloris", func(t *testing.T) {
		ts.rec.reset()
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", ts.http)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				c.Write([]byte("GET /slow HTTP/1.1\r\nHost: evil-c2.example\r\n"))
				for i := 0; ; i++ {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := fmt.Fprintf(c, "X-%d: %d\r\n", i, i); err != nil {
						return // the server gave up on us
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		evs := ts.rec.waitN(t, 20, errorIs("header timeout"))
		e := evs[0]
		if !e.Malformed || !bytes.HasPrefix(e.PayloadHead, []byte("GET /slow HTTP/1.1\r\nHost: evil-c2.example\r\nX-0: 0\r\n")) ||
			e.HTTPMethod != "GET" || e.HTTPPath != "/slow" || e.Bytes < 50 || len(e.PayloadHead) > DefaultHeadBytes {
			t.Errorf("slowloris event: %+v", e)
		}
	})

	t.Run("giant-header", func(t *testing.T) {
		ts.rec.reset()
		var req bytes.Buffer
		req.WriteString("GET /big HTTP/1.1\r\nHost: evil-c2.example\r\n")
		for i := range 10000 {
			fmt.Fprintf(&req, "X-Header-%d: value\r\n", i)
		}
		req.WriteString("\r\n")
		out := exchange(t, ts.http, req.Bytes())
		if !strings.HasPrefix(out, "HTTP/1.1 431 ") {
			t.Errorf("response %q", out)
		}
		e := ts.rec.waitN(t, 1, nil)[0]
		sum := sha256.Sum256(req.Bytes()[:DefaultMaxHeaderBytes])
		if e.Error != "header too large" || !e.Malformed || e.Bytes != DefaultMaxHeaderBytes ||
			e.PayloadSHA256 != hex.EncodeToString(sum[:]) || !bytes.Equal(e.PayloadHead, req.Bytes()[:DefaultHeadBytes]) ||
			e.HTTPPath != "/big" {
			t.Errorf("event: %+v", e)
		}
		// Many small header lines within the byte limit.
		ts.rec.reset()
		out = exchange(t, ts.http, []byte("GET / HTTP/1.1\r\n"+strings.Repeat("a:\r\n", 5000)+"\r\n"))
		if !strings.HasPrefix(out, "HTTP/1.1 431 ") {
			t.Errorf("response %q", out)
		}
		ts.rec.waitN(t, 1, errorIs("too many header lines"))
	})

	t.Run("giant-body", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			ts.rec.reset()
			c, err := net.Dial("tcp", ts.http)
			if err != nil {
				t.Fatal(err)
			}
			const gig = 1 << 30
			if chunked {
				fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: evil-c2.example\r\nTransfer-Encoding: chunked\r\n\r\n")
			} else {
				fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: evil-c2.example\r\nContent-Length: %d\r\n\r\n", gig)
			}
			block := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
			var sent int
			var werr error
			for sent < gig {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if chunked {
					fmt.Fprintf(c, "%x\r\n", len(block))
				}
				var n int
				if n, werr = c.Write(block); werr != nil {
					break
				}
				if chunked {
					c.Write([]byte("\r\n"))
				}
				sent += n
			}
			c.Close()
			if werr == nil || sent >= gig {
				t.Errorf("the server read the whole gigabyte (chunked %v)", chunked)
			}
			e := ts.rec.waitN(t, 1, nil)[0]
			h := sha256.New()
			for range DefaultMaxBodyBytes / len(block) {
				h.Write(block)
			}
			if e.Error != "body too large" || e.Malformed || e.Bytes != DefaultMaxBodyBytes ||
				e.PayloadSHA256 != hex.EncodeToString(h.Sum(nil)) || !bytes.Equal(e.PayloadHead, block[:DefaultHeadBytes]) {
				t.Errorf("event (chunked %v): %+v", chunked, e)
			}
			t.Logf("chunked %v: client wrote %d MiB before the server closed", chunked, sent>>20)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		ts.rec.reset()
		junk := []byte("\x16\x03\x01\x00\xff\x00garbage\xff\xfe GET\r\n\r\n")
		out := exchange(t, ts.http, junk)
		if !strings.HasPrefix(out, "HTTP/1.1 400 ") {
			t.Errorf("response %q", out)
		}
		e := ts.rec.waitN(t, 1, nil)[0]
		// It begins as a TLS record does: refused at once as a TLS client.
		if e.Error != "TLS on plain HTTP" || !e.Malformed || !bytes.Equal(e.PayloadHead, junk) || e.Bytes != int64(len(junk)) {
			t.Errorf("event: %+v", e)
		}
		// Bytes without a line end at all, then the client goes away.
		ts.rec.reset()
		exchange(t, ts.http, bytes.Repeat([]byte{0}, 1000))
		e = ts.rec.waitN(t, 1, nil)[0]
		if e.Error != "connection closed in the header" || !e.Malformed || e.Bytes != 1000 {
			t.Errorf("event: %+v", e)
		}
		// A request line of another version; an HTTP/2 preface.
		ts.rec.reset()
		out = exchange(t, ts.http, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		if !strings.HasPrefix(out, "HTTP/1.1 505 ") {
			t.Errorf("response %q", out)
		}
		ts.rec.waitN(t, 1, errorIs("unsupported HTTP version"))
	})

	t.Run("tls", func(t *testing.T) {
		ts.rec.reset()
		// Not TLS at all.
		exchange(t, ts.https, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		e := ts.rec.waitN(t, 1, nil)[0]
		if e.Error != "not TLS" || !e.Malformed || e.Protocol != event.ProtoHTTPS || !bytes.HasPrefix(e.PayloadHead, []byte("GET / HTTP/1.1")) {
			t.Errorf("not TLS: %+v", e)
		}
		// A handshake record whose ClientHello is garbage.
		ts.rec.reset()
		bad := []byte{22, 3, 1, 0, 10, 1, 0, 0, 6, 3, 3, 0xde, 0xad, 0xbe, 0xef}
		exchange(t, ts.https, bad)
		e = ts.rec.waitN(t, 1, nil)[0]
		if e.Error != "malformed ClientHello: tls: error decoding message" || !e.Malformed || !bytes.Equal(e.PayloadHead, bad) {
			t.Errorf("bad hello: %+v", e)
		}
		// No cipher in common: the client offers only RSA key exchange,
		// the certificates are ECDSA.
		ts.rec.reset()
		_, err := tls.Dial("tcp", ts.https, &tls.Config{
			ServerName: "nocipher.evil-c2.example", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
		})
		if err == nil {
			t.Error("handshake without a common cipher succeeded")
		}
		e = ts.rec.waitN(t, 1, nil)[0]
		if !strings.HasPrefix(e.Error, "tls: ") || e.Domain != "nocipher.evil-c2.example" || e.Family != "waledac" ||
			e.TLSFingerprint == "" || e.Malformed {
			t.Errorf("no shared cipher: %+v", e)
		}
		t.Logf("no shared cipher: %q", e.Error)
		// Silence after the connect.
		ts.rec.reset()
		c, err := net.Dial("tcp", ts.https)
		if err != nil {
			t.Fatal(err)
		}
		ts.rec.waitN(t, 1, errorIs("handshake timeout"))
		c.Close()
		// No SNI: the default certificate, the Host header as domain.
		ts.rec.reset()
		tc, err := tls.Dial("tcp", ts.https, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "sinkhole.invalid" {
			t.Errorf("certificate without SNI names %q", cn)
		}
		tc.Write([]byte("GET /nosni HTTP/1.1\r\nHost: evil-c2.example\r\nConnection: close\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		tc.Close()
		e = ts.rec.waitN(t, 1, nil)[0]
		if e.Domain != "evil-c2.example" || e.TLSVersion != "1.3" || e.Error != "" {
			t.Errorf("no SNI: %+v", e)
		}
	})

	// The server is healthy: it answers, and holds no more descriptors or
	// goroutines than before.
	get(t, ts.http)
	if t.Failed() {
		return
	}
	ts.rec.reset()
	waitResources(t, fds0, g0)
}

// TestPerIPLimit opens 10,000 connections from one address at once.
func TestPerIPLimit(t *testing.T) {
	raiseNoFile(t, 12000)
	ts := startServer(t, func(c *Config) { c.HTTPS = nil })
	get(t, ts.http)
	fds0, g0 := resources() // what the idle server holds
	const n = 10000
	conns := make(chan net.Conn, n)
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 50 {
				c, err := net.DialTimeout("tcp", ts.http, 10*time.Second)
				if err != nil {
					t.Errorf("dial %d: %v", i, err)
					return
				}
				conns <- c
			}
		}()
	}
	wg.Wait()
	close(conns)
	refused := ts.rec.waitN(t, n-DefaultMaxConnsPerIP, errorIs("refused: too many connections from this address"))
	if e := refused[0]; e.SrcIP.String() != "127.0.0.1" || e.Protocol != event.ProtoHTTP || e.DstPort == 0 || e.Validate() != nil {
		t.Errorf("refused event: %+v", e)
	}
	if fds, g := resources(); fds > fds0+n+DefaultMaxConnsPerIP+10 || g > g0+DefaultMaxConnsPerIP+10 {
		t.Errorf("holding %d fds (was %d), %d goroutines (was %d)", fds, fds0, g, g0)
	}
	// Meanwhile another source address is served.
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("tcp", ts.http)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if out, _ := io.ReadAll(c); !bytes.HasPrefix(out, []byte("HTTP/1.1 200 ")) {
		t.Errorf("other address: %q", out)
	}
	c.Close()
	for c := range conns {
		c.Close()
	}
	// Each admitted connection that sent nothing is an event too.
	ts.rec.waitN(t, DefaultMaxConnsPerIP, errorIs("connection closed before a request"))
	get(t, ts.http)
	waitResources(t, fds0, g0)
}

// raiseNoFile raises the soft limit of open files to at least n.
func raiseNoFile(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("RLIMIT_NOFILE hard limit %d is below %d", lim.Max, n)
	}
	old := lim.Cur
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("raising RLIMIT_NOFILE: %v", err)
	}
	t.Cleanup(func() {
		lim.Cur = old
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	})
}

// TestStuckReaderHitsWriteTimeout: a client that pipelines requests and
// never reads the answers fills the socket; the response that cannot be
// written ends the connection after WriteTimeout, not at the connection's
// end of life.
func TestStuckReaderHitsWriteTimeout(t *testing.T) {
	// Answers of 4,000 bytes: the server's socket fills after a few
	// thousand small requests.
	rules := bigAnswers(t, "/stuck", strings.Repeat("x", 4000))
	ts := startServer(t, func(c *Config) {
		c.WriteTimeout = 300 * time.Millisecond
		c.ConnTimeout, c.IdleTimeout, c.ReadHeaderTimeout = time.Minute, time.Minute, time.Minute
		c.HTTPS = nil
		c.Classifier = rules
	})
	conn := dialSmallReadBuffer(t, ts.http)
	defer conn.Close()
	req := []byte("GET /stuck HTTP/1.1\r\nHost: evil-c2.example\r\n\r\n")
	batch := bytes.Repeat(req, 1000)
	go func() {
		for range 4 { // 180 kB of requests, 16 MB of answers
			if _, err := conn.Write(batch); err != nil {
				return
			}
		}
	}()
	open := func() int { return ts.life.Conns(func(net.Conn) {}) }
	if !waitFor(5*time.Second, func() bool { return len(ts.rec.all()) > 0 }) {
		t.Fatal("no request recorded")
	}
	start := time.Now()
	if !waitFor(15*time.Second, func() bool { return open() == 0 }) {
		// Say where the server's goroutines are (seen once, in a CI run
		// on a loaded machine, with 2,823 requests recorded).
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 2)
		t.Fatalf("the connection of a client that never reads is still open (%d events so far); goroutines:\n%s", len(ts.rec.all()), stacks.String())
	}
	t.Logf("closed %v after the first event, %d requests recorded", time.Since(start).Round(time.Millisecond), len(ts.rec.all()))
}

// TestLingeringIsBounded refuses requests from clients that stay connected
// and go on sending: at most Config.MaxLingering connections linger (read and
// discard before the close), and any more are closed at once.
func TestLingeringIsBounded(t *testing.T) {
	ts := abuseServer(t, func(c *Config) { c.MaxLingering = 1 })
	lingering := func() int {
		var m dto.Metric
		ts.m.lingering.Write(&m)
		return int(m.GetGauge().GetValue())
	}
	refused := func() net.Conn {
		c, err := net.Dial("tcp", ts.http)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("\x16\x03\x01 garbage\r\n\r\nmore"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if out, _ := io.ReadAll(c); !strings.HasPrefix(string(out), "HTTP/1.1 400 ") { // to the FIN
			t.Fatalf("response %q", out)
		}
		return c
	}
	// keepsWriting reports whether the server still reads what c sends,
	// for half a second.
	keepsWriting := func(c net.Conn) bool {
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
				return false
			}
		}
		return true
	}
	first := refused()
	defer first.Close()
	if !waitFor(time.Second, func() bool { return lingering() == 1 }) {
		t.Fatalf("%d connections lingering, want 1", lingering())
	}
	second := refused()
	defer second.Close()
	if n := lingering(); n != 1 {
		t.Errorf("%d connections lingering, want 1", n)
	}
	if keepsWriting(second) {
		t.Error("the connection past the bound was not closed at once")
	}
	if !keepsWriting(first) {
		t.Error("the lingering connection stopped reading within its 2 s")
	}
	if !waitFor(5*time.Second, func() bool { return lingering() == 0 }) {
		t.Fatalf("%d connections still lingering", lingering())
	}
	get(t, ts.http)
}
