package servedset

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dnssec"
)

// testKeys are a case's keys in the middle of a rollover: an old ECDSA key
// and a new Ed25519 one, both active, and a retired one.
func testKeys(t testing.TB) []dnssec.Key {
	t.Helper()
	var out []dnssec.Key
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i, alg := range []uint8{dnssec.ECDSAP256SHA256, dnssec.ED25519, dnssec.ECDSAP256SHA256} {
		k, err := dnssec.NewKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		k.State, k.Created, k.Activated = dnssec.StateActive, t0.Add(time.Duration(i)*time.Hour), t0.Add(time.Duration(i)*time.Hour)
		out = append(out, *k)
	}
	out[2].State, out[2].Retired = dnssec.StateRetired, t0.Add(5*time.Hour)
	return out
}

func TestKeysRoundTrip(t *testing.T) {
	keys := testKeys(t)
	d := testFull()
	d.Cases[0].Keys = keys
	s := mustApply(t, Empty(), d)
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Bytes()[4] != keysVersion {
		t.Errorf("a full form with keys in version %d", buf.Bytes()[4])
	}
	back, err := ReadFull(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameSnapshot(s, back); diff != "" {
		t.Fatalf("full form round trip: %s", diff)
	}
	c, _ := back.CaseNamed("waledac-2010")
	for i, k := range c.Keys {
		if k.Signer == nil || k.PublicKey != keys[i].PublicKey || k.State != keys[i].State || !k.Created.Equal(keys[i].Created) {
			t.Fatalf("key %d read back as %+v", i, k)
		}
	}
	// A delta that rolls the keys: the old key leaves, the new one stays;
	// a public snapshot (no private keys) is valid too.
	pub := slices.Clone(keys[1:2])
	pub[0].Signer = nil
	step := &Delta{From: 100, To: 101, Cases: []Case{{Name: "waledac-2010", Family: "Waledac", TXT: d.Cases[0].TXT, Keys: pub}}}
	b := mustMarshal(t, step)
	got, err := UnmarshalDelta(b)
	if err != nil {
		t.Fatal(err)
	}
	s2 := mustApply(t, s, got)
	if c, _ := s2.CaseNamed("waledac-2010"); len(c.Keys) != 1 || c.Keys[0].Signer != nil || c.Keys[0].PublicKey != keys[1].PublicKey {
		t.Fatalf("after the step: %+v", c.Keys)
	}
	// Without keys, the records stay in version 1.
	if b := mustMarshal(t, testFull()); b[4] != formatVersion {
		t.Errorf("a delta without keys in version %d", b[4])
	}
}

func TestKeysChecked(t *testing.T) {
	keys := testKeys(t)
	other, _ := dnssec.NewKey(dnssec.ECDSAP256SHA256)
	for _, tc := range []struct {
		name string
		edit func(k []dnssec.Key) []dnssec.Key
		want string
	}{
		{"algorithm", func(k []dnssec.Key) []dnssec.Key { k[0].Algorithm = 8; return k }, "key 1: algorithm 8"},
		{"public key", func(k []dnssec.Key) []dnssec.Key { k[1].PublicKey = "AAAA"; return k }, `key 2: public key "AAAA" is not the base64 of 32 bytes`},
		{"flags", func(k []dnssec.Key) []dnssec.Key { k[0].Flags = 1; return k }, "flags 1: want 256 or 257"},
		{"state", func(k []dnssec.Key) []dnssec.Key { k[0].State = dnssec.StateRemoved; return k }, `state "removed"`},
		{"none active", func(k []dnssec.Key) []dnssec.Key { return k[2:] }, "none active"},
		{"signer", func(k []dnssec.Key) []dnssec.Key { k[0].Signer = other.Signer; return k }, "not that of the public key"},
		{"too many", func(k []dnssec.Key) []dnssec.Key {
			for len(k) <= maxKeysPerCase {
				k = append(k, k[0])
			}
			return k
		}, "more than 8"},
	} {
		d := testFull()
		d.Cases[1].Keys = tc.edit(slices.Clone(keys))
		_, err := Empty().Apply(d)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "case other") {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
