package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/testnet"
)

// serveTLS accepts TLS connections with tc on loopback and completes
// their handshakes; it returns the address.
func serveTLS(t *testing.T, tc *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake() //nolint:errcheck // the client sees it
			}()
		}
	}()
	return ln.Addr().String()
}

// served returns the leaf certificate that addr presents for name,
// verified against ca.
func served(addr, name string, ca *x509.Certificate, maxVersion uint16) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: name, MaxVersion: maxVersion})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFilesReloaded: a certificate replaced on disk is served at the next
// handshake, without a restart; a pair caught half-way (new certificate,
// old key) leaves the previous one in use; TLS 1.1 is refused.
func TestFilesReloaded(t *testing.T) {
	dir := t.TempDir()
	ca := testnet.NewCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := ca.Issue(t, "feed.test", nil)
	write(t, certFile, c1)
	write(t, keyFile, k1)
	tc, err := New(Config{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, tc)
	first, err := served(addr, "feed.test", ca.Cert, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := served(addr, "feed.test", ca.Cert, tls.VersionTLS11); err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}

	c2, k2 := ca.Issue(t, "feed.test", nil)
	write(t, certFile, c2) // the key is still the old one
	got, err := served(addr, "feed.test", ca.Cert, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("a certificate that does not match its key was served: serial %v", got.SerialNumber)
	}
	write(t, keyFile, k2)
	want := pemSerial(t, c2)
	testnet.WaitFor(t, "the new certificate served", func() bool {
		got, err := served(addr, "feed.test", ca.Cert, 0)
		return err == nil && got.SerialNumber.Cmp(want) == 0
	})
}

func pemSerial(t *testing.T, certPEM []byte) *big.Int {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// TestNewErrors: a start with missing or mismatched files fails with an
// error that names them.
func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testnet.NewCA(t)
	c1, _ := ca.Issue(t, "feed.test", nil)
	_, k2 := ca.Issue(t, "feed.test", nil)
	write(t, filepath.Join(dir, "cert.pem"), c1)
	write(t, filepath.Join(dir, "key.pem"), k2)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{CertFile: filepath.Join(dir, "none.pem"), KeyFile: filepath.Join(dir, "key.pem")}, "none.pem"},
		{Config{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}, "does not match"},
		{Config{CertFile: filepath.Join(dir, "cert.pem")}, "go together"},
		{Config{CertFile: "c", KeyFile: "k", ACME: ACME{Domains: []string{"feed.test"}, CacheDir: dir}}, "not both"},
		{Config{ACME: ACME{Domains: []string{"feed.test"}}}, "cache directory"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	if tc, err := New(Config{}); tc != nil || err != nil {
		t.Errorf("the zero Config: got %v, %v; want no TLS", tc, err)
	}
}

// TestACMEWiring checks the autocert wiring without an ACME CA (none is
// reachable from the tests): the listener offers the acme-tls/1 protocol
// of the TLS-ALPN-01 challenge, serves the certificate found in the cache
// directory for a configured domain, and refuses other names before any
// request to a CA. Getting a certificate from a CA is not tested.
func TestACMEWiring(t *testing.T) {
	dir := t.TempDir()
	ca := testnet.NewCA(t)
	// autocert's cache entry of an ECDSA certificate: the key, then the
	// chain, in one PEM file named after the domain. Valid for 200 days,
	// so that no renewal is due.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: "feed.test"}, DNSNames: []string{"feed.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(200 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	entry := append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	write(t, filepath.Join(dir, "feed.test"), entry)

	tc, err := New(Config{ACME: ACME{Domains: []string{"feed.test"}, CacheDir: dir, DirectoryURL: "https://acme.invalid/directory"}})
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", tc.MinVersion)
	}
	alpn := false
	for _, p := range tc.NextProtos {
		alpn = alpn || p == "acme-tls/1"
	}
	if !alpn {
		t.Errorf("NextProtos %v lack acme-tls/1: the TLS-ALPN-01 challenge cannot be answered", tc.NextProtos)
	}
	addr := serveTLS(t, tc)
	got, err := served(addr, "feed.test", ca.Cert, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.SerialNumber.Int64() != 4242 {
		t.Errorf("served serial %v, want the cached certificate's 4242", got.SerialNumber)
	}
	if _, err := served(addr, "other.test", ca.Cert, 0); err == nil {
		t.Error("a handshake for a name outside acme.domains succeeded")
	}
}
