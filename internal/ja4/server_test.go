package ja4

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/testnet"
)

var ja4Shape = regexp.MustCompile(`^t(13|12|11|10)[di]\d{4}[0-9a-zA-Z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$`)

// seen is what the server learnt in GetConfigForClient: the JA4 from the
// recorded bytes, and one computed from crypto/tls's own parse of the same
// hello, an independent check of the parser.
type seen struct {
	fp, fromInfo string
	err          error
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sink.test"},
		DNSNames: []string{"sink.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fromInfo rebuilds the JA4 inputs from crypto/tls's ClientHelloInfo.
func fromInfo(hi *tls.ClientHelloInfo) string {
	h := &ClientHello{
		LegacyVersion: tls.VersionTLS12, CipherSuites: hi.CipherSuites, Extensions: hi.Extensions,
		SupportedVersions: hi.SupportedVersions, HasSNI: hi.ServerName != "",
	}
	for _, s := range hi.SignatureSchemes {
		h.SignatureAlgorithms = append(h.SignatureAlgorithms, uint16(s))
	}
	if len(hi.SupportedProtos) > 0 {
		h.ALPN = []byte(hi.SupportedProtos[0])
	}
	return h.JA4(TCP)
}

// serveTLS starts a TLS server on 127.0.0.1:0 that reports each client's
// JA4 and closes after the handshake.
func serveTLS(t *testing.T) (string, <-chan seen) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan seen, 16)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{selfSigned(t)},
		NextProtos:   []string{"h2", "http/1.1"},
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			var s seen
			if c, ok := hi.Conn.(*Conn); ok {
				s.fp, s.err = c.JA4()
			}
			s.fromInfo = fromInfo(hi)
			ch <- s
			return nil, nil
		},
	}
	tl := tls.NewListener(NewListener(ln), cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err == nil {
					_, _ = c.Write([]byte("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"))
				}
			}()
		}
	}()
	t.Cleanup(func() { tl.Close(); <-done })
	return ln.Addr().String(), ch
}

func wait(t *testing.T, ch <-chan seen) seen {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no ClientHello within 10s")
	}
	return seen{}
}

func TestGoClient(t *testing.T) {
	addr, ch := serveTLS(t)
	for _, c := range []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"tls13-h2", &tls.Config{ServerName: "sink.test", NextProtos: []string{"h2"}, InsecureSkipVerify: true}, "t13d"},
		{"tls12-noalpn", &tls.Config{ServerName: "sink.test", MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}, "t12d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			s := wait(t, ch)
			if s.err != nil || !ja4Shape.MatchString(s.fp) || !strings.HasPrefix(s.fp, c.want) {
				t.Fatalf("JA4 %q, %v; want %s…", s.fp, s.err, c.want)
			}
			if s.fp != s.fromInfo {
				t.Errorf("recorded bytes give %s, crypto/tls's parse gives %s", s.fp, s.fromInfo)
			}
		})
	}
}

// TestRealClients fingerprints curl and openssl s_client (Debian packages
// curl and openssl) over loopback.
func TestRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts curl and openssl")
	}
	addr, ch := serveTLS(t)
	_, port, _ := net.SplitHostPort(addr)
	cases := []struct {
		name   string
		argv   []string
		prefix string
	}{
		{"curl-tls13", []string{"curl", "-sk", "--max-time", "5", "--tlsv1.3", "--http1.1", "--resolve", "sink.test:" + port + ":127.0.0.1", "https://sink.test:" + port + "/"}, "t13d"},
		{"curl-tls12", []string{"curl", "-sk", "--max-time", "5", "--tlsv1.2", "--tls-max", "1.2", "--http1.1", "--resolve", "sink.test:" + port + ":127.0.0.1", "https://sink.test:" + port + "/"}, "t12d"},
		{"openssl-tls13-ip", []string{"openssl", "s_client", "-connect", addr, "-noservername", "-tls1_3"}, "t13i"},
		{"openssl-tls12-alpn", []string{"openssl", "s_client", "-connect", addr, "-servername", "sink.test", "-tls1_2", "-alpn", "h2"}, "t12d"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testnet.Need(t, c.argv[0])
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
			cmd.Stdin = strings.NewReader("") // s_client exits at EOF
			out, err := cmd.CombinedOutput()
			s := wait(t, ch)
			t.Logf("%s: %s", c.name, s.fp)
			if s.err != nil || !ja4Shape.MatchString(s.fp) || !strings.HasPrefix(s.fp, c.prefix) {
				t.Fatalf("JA4 %q, %v; want %s… (client: %v, %.300s)", s.fp, s.err, c.prefix, err, out)
			}
			if s.fp != s.fromInfo {
				t.Errorf("recorded bytes give %s, crypto/tls's parse gives %s", s.fp, s.fromInfo)
			}
			switch {
			case strings.HasPrefix(c.name, "curl") && s.fp[8:10] != "h1":
				t.Errorf("curl --http1.1 offers http/1.1 first; ALPN code %q", s.fp[8:10])
			case strings.HasSuffix(c.name, "-ip") && s.fp[8:10] != "00":
				t.Errorf("no ALPN offered; ALPN code %q", s.fp[8:10])
			case strings.HasSuffix(c.name, "-alpn") && s.fp[8:10] != "h2":
				t.Errorf("ALPN h2 offered; ALPN code %q", s.fp[8:10])
			}
		})
	}
}

// TestConnNotTLS checks that a plain-text client stops the recording.
func TestConnNotTLS(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewConn(a)
	go func() { _, _ = b.Write([]byte("GET / HTTP/1.1\r\n\r\n")) }()
	buf := make([]byte, 64)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.JA4(); err == nil || c.ClientHello() != nil {
		t.Fatalf("JA4 of plain text: err %v", err)
	}
}
