package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	a, err := Open(Config{Dir: dir, CacheSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", st, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(a.CACert())
	for name, want := range map[string]string{
		"Bot.Example.": "bot.example", "": DefaultName, "bad name!": DefaultName, "x_y.example": "x_y.example",
	} {
		c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			t.Fatal(err)
		}
		if c.Leaf.Subject.CommonName != want {
			t.Errorf("%q: leaf for %q, want %q", name, c.Leaf.Subject.CommonName, want)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: want}); err != nil && want != "x_y.example" {
			t.Errorf("%q: %v", name, err)
		}
	}
	// Concurrent first uses of one name mint it once; the cache is bounded.
	var wg sync.WaitGroup
	certs := make([]*tls.Certificate, 8)
	for i := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			certs[i], _ = a.Certificate("same.example")
		}()
	}
	wg.Wait()
	for _, c := range certs {
		if c != certs[0] {
			t.Fatal("one name minted twice")
		}
	}
	for i := range 10 {
		a.Certificate(fmt.Sprintf("n%d.example", i))
	}
	if minted, cached := a.Minted(); cached != 3 || minted != 14 {
		t.Errorf("minted %d, cached %d", minted, cached)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("junk"), 0o600)
	if _, err := Open(Config{Dir: dir}); err == nil {
		t.Error("a key without a certificate was accepted")
	}
	os.WriteFile(filepath.Join(dir, CertFile), []byte("junk"), 0o600)
	if _, err := Open(Config{Dir: dir}); err == nil {
		t.Error("junk was accepted")
	}
}
