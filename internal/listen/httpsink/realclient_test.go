package httpsink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/certs"

	"github.com/takedown-project/takedown/internal/testnet"
)

const testRules = `
rules:
  - name: gate
    family: testfam
    tag: gate-v1
    match:
      protocol: [http, https]
      domain: evil-c2.example
      path: '^/gate\.php'
    bot_id:
      from: query
      param: id
    response:
      status: 200
      content_type: text/plain
      body: "OK"
`

func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkCommon asserts the fields every request event of ts carries.
func checkCommon(t *testing.T, e *event.Event, proto event.Protocol, dstAddr string) {
	t.Helper()
	if err := e.Validate(); err != nil {
		t.Errorf("invalid event: %v", err)
	}
	dst := netip.MustParseAddrPort(dstAddr)
	switch {
	case e.Sensor != "test-sensor", e.Protocol != proto, e.Transport != event.TransportTCP:
		t.Errorf("sensor/protocol/transport = %q/%q/%q", e.Sensor, e.Protocol, e.Transport)
	case e.SrcIP != netip.MustParseAddr("127.0.0.1") || e.SrcPort == 0:
		t.Errorf("source = %v:%d", e.SrcIP, e.SrcPort)
	case e.DstIP != dst.Addr() || e.DstPort != dst.Port():
		t.Errorf("destination = %v:%d, want %v", e.DstIP, e.DstPort, dst)
	case time.Since(e.Time) > time.Minute || e.Time.Location() != time.UTC:
		t.Errorf("time = %v", e.Time)
	}
}

func TestCurlHTTP1(t *testing.T) {
	testnet.Need(t, "curl")
	h, _ := holder(t, testRules)
	ts := startServer(t, func(c *Config) { c.Classifier = h })
	body := strings.Repeat("a=1&b=2&", 100) // 800 bytes
	out := run(t, "", "curl", "-sS", "--http1.1", "-i", "--data-binary", body,
		"-H", "Host: EVIL-C2.example:8080",
		"-H", "Content-Type: application/x-www-form-urlencoded",
		"-H", "X-Forwarded-For: 10.0.0.1",
		"-H", "X-Forwarded-For: 10.0.0.2",
		"-e", "http://ref.example/",
		"-A", "Mozilla/4.0 (bot)",
		"http://"+ts.http+"/gate.php?id=bot42&v=2")
	if !strings.Contains(out, "HTTP/1.1 200 OK") || !strings.HasSuffix(out, "\r\n\r\nOK") || !strings.Contains(out, "Content-Type: text/plain") {
		t.Errorf("response:\n%s", out)
	}
	e := ts.rec.waitN(t, 1, nil)[0]
	checkCommon(t, &e, event.ProtoHTTP, ts.http)
	sum := sha256.Sum256([]byte(body))
	want := event.Event{
		Time: e.Time, Sensor: "test-sensor", Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
		SrcIP: e.SrcIP, SrcPort: e.SrcPort, DstIP: e.DstIP, DstPort: e.DstPort,
		Domain: "evil-c2.example", Zone: "evil-c2.example", Case: "case-1",
		Family: "testfam", Tag: "gate-v1", BotID: "bot42",
		HTTPMethod: "POST", HTTPPath: "/gate.php?id=bot42&v=2", HTTPUserAgent: "Mozilla/4.0 (bot)",
		HTTPReferer: "http://ref.example/", HTTPForwardedBy: "10.0.0.1, 10.0.0.2",
		HTTPContentType: "application/x-www-form-urlencoded",
		Bytes:           int64(len(body)), PayloadSHA256: hex.EncodeToString(sum[:]),
		PayloadHead: []byte(body[:DefaultHeadBytes]),
	}
	if !eventEqual(&e, &want) {
		t.Errorf("event\n got %+v\nwant %+v", e, want)
	}

	// An unknown path of a seized domain: the case's family and the
	// default empty 200; a chunked body is hashed after decoding.
	ts.rec.reset()
	out = run(t, "hello chunked", "curl", "-sS", "-i", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
		"-H", "Host: www.evil-c2.example", "http://"+ts.http+"/other")
	if !strings.Contains(out, "HTTP/1.1 200 OK") || !strings.Contains(out, "Content-Length: 0") {
		t.Errorf("response:\n%s", out)
	}
	e = ts.rec.waitN(t, 1, nil)[0]
	sum = sha256.Sum256([]byte("hello chunked"))
	if e.Family != "waledac" || e.Tag != "" || e.Bytes != 13 || e.PayloadSHA256 != hex.EncodeToString(sum[:]) || string(e.PayloadHead) != "hello chunked" {
		t.Errorf("chunked event: %+v", e)
	}
}

