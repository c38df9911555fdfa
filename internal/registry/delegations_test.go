package registry

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// TestLastDelegations: the newest check of each domain, as GetDomain has
// it, for several domains at once.
func TestLastDelegations(t *testing.T) {
	ctx := context.Background()
	r, _, _ := newTestRegistry(t)
	ch := Change{Actor: "tester"}
	if _, err := r.AddCase(ctx, NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportDomains(ctx, "c1", "l", []byte("a-example.com\nb-example.com\nc-example.com\n"), ch); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2010, 2, 25, 10, 0, 0, 0, time.UTC)
	for i, verified := range []bool{false, true} {
		if err := r.RecordDelegation(ctx, []DelegationCheck{
			{Domain: "a-example.com", CheckedAt: at.Add(time.Duration(i) * time.Hour), Verified: verified, NS: []string{"ns1.sinkhole.example"}, Addrs: []string{"192.0.2.1"}},
			{Domain: "b-example.com", CheckedAt: at, Problem: "no answer"},
		}, ch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.LastDelegations(ctx, []string{"a-example.com", "b-example.com", "c-example.com", "unknown-example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d checks, want 2: %+v", len(got), got)
	}
	for _, n := range []string{"a-example.com", "b-example.com"} {
		d, err := r.GetDomain(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[n], *d.Delegation) {
			t.Errorf("%s: %+v, GetDomain has %+v", n, got[n], *d.Delegation)
		}
	}
	if !got["a-example.com"].Verified {
		t.Error("a-example.com: not the newest check")
	}
}
