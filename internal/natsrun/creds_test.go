package natsrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/takedown-project/takedown/internal/bus"
)

func TestCredentialsAreWhatBusReads(t *testing.T) {
	dir := t.TempDir()
	nk := filepath.Join(dir, "s1.creds")
	pub, err := WriteNKeyCredential(nk)
	if err != nil {
		t.Fatal(err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		t.Fatalf("%q is not a public user key", pub)
	}
	pw := filepath.Join(dir, "central.creds")
	hash, err := WritePasswordCredential(pw, "central", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{nk, pw} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o", p, fi.Mode().Perm())
		}
		if err := bus.CheckCredentials(p); err != nil {
			t.Error(err)
		}
	}
	b, _ := os.ReadFile(nk)
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := kp.PublicKey(); got != pub {
		t.Errorf("seed's public key %s, returned %s", got, pub)
	}
	b, _ = os.ReadFile(pw)
	user, pass, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	if user != "central" || bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) != nil {
		t.Errorf("%q does not match the hash %s", b, hash)
	}
	if strings.Contains(hash, pass) {
		t.Error("the hash holds the password")
	}

	// A file widened by mistake is written 0600 again.
	if err := os.Chmod(nk, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteNKeyCredential(nk); err != nil {
		t.Fatal(err)
	}
	if err := bus.CheckCredentials(nk); err != nil {
		t.Error(err)
	}
}

// What `nk -gen user -pubout` prints, the seed and then the public key,
// is a credential file as it is (deploy/README.md says so).
func TestNkPuboutFileIsACredential(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	p := filepath.Join(t.TempDir(), "sensor-1.creds")
	if err := os.WriteFile(p, []byte(string(seed)+"\n"+pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := bus.CheckCredentials(p); err != nil {
		t.Fatal(err)
	}
}

func TestBinary(t *testing.T) {
	t.Setenv(EnvBinary, "/nonexistent/nats-server")
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "Debian package nats-server") || !strings.Contains(err.Error(), "go install github.com/nats-io/nats-server/v2@latest") {
		t.Errorf("error %v does not say how to install", err)
	}
	t.Setenv(EnvBinary, "")
	t.Setenv("PATH", t.TempDir())
	p, err := Binary()
	if err == nil {
		// Debian's package is in /usr/sbin, off an ordinary PATH.
		if p != "/usr/sbin/nats-server" && p != "/usr/local/sbin/nats-server" {
			t.Errorf("found %s with an empty PATH", p)
		}
	} else if !strings.Contains(err.Error(), "install nats-server") {
		t.Errorf("error %v", err)
	}
	t.Setenv(EnvLatestBinary, "")
	if p, err := LatestBinary(); p != "" || err != nil {
		t.Errorf("unset: %q, %v", p, err)
	}
	t.Setenv(EnvLatestBinary, filepath.Join(t.TempDir(), "none"))
	if _, err := LatestBinary(); err == nil {
		t.Error("a missing latest binary is no error")
	}
}
