package httpsink

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/ja4"
)

// checkRecorder fails the fuzz run on an event that is not valid.
type checkRecorder struct {
	t   *testing.T
	cfg *Config
	n   int
}

func (r *checkRecorder) Record(e *event.Event) {
	r.n++
	if err := e.Validate(); err != nil {
		r.t.Fatalf("invalid event: %v: %+v", err, e)
	}
	switch {
	case e.Protocol != event.ProtoHTTP || e.Transport != event.TransportTCP:
		r.t.Fatalf("protocol %q transport %q", e.Protocol, e.Transport)
	case len(e.PayloadHead) > r.cfg.HeadBytes:
		r.t.Fatalf("payload head of %d bytes", len(e.PayloadHead))
	case e.Bytes > r.cfg.MaxBodyBytes && e.Bytes > int64(r.cfg.MaxHeaderBytes):
		r.t.Fatalf("bytes %d over every limit", e.Bytes)
	case e.Bytes > 0 && e.PayloadSHA256 == "" && e.Error == "":
		r.t.Fatalf("%d bytes without a hash", e.Bytes)
	case e.Family == "":
		r.t.Fatal("no family")
	case e.Domain != "" && (bytes.ContainsAny([]byte(e.Domain), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") || e.Domain[len(e.Domain)-1] == '.'):
		r.t.Fatalf("domain %q not normalized", e.Domain)
	}
	if e.PayloadSHA256 != "" {
		if _, err := hex.DecodeString(e.PayloadSHA256); err != nil {
			r.t.Fatal(err)
		}
	}
}

// requestSeeds are requests, well formed or not, for FuzzRequest and
// TestLoopSameEvents.
var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"GET /gate.php?id=1 HTTP/1.1\r\nHost: EVIL-C2.example:80\r\nUser-Agent: Mozilla\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
	"POST /abcdef.htm HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla\r\nContent-Length: 12\r\n\r\na=QUFB&b=bot",
	"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
	"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n",
	"POST /c HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
	"POST /c HTTP/1.1\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\nabc",
	"\r\n\r\nGET / HTTP/1.1\nHost: [::1]:80\n\n",
	"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
	"GET / HTTP/1.1\r\nbad header\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"\x16\x03\x01\x00\xff\x01\x00\x00\xfb\x03\x03",
	"\x16\x03\x01",
	"\x16\x03",
	sslv2Hello,
	"\r\n\x16\x03\x03\x00\x05\x01\x00\x00\x01\x00",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
	"HEAD / HTTP/1.1\r\nHost: a.\r\n\r\n",
}

// sslv2Hello is an SSL 2.0 style ClientHello offering SSL 3.0, as old
// clients send: a two-byte length with the high bit set, type 1, version
// 3.0, 21 bytes of cipher specs, no session ID, a 16-byte challenge.
var sslv2Hello = "\x80\x2e\x01\x03\x00\x00\x15\x00\x00\x00\x10" +
	"\x00\x00\x04\x00\x00\x05\x00\x00\x0a\x01\x00\x80\x07\x00\xc0\x03\x00\x80\x00\x00\x09" +
	"0123456789abcdef"

// FuzzRequest feeds raw bytes to the HTTP/1 connection loop as one
// client's stream: it must never panic, and every event must be valid.
func FuzzRequest(f *testing.F) {
	for _, seed := range requestSeeds {
		f.Add([]byte(seed))
	}
	hello := clientHello(f, "www.a.example")
	f.Add(hello)
	f.Add(hello[:100])
	rules, err := classify.Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Config{MaxHeaderBytes: 1024, MaxBodyBytes: 2048, HeadBytes: 64, Classifier: rules,
			Zones: fakeZones{"a.example": {"c", "fam"}}}
		rec := &checkRecorder{t: t, cfg: &cfg}
		cfg.Recorder = rec
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rec.cfg = &s.cfg
		serveBytes(s, bytes.NewReader(in))
		if rec.n == 0 {
			t.Fatal("no event for a connection")
		}
	})
}

