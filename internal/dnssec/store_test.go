package dnssec

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dbfile"
)

// clock is a settable time for the store's tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func openStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	db, err := dbfile.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	s, err := Open(context.Background(), Config{DB: db, Dir: filepath.Join(t.TempDir(), "dnssec"), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// checkSigns signs an A RRset of zone with k and verifies it with k's
// DNSKEY, as a validating resolver would.
func checkSigns(t *testing.T, k *Key, zone string) {
	t.Helper()
	a, _ := dns.NewRR("www." + zone + ". 300 IN A 192.0.2.1")
	key := k.DNSKEY(zone, 3600)
	sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: a.Header().Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 300},
		Algorithm: k.Algorithm, SignerName: dns.Fqdn(zone), KeyTag: k.Tag(),
		Inception: uint32(time.Now().Add(-time.Hour).Unix()), Expiration: uint32(time.Now().Add(time.Hour).Unix())}
	if err := sig.Sign(k.Signer, []dns.RR{a}); err != nil {
		t.Fatalf("key %d signs nothing: %v", k.Tag(), err)
	}
	if err := sig.Verify(key, []dns.RR{a}); err != nil {
		t.Fatalf("key %d: its signature does not verify with its DNSKEY: %v", k.Tag(), err)
	}
}

func TestStoreRollover(t *testing.T) {
	ctx := context.Background()
	s, c := openStore(t)
	for _, alg := range []uint8{ECDSAP256SHA256, ED25519} {
		name := "case-" + AlgorithmName(alg)
		made, err := s.Ensure(ctx, name, alg)
		if err != nil || !made {
			t.Fatalf("Ensure: %v %v", made, err)
		}
		if made, err := s.Ensure(ctx, name, alg); err != nil || made {
			t.Fatalf("Ensure again made a key: %v %v", made, err)
		}
		keys, err := s.Keys(ctx, name)
		if err != nil || len(keys) != 1 {
			t.Fatalf("Keys: %v %v", keys, err)
		}
		k := keys[0]
		if k.State != StateActive || k.Algorithm != alg || k.Flags != 257 || !k.Activated.Equal(c.t) || k.Signer == nil {
			t.Fatalf("key %+v", k)
		}
		checkSigns(t, &k, "seized.example")
		infos, _ := s.List(ctx, name)
		st, err := os.Stat(filepath.Join(s.Dir(), infos[0].File))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", st.Mode(), err)
		}
		data, _ := os.ReadFile(filepath.Join(s.Dir(), infos[0].File))
		if !strings.HasPrefix(string(data), "Private-key-format: v1.3\n") {
			t.Errorf("key file begins %q", data[:30])
		}
	}

	// A rollover: the new key signs beside the old; finishing waits.
	name := "case-ECDSAP256SHA256"
	old, _ := s.Keys(ctx, name)
	c.t = c.t.Add(time.Hour)
	next, err := s.Start(ctx, name, ED25519, nil)
	if err != nil || next.State != StateActive || next.Algorithm != ED25519 {
		t.Fatalf("Start: %+v %v", next, err)
	}
	if _, err := s.Start(ctx, name, ED25519, nil); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "rolling its keys already") {
		t.Errorf("a second start: %v", err)
	}
	keys, _ := s.Keys(ctx, name)
	if len(keys) != 2 || !keys[0].Signs() || !keys[1].Signs() || keys[0].PublicKey != old[0].PublicKey {
		t.Fatalf("during the rollover: %+v", keys)
	}
	c.t = c.t.Add(23 * time.Hour)
	if _, err := s.Finish(ctx, name, FinishOptions{Wait: 24 * time.Hour}); !errors.Is(err, ErrTooEarly) || !strings.Contains(err.Error(), "in 1h0m0s") {
		t.Errorf("finish before the wait: %v", err)
	}
	refuse := errors.New("the parent of seized.example has only the old DS")
	check := func(_ context.Context, n Info, o []Info) error {
		if n.Tag != next.Tag || len(o) != 1 || o[0].PublicKey != old[0].PublicKey {
			t.Errorf("check given %+v and %+v", n, o)
		}
		return refuse
	}
	c.t = c.t.Add(time.Hour)
	if _, err := s.Finish(ctx, name, FinishOptions{Wait: 24 * time.Hour, Check: check}); !errors.Is(err, refuse) {
		t.Errorf("finish the check refuses: %v", err)
	}
	gone, err := s.Finish(ctx, name, FinishOptions{Wait: 24 * time.Hour})
	if err != nil || len(gone) != 1 || gone[0].State != StateRemoved || !gone[0].Removed.Equal(c.t) {
		t.Fatalf("Finish: %+v %v", gone, err)
	}
	keys, _ = s.Keys(ctx, name)
	if len(keys) != 1 || keys[0].PublicKey != next.PublicKey || !keys[0].Signs() {
		t.Fatalf("after the rollover: %+v", keys)
	}
	if _, err := s.Finish(ctx, name, FinishOptions{}); !errors.Is(err, ErrConflict) {
		t.Errorf("finish with one key: %v", err)
	}
	if _, err := s.Finish(ctx, "nokeys", FinishOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("finish a case without keys: %v", err)
	}
	if _, err := s.Start(ctx, "nokeys", 13, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("start a case without keys: %v", err)
	}
	all, _ := s.List(ctx, "")
	if len(all) != 3 || all[0].State != StateRemoved || all[0].Retired.IsZero() {
		t.Errorf("List: %+v", all)
	}
	// --force finishes at once.
	if _, err := s.Start(ctx, name, 13, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, name, FinishOptions{Wait: 24 * time.Hour, Check: check, Force: true}); err != nil {
		t.Errorf("forced finish: %v", err)
	}
}

