package app

import (
	"testing"

	"github.com/takedown-project/takedown/internal/servedset"
)

// A collector takes an event whose zone the served set holds, or has
// released since the collector started (by a delta or a whole new set),
// and refuses a zone never served.
func TestServedSince(t *testing.T) {
	set := servedset.NewSet()
	full := &servedset.Delta{To: 1,
		Sinkhole: &servedset.Sinkhole{NameServers: []servedset.NameServer{{Name: "ns1.sinkhole.example"}}},
		Cases:    []servedset.Case{{Name: "wal", Family: "waledac"}},
		Put:      []servedset.Zone{{Name: "a.example", Case: "wal"}, {Name: "b.example", Case: "wal"}, {Name: "c.example", Case: "wal"}},
	}
	if err := set.Apply(full); err != nil {
		t.Fatal(err)
	}
	z := &servedSince{served: set, past: map[string]bool{}}
	defer set.Subscribe(z.released)()
	if zone, c, fam, ok := z.Zone("a.example"); !ok || zone != "a.example" || c != "wal" || fam != "waledac" {
		t.Errorf("served: %q %q %q %v", zone, c, fam, ok)
	}
	if err := set.Apply(&servedset.Delta{From: 1, To: 2, Remove: []string{"B.example."}}); err != nil {
		t.Fatal(err)
	}
	// A whole new set without c.example.
	next, err := set.Load().Apply(&servedset.Delta{From: 2, To: 3, Remove: []string{"c.example"}})
	if err != nil {
		t.Fatal(err)
	}
	set.Replace(next)
	for name, want := range map[string]bool{"a.example": true, "b.example": true, "c.example": true, "d.example": false} {
		if zone, _, _, ok := z.Zone(name); ok != want || (ok && zone != name) {
			t.Errorf("%s: zone %q, ok %v; want ok %v", name, zone, ok, want)
		}
	}
}
