package servedsync

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/servedset"
)

// TestKeysReachSensor: a case's DNSSEC keys, private parts included, reach
// a sensor's set with the step that rolls them (start, then finish), and
// its file on disk is its owner's only.
func TestKeysReachSensor(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, PublisherConfig{}, FollowerConfig{Dir: dir, Name: "s1"})
	old, _ := dnssec.NewKey(dnssec.ECDSAP256SHA256)
	next, _ := dnssec.NewKey(dnssec.ED25519)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old.State, old.Created, old.Activated = dnssec.StateActive, t0, t0
	next.State, next.Created, next.Activated = dnssec.StateActive, t0.Add(time.Hour), t0.Add(time.Hour)
	caseA := func(keys ...dnssec.Key) []servedset.Case {
		return []servedset.Case{{Name: "case-a", Family: "conficker", TXT: "sinkholed by order A", Keys: keys}}
	}
	for _, keys := range [][]dnssec.Key{{*old}, {*old, *next}, {*next}} {
		cur := r.cen.set.Load()
		if err := r.cen.set.Apply(&servedset.Delta{From: cur.Serial(), To: cur.Serial() + 1, Cases: caseA(keys...)}); err != nil {
			t.Fatal(err)
		}
		waitSame(t, 5*time.Second, r.cen, r.sen)
		c, _ := r.sen.set.Load().CaseNamed("case-a")
		if len(c.Keys) != len(keys) {
			t.Fatalf("the sensor has %d keys, want %d", len(c.Keys), len(keys))
		}
		for i, k := range c.Keys {
			if k.Signer == nil || k.PublicKey != keys[i].PublicKey || !k.Activated.Equal(keys[i].Activated) {
				t.Fatalf("the sensor's key %d: %+v", i, k)
			}
			// The sensor signs with the key the central made.
			pub, err := dnssec.PublicKeyOf(k.Algorithm, k.Signer)
			if err != nil || pub != keys[i].PublicKey {
				t.Fatalf("the sensor's private key %d is not the central's: %v", i, err)
			}
		}
	}
	r.sen.stop()
	matches, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && !st.IsDir() && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v; the served set holds private keys", m, st.Mode())
		}
	}
	if len(matches) == 0 {
		t.Error("the sensor wrote no file")
	}
}
