package cli_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/testnet"
)

// TestAPIOverTLS: with api.tls the CLI reaches the running serve over
// TLS, trusting only the certificate of api.tls.cert_file (whatever name
// it holds), for the registry API and for the dashboard's users; a server
// presenting another certificate is refused.
func TestAPIOverTLS(t *testing.T) {
	cfg, _, addr := setup(t)
	dir := filepath.Dir(cfg)
	ca := testnet.NewCA(t)
	cert, key := ca.Issue(t, "takedown.invalid", nil)
	certFile, keyFile := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	for f, b := range map[string][]byte{certFile: cert, keyFile: key} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tlsKeys := strings.Replace(string(base), "  listen: "+addr+"\n", "  listen: "+addr+"\n  tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n", 1)
	if tlsKeys == string(base) {
		t.Fatal("the api section of the test config was not found")
	}
	if err := os.WriteFile(cfg, []byte(tlsKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	startTLSServer(t, cfg, addr)

	if out := mustRun(t, cfg, "--mode", "remote", "status"); !strings.Contains(out, "serve: running as sensor test-1") {
		t.Errorf("status over TLS:\n%s", out)
	}
	if r := runIn(t, cfg, "ana's long password\n", "--mode", "remote", "users", "add", "ana", "--role", "analyst"); r.code != 0 {
		t.Fatalf("users add over TLS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := mustRun(t, cfg, "--mode", "remote", "users", "list"); !strings.Contains(out, "ana") {
		t.Errorf("users list over TLS:\n%s", out)
	}

	// The same server, but the CLI's config names another certificate.
	other, _ := ca.Issue(t, "takedown.invalid", nil)
	if err := os.WriteFile(certFile+".other", other, 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong.yaml")
	if err := os.WriteFile(wrong, []byte(strings.Replace(tlsKeys, certFile+",", certFile+".other,", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, wrong, "--mode", "remote", "status")
	if r.code == 0 || !strings.Contains(r.stderr, "another certificate than api.tls.cert_file") {
		t.Errorf("a server with another certificate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// startTLSServer runs serve and waits until its API answers a TLS
// handshake.
func startTLSServer(t *testing.T, cfg, addr string) {
	t.Helper()
	startServerWith(t, cfg, func() bool {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