func TestStoreRefusesKeyFiles(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	if _, err := s.Ensure(ctx, "c", 13); err != nil {
		t.Fatal(err)
	}
	infos, _ := s.List(ctx, "c")
	path := filepath.Join(s.Dir(), infos[0].File)
	good, _ := os.ReadFile(path)

	os.Chmod(path, 0o640)
	if _, err := s.Keys(ctx, "c"); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "-rw-r-----") {
		t.Errorf("a key file group may read: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: not base64!\n"), 0o600)
	if _, err := s.AllKeys(ctx); err == nil || !strings.Contains(err.Error(), path+":3: PrivateKey is not base64") {
		t.Errorf("a damaged key file: %v", err)
	}
	other, _ := NewKey(13)
	b, _ := FormatPrivate(other)
	os.WriteFile(path, b, 0o600)
	if _, err := s.Keys(ctx, "c"); err == nil || !strings.Contains(err.Error(), "not key "+strconv.Itoa(int(infos[0].Tag))) {
		t.Errorf("another key in the file: %v", err)
	}
	os.Remove(path)
	if _, err := s.Keys(ctx, "c"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a missing key file: %v", err)
	}
	os.WriteFile(path, good, 0o600)
	if _, err := s.Keys(ctx, "c"); err != nil {
		t.Errorf("the key file back: %v", err)
	}
}

// TestImportDNSSECKeygen imports keys that BIND's dnssec-keygen made, and
// checks the tag, the public key and the DS against BIND's own files and
// dnssec-dsfromkey.
func TestImportDNSSECKeygen(t *testing.T) {
	ctx := context.Background()
	s, c := openStore(t)
	dir := t.TempDir()
	for i, alg := range []string{"ECDSAP256SHA256", "ED25519"} {
		out, err := exec.Command("dnssec-keygen", "-q", "-a", alg, "-f", "KSK", "-K", dir, "seized.example").CombinedOutput()
		if err != nil {
			t.Fatalf("dnssec-keygen: %v: %s", err, out)
		}
		base := filepath.Join(dir, strings.TrimSpace(string(out)))
		pub, _ := os.ReadFile(base + ".key")
		want := lastRR(t, string(pub)).(*dns.DNSKEY)
		priv, _ := os.ReadFile(base + ".private")
		var got Info
		if i == 0 {
			got, err = s.Import(ctx, "c", priv, base+".private")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Import(ctx, "c", priv, base+".private"); !errors.Is(err, ErrConflict) {
				t.Errorf("import into a case with keys: %v", err)
			}
		} else {
			alg, signer, err := ParsePrivate(priv, base+".private")
			if err != nil {
				t.Fatal(err)
			}
			k, _ := keyOf(alg, signer)
			c.t = c.t.Add(time.Minute)
			if got, err = s.Start(ctx, "c", 13, k); err != nil {
				t.Fatal(err)
			}
		}
		if got.Tag != want.KeyTag() || got.PublicKey != want.PublicKey || got.Algorithm != want.Algorithm {
			t.Errorf("%s: imported %+v, dnssec-keygen's DNSKEY %v", alg, got, want)
		}
		keys, err := s.Keys(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		k := keys[i]
		checkSigns(t, &k, "seized.example")
		ds, err := exec.Command("dnssec-dsfromkey", "-2", base+".key").CombinedOutput()
		if err != nil {
			t.Fatalf("dnssec-dsfromkey: %v: %s", err, ds)
		}
		wantDS := lastRR(t, string(ds)).(*dns.DS)
		if gotDS := k.DS("seized.example."); gotDS.String() != wantDS.String() {
			t.Errorf("%s: DS\n%s\nwant (dnssec-dsfromkey)\n%s", alg, gotDS, wantDS)
		}
	}
}

// lastRR parses the last record of a zone-file text.
func lastRR(t *testing.T, text string) dns.RR {
	t.Helper()
	var last dns.RR
	zp := dns.NewZoneParser(strings.NewReader(text), "", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		last = rr
	}
	if err := zp.Err(); err != nil || last == nil {
		t.Fatalf("parsing %q: %v", text, err)
	}
	last.Header().Ttl = 0
	return last
}