func eventEqual(a, b *event.Event) bool {
	x, y := *a, *b
	x.PayloadHead, y.PayloadHead = nil, nil
	return reflect.DeepEqual(x, y) && bytes.Equal(a.PayloadHead, b.PayloadHead)
}

func TestCurlHTTPSAndHTTP2(t *testing.T) {
	testnet.Need(t, "curl")
	h, _ := holder(t, testRules)
	ts := startServer(t, func(c *Config) { c.Classifier = h })
	cafile := filepath.Join(ts.dir, certs.CertFile)
	for _, tc := range []struct {
		flag, alpn string
	}{
		{"--http2", "h2,http/1.1"},
		{"--http1.1", "http/1.1"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			ts.rec.reset()
			out := run(t, "", "curl", "-sS", "-i", tc.flag, "--cacert", cafile,
				"--resolve", "bot.evil-c2.example:"+port(ts.https)+":127.0.0.1",
				"-A", "TestBot/1.0", "-H", "Referer: https://r.example/", "-H", "X-Forwarded-For: 192.0.2.1",
				"--data-binary", "payload", "-H", "Content-Type: text/plain",
				"https://bot.evil-c2.example:"+port(ts.https)+"/gate.php?id=x7")
			if !strings.Contains(out, " 200") || !strings.HasSuffix(out, "\r\n\r\nOK") {
				t.Errorf("response:\n%s", out)
			}
			e := ts.rec.waitN(t, 1, nil)[0]
			checkCommon(t, &e, event.ProtoHTTPS, ts.https)
			sum := sha256.Sum256([]byte("payload"))
			want := event.Event{
				Time: e.Time, Sensor: "test-sensor", Protocol: event.ProtoHTTPS, Transport: event.TransportTCP,
				SrcIP: e.SrcIP, SrcPort: e.SrcPort, DstIP: e.DstIP, DstPort: e.DstPort,
				Domain: "bot.evil-c2.example", Zone: "evil-c2.example", Case: "case-1",
				Family: "testfam", Tag: "gate-v1", BotID: "x7",
				HTTPMethod: "POST", HTTPPath: "/gate.php?id=x7", HTTPUserAgent: "TestBot/1.0",
				HTTPReferer: "https://r.example/", HTTPForwardedBy: "192.0.2.1", HTTPContentType: "text/plain",
				TLSVersion: "1.3", TLSCipher: e.TLSCipher, TLSFingerprint: e.TLSFingerprint, TLSALPN: tc.alpn,
				Bytes: 7, PayloadSHA256: hex.EncodeToString(sum[:]), PayloadHead: []byte("payload"),
			}
			if !eventEqual(&e, &want) {
				t.Errorf("event\n got %+v\nwant %+v", e, want)
			}
			if !strings.HasPrefix(e.TLSCipher, "TLS_") {
				t.Errorf("cipher %q", e.TLSCipher)
			}
			// JA4: TLS over TCP, 1.3, SNI present; ALPN first and last char.
			wantPrefix := "t13d"
			if !strings.HasPrefix(e.TLSFingerprint, wantPrefix) || len(e.TLSFingerprint) != 36 {
				t.Errorf("ja4 %q", e.TLSFingerprint)
			}
			if tc.flag == "--http2" && !strings.Contains(e.TLSFingerprint, "h2_") {
				t.Errorf("ja4 %q does not show h2", e.TLSFingerprint)
			}
		})
	}
}

