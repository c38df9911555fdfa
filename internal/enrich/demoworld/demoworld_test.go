package demoworld

import (
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/enrich"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWorldTables(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(w.Countries); n < 40 || n > 60 {
		t.Errorf("%d countries, want 40 to 60", n)
	}
	var sum float64
	for _, c := range w.Countries {
		sum += c.Share
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("country shares add up to %v", sum)
	}
	blocks := 0
	for i, n := range w.Networks {
		if !strings.HasSuffix(n.ASName, "(demo)") {
			t.Errorf("AS%d %q is not labelled (demo)", n.ASN, n.ASName)
		}
		if i > 0 && w.Networks[i-1].Last.Next() != n.First {
			t.Errorf("AS%d does not start where AS%d ends", n.ASN, w.Networks[i-1].ASN)
		}
		blocks += n.blocks
		// The prefixes cover exactly First to Last.
		ps := n.Prefixes()
		if ps[0].Addr() != n.First {
			t.Errorf("AS%d: prefixes start at %v, not %v", n.ASN, ps[0], n.First)
		}
		last := ps[len(ps)-1]
		a := last.Addr().As4()
		size := 1 << (32 - last.Bits())
		end := netip.AddrFrom4([4]byte{a[0], a[1], a[2], a[3]})
		for k := 1; k < size; k++ {
			end = end.Next()
		}
		if end != n.Last {
			t.Errorf("AS%d: prefixes end at %v, not %v", n.ASN, end, n.Last)
		}
	}
	if blocks != totalBlocks || w.Networks[0].First != netip.MustParseAddr("127.1.0.0") ||
		w.Networks[len(w.Networks)-1].Last != netip.MustParseAddr("127.255.255.255") {
		t.Errorf("%d blocks from %v to %v", blocks, w.Networks[0].First, w.Networks[len(w.Networks)-1].Last)
	}
}

// TestSharesRespected draws many bots and compares the spread over the
// countries with the shares.
func TestSharesRespected(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	const bots = 100_000
	count := map[string]int{}
	seen := make(map[netip.Addr]bool, bots)
	for i := uint64(0); i < bots; i++ {
		a := w.Addr(i)
		if seen[a] {
			t.Fatalf("bot %d gets %v, which an earlier bot has", i, a)
		}
		seen[a] = true
		b := a.As4()
		if b[0] != 127 || b[1] == 0 || b[3] == 0 || b[3] == 255 {
			t.Fatalf("bot %d gets %v, outside 127.1.0.1-127.255.255.254 or a .0/.255 host", i, a)
		}
		n, ok := w.NetworkOf(a)
		if !ok {
			t.Fatalf("%v is in no network", a)
		}
		count[n.CountryCode]++
	}
	for _, c := range w.Countries {
		got := float64(count[c.Code]) / bots
		if math.Abs(got-c.Share) > 0.002+0.02*c.Share {
			t.Errorf("%s: %.4f of the bots, share %.4f", c.Code, got, c.Share)
		}
	}
	if _, ok := w.NetworkOf(netip.MustParseAddr("127.0.0.1")); ok {
		t.Error("127.0.0.1 is in a network")
	}
}

// TestWriteAndEnrich writes the database and reads it back with the
// enricher.
func TestWriteAndEnrich(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	e, err := enrich.New(enrich.Config{Databases: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	si := e.Sources()[0]
	if si.Layout != enrich.LayoutCity || si.DatabaseType != DatabaseType || si.Records == 0 {
		t.Errorf("source %+v", si)
	}
	for i := uint64(0); i < 2000; i += 7 {
		a := w.Addr(i)
		n, _ := w.NetworkOf(a)
		got := e.Lookup(a)
		if got.CountryCode != n.CountryCode || got.ASN != n.ASN || got.ASName != n.ASName || got.City != n.City ||
			got.Region != n.Region || got.Latitude != n.Latitude || got.Longitude != n.Longitude {
			t.Fatalf("Lookup(%v) = %+v, want %+v", a, got, n)
		}
	}
	for _, a := range []string{"127.0.0.1", "127.0.255.254", "::1", "192.0.2.1"} {
		if got := e.Lookup(netip.MustParseAddr(a)); got.Found() {
			t.Errorf("Lookup(%s) = %+v, want nothing", a, got)
		}
	}
	if got := e.Lookup(netip.MustParseAddr("127.255.255.254")); got.CountryCode == "" {
		t.Error("the last address is unmapped")
	}
}