// TestParseHead is the table of the head parser.
func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // error text, or "method target host ua xff len chunked close"
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / a  -  -1 false false"},
		{"GET / HTTP/1.0\r\n\r\n", "GET /   -  -1 false true"},
		{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET /   -  -1 false false"},
		{"POST /x HTTP/1.1\r\nContent-Length: 10\r\nUser-Agent: u a\r\n\r\n", "POST /x  u a -  10 false false"},
		{"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n", "POST /x   -  -1 true true"},
		{"GET / HTTP/1.1\r\nX-Forwarded-For: 1\r\nx-forwarded-for:2 \r\n\r\n", "GET /   - 1, 2 -1 false false"},
		{"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"},
		{"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "malformed Content-Length"},
		{"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "malformed Content-Length"},
		{"GET / HTTP/3.0\r\n\r\n", "unsupported HTTP version"},
		{"GET / FTP/1.0\r\n\r\n", "malformed request line"},
		{"GET /\r\n\r\n", "malformed request line"},
		{"G(T / HTTP/1.1\r\n\r\n", "malformed method"},
		{"GET /a\x01 HTTP/1.1\r\n\r\n", "malformed request target"},
		{"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "malformed header name"},
		{"GET / HTTP/1.1\r\nA: x\x00y\r\n\r\n", "malformed header value"},
		{"GET / HTTP/1.1\r\nA: x\r\n continued\r\n\r\n", "obsolete header line folding"},
		{"GET / HTTP/1.1\r\nnocolon\r\n\r\n", "header line without a colon"},
	} {
		var req request
		got := ""
		if err := parseHead([]byte(tc.in), &req); err != nil {
			got = err.msg
		} else {
			got = fmt.Sprintf("%s %s %s %s - %s %d %v %v", req.method, req.target, req.host, req.ua, req.xff, req.length, req.chunked, req.close)
		}
		if got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"Evil.Example:8080": "evil.example", "[::1]:80": "::1", "a.b.": "a.b", "::1": "::1", "x": "x",
	} {
		if got := hostName([]byte(in)); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIsTLSHello is the table of the detection.
func TestIsTLSHello(t *testing.T) {
	for in, want := range map[string]bool{
		"\x16\x03\x01\x02\x00\x01":  true, // TLS 1.0 record version, as most clients send
		"\x16\x03\x03":              true,
		"\x16\x03\x00":              true, // SSL 3.0
		"\x16\x03":                  false,
		"\x16\x03\x05":              false,
		"\x16\x02\x01":              false,
		"\x16 garbage\r\n":          false,
		sslv2Hello:                  true,
		"\x80\x2e\x01\x00\x02":      true, // SSL 2.0 itself
		"\x80\x2e\x01\x03":          false,
		"\x80\x2e\x02\x03\x01":      false,
		"GET / HTTP/1.1\r\n\r\n":    false,
		"\x17\x03\x03\x00\x10":      false, // application data
		"\xff\xfe\x01\x03\x01 abc":  true,
		"\xc3\xa9 / HTTP/1.1\r\n\r": false,
	} {
		if got := isTLSHello([]byte(in)); got != want {
			t.Errorf("isTLSHello(%q) = %v, want %v", in, got, want)
		}
	}
}

// clientHello returns the ClientHello records crypto/tls's client sends
// for the server name sni.
func clientHello(t testing.TB, sni string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tls.Client(c, &tls.Config{ServerName: sni}).Handshake() //nolint:errcheck // the pipe is closed under it
		c.Close()
	}()
	var hello []byte
	buf := make([]byte, 4096)
	for {
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := s.Read(buf)
		hello = append(hello, buf[:n]...)
		if _, complete, _ := ja4.HandshakeFromRecords(hello); complete {
			return hello
		}
		if err != nil {
			t.Fatalf("reading the ClientHello: %v", err)
		}
	}
}
