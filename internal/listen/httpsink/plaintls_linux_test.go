//go:build linux

package httpsink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/testnet"
)

// tapConn keeps a copy of what a client writes and reads.
type tapConn struct {
	net.Conn
	mu          sync.Mutex
	wrote, read []byte
}

func (c *tapConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.wrote = append(c.wrote, b...)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read = append(c.read, b[:n]...)
	c.mu.Unlock()
	return n, err
}

// TestTLSOnPlainHTTP sends the ClientHellos of real TLS clients to the
// plain-HTTP port: each must get a 400 and the close at once, not after
// the header timeout (a minute here), and be recorded as a TLS client on
// plain HTTP with its SNI and JA4.
func TestTLSOnPlainHTTP(t *testing.T) { modes(t, testTLSOnPlainHTTP) }

func testTLSOnPlainHTTP(t *testing.T, loops int) {
	ts, reg := parkServer(t, loops, func(c *Config) { c.ReadHeaderTimeout = time.Minute })
	const msg = "TLS on plain HTTP"
	// checkEvent checks the fields every such event carries.
	checkEvent := func(t *testing.T, e *event.Event, sni string) {
		t.Helper()
		checkCommon(t, e, event.ProtoHTTP, ts.http)
		if !e.Malformed || e.Bytes == 0 || e.PayloadSHA256 == "" || len(e.PayloadHead) < 3 ||
			e.HTTPMethod != "" || e.HTTPPath != "" {
			t.Errorf("event: %+v", e)
		}
		if sni != "" && (e.Domain != sni || e.Zone != "evil-c2.example" || e.Case != "case-1" ||
			e.Family != "waledac" || !strings.HasPrefix(e.TLSFingerprint, "t1")) {
			t.Errorf("event without the hello's SNI, zone or JA4: %+v", e)
		}
	}

	t.Run("go", func(t *testing.T) {
		ts.rec.reset()
		raw, err := net.DialTimeout("tcp", ts.http, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		tap := &tapConn{Conn: raw}
		tc := tls.Client(tap, &tls.Config{ServerName: "Bot.Evil-C2.example", InsecureSkipVerify: true})
		herr := tc.Handshake()
		if herr == nil {
			t.Fatal("handshake with a plain-HTTP port succeeded")
		}
		rest, err := io.ReadAll(raw) // up to the server's close
		if err != nil {
			t.Fatalf("handshake: %v; then: %v (no answer before the deadline)", herr, err)
		}
		got := string(append(tap.read, rest...))
		if !strings.HasPrefix(got, "HTTP/1.1 400 Bad Request\r\n") || !strings.Contains(got, "\r\nConnection: close\r\n") {
			t.Errorf("answer %q", got)
		}
		e := ts.rec.waitN(t, 1, errorIs(msg))[0]
		checkEvent(t, &e, "bot.evil-c2.example")
		hello := tap.wrote
		sum := sha256.Sum256(hello)
		if e.Bytes != int64(len(hello)) || e.PayloadSHA256 != hex.EncodeToString(sum[:]) ||
			!bytes.Equal(e.PayloadHead, hello[:min(len(hello), DefaultHeadBytes)]) {
			t.Errorf("payload of %d bytes %s, want the hello's %d bytes %x", e.Bytes, e.PayloadSHA256, len(hello), sum)
		}
	})

	// clientRun runs a TLS client against the plain port; it fails if the
	// client is still waiting after 15 s.
	clientRun := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			t.Fatalf("%s was still waiting after 15 s:\n%s", name, out)
		case err == nil:
			t.Fatalf("%s succeeded against a plain-HTTP port:\n%s", name, out)
		case !errors.As(err, &ee):
			t.Fatal(err)
		}
		return string(out)
	}

	t.Run("curl", func(t *testing.T) {
		testnet.Need(t, "curl")
		ts.rec.reset()
		p := port(ts.http)
		out := clientRun(t, "curl", "-sS", "-k", "--max-time", "12", "--resolve", "evil-c2.example:"+p+":127.0.0.1",
			"https://evil-c2.example:"+p+"/gate.php")
		if strings.Contains(out, "timed out") {
			t.Errorf("curl timed out: %s", out)
		}
		e := ts.rec.waitN(t, 1, errorIs(msg))[0]
		checkEvent(t, &e, "evil-c2.example")
	})

	t.Run("openssl", func(t *testing.T) {
		testnet.Need(t, "openssl")
		ts.rec.reset()
		clientRun(t, "openssl", "s_client", "-connect", ts.http, "-servername", "www.evil-c2.example")
		e := ts.rec.waitN(t, 1, errorIs(msg))[0]
		checkEvent(t, &e, "www.evil-c2.example")
	})

	t.Run("sslv2-hello", func(t *testing.T) {
		ts.rec.reset()
		if out := exchange(t, ts.http, []byte(sslv2Hello)); !strings.HasPrefix(out, "HTTP/1.1 400 ") {
			t.Errorf("answer %q", out)
		}
		e := ts.rec.waitN(t, 1, errorIs(msg))[0]
		checkEvent(t, &e, "")
		if e.Bytes != int64(len(sslv2Hello)) || e.TLSFingerprint != "" || e.Domain != "" {
			t.Errorf("event: %+v", e)
		}
	})

	if n := metric(t, reg, "malformed_total", "protocol", "http"); n != 4 {
		t.Errorf("malformed_total{protocol=http} = %v, want 4", n)
	}
	get(t, ts.http)
}