func TestOpenSSLClient(t *testing.T) {
	testnet.Need(t, "openssl")
	ts := startServer(t, nil)
	cafile := filepath.Join(ts.dir, certs.CertFile)
	req := "GET /cmd?x=1 HTTP/1.1\r\nHost: Evil-C2.example\r\nUser-Agent: ossl\r\nConnection: close\r\n\r\n"
	out := run(t, req, "openssl", "s_client", "-connect", ts.https, "-servername", "sni.evil-c2.example",
		"-CAfile", cafile, "-verify_return_error", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
		"-alpn", "http/1.1", "-ign_eof", "-quiet")
	if !strings.Contains(out, "HTTP/1.1 200 OK") {
		t.Errorf("openssl output:\n%s", out)
	}
	e := ts.rec.waitN(t, 1, nil)[0]
	checkCommon(t, &e, event.ProtoHTTPS, ts.https)
	want := event.Event{
		Time: e.Time, Sensor: "test-sensor", Protocol: event.ProtoHTTPS, Transport: event.TransportTCP,
		SrcIP: e.SrcIP, SrcPort: e.SrcPort, DstIP: e.DstIP, DstPort: e.DstPort,
		Domain: "evil-c2.example", Zone: "evil-c2.example", Case: "case-1", Family: "waledac",
		HTTPMethod: "GET", HTTPPath: "/cmd?x=1", HTTPUserAgent: "ossl",
		TLSVersion: "1.2", TLSCipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		TLSFingerprint: e.TLSFingerprint, TLSALPN: "http/1.1",
	}
	if !eventEqual(&e, &want) {
		t.Errorf("event\n got %+v\nwant %+v", e, want)
	}
	if !strings.HasPrefix(e.TLSFingerprint, "t12d") && !strings.HasPrefix(e.TLSFingerprint, "t13d") {
		t.Errorf("ja4 %q", e.TLSFingerprint)
	}

	// The leaf names the SNI and is signed by the CA on disk.
	out = run(t, "", "openssl", "s_client", "-connect", ts.https, "-servername", "Other.Example",
		"-CAfile", cafile, "-verify_return_error", "-showcerts")
	if !strings.Contains(out, "CN = other.example") || !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Errorf("openssl output:\n%s", out)
	}
	// Without SNI: the default name's certificate.
	out = run(t, "", "openssl", "s_client", "-connect", ts.https, "-noservername", "-CAfile", cafile)
	if !strings.Contains(out, "CN = "+certs.DefaultName) {
		t.Errorf("openssl output without SNI:\n%s", out)
	}
}

func TestCAKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	a, err := certs.Open(certs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, certs.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	b, err := certs.Open(certs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.CACertPEM(), b.CACertPEM()) {
		t.Error("a second Open made a new CA")
	}
	os.Remove(filepath.Join(dir, certs.CertFile))
	if _, err := certs.Open(certs.Config{Dir: dir}); err == nil {
		t.Error("a key without its certificate was accepted")
	}
}

// TestWriteAllClientGetsTheRefusal sends requests larger than the limits
// with socat, which writes all it has before it reads: it must still get
// the 431 or 413 that the listener answered when the limit was reached. A
// socket closed with unread input sends a reset, which fails the client's
// next write and throws away what it had not read; so the listener shuts
// its sending side first and reads on for a while before the close.
func TestWriteAllClientGetsTheRefusal(t *testing.T) {
	testnet.Need(t, "socat")
	ts := startServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	var big bytes.Buffer
	big.WriteString("GET /big HTTP/1.1\r\nHost: evil-c2.example\r\n")
	for i := 0; big.Len() < 600<<10; i++ {
		fmt.Fprintf(&big, "X-Filler-%d: %s\r\n", i, strings.Repeat("f", 100))
	}
	big.WriteString("\r\n")
	post := "POST /up HTTP/1.1\r\nHost: evil-c2.example\r\nContent-Length: 614400\r\n\r\n" + strings.Repeat("b", 600<<10)
	plain, tls := "TCP:"+ts.http, "OPENSSL:"+ts.https+",verify=0,snihost=evil-c2.example"
	for _, tc := range []struct {
		name, req, to, status, err string
	}{
		// A malformed request line in the first read: the event loop answers
		// and hands the lingering close to a goroutine.
		{"garbage", "\x01 garbage\r\n\r\n" + strings.Repeat("g", 600<<10), plain, "HTTP/1.1 400 ", "malformed request line"},
		// A TLS record on the plain port: refused at its first bytes.
		{"tls-on-plain", "\x16\x03\x01 garbage\r\n\r\n" + strings.Repeat("g", 600<<10), plain, "HTTP/1.1 400 ", "TLS on plain HTTP"},
		{"header", big.String(), plain, "HTTP/1.1 431 ", "header too large"},
		{"body", post, plain, "HTTP/1.1 413 ", "body too large"},
		{"tls-header", big.String(), tls, "HTTP/1.1 431 ", "header too large"},
		{"tls-body", post, tls, "HTTP/1.1 413 ", "body too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 5 {
				ts.rec.reset()
				out := run(t, tc.req, "socat", "-t5", "-", tc.to)
				if !strings.HasPrefix(out, tc.status) {
					t.Fatalf("socat got %q, want %s", out, tc.status)
				}
				ts.rec.waitN(t, 1, errorIs(tc.err))
			}
		})
	}
	get(t, ts.http)
}
