package registry

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRecordDelegation(t *testing.T) {
	ctx := context.Background()
	r, _, _ := newTestRegistry(t)
	ch := Change{Actor: "tester"}
	if _, err := r.AddCase(ctx, NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportDomains(ctx, "c1", "l", []byte("ours.example.com\nelsewhere.example.com\n"), ch); err != nil {
		t.Fatal(err)
	}
	before, _ := r.LastSeq(ctx)
	at := time.Date(2010, 2, 25, 10, 0, 0, 0, time.UTC)
	// An unknown domain refuses the whole batch.
	err := r.RecordDelegation(ctx, []DelegationCheck{
		{Domain: "ours.example.com", CheckedAt: at, Verified: true},
		{Domain: "unknown.example.com", CheckedAt: at},
	}, ch)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown domain: %v", err)
	}
	if seq, _ := r.LastSeq(ctx); seq != before {
		t.Fatalf("refused batch wrote audit entries: %d → %d", before, seq)
	}
	err = r.RecordDelegation(ctx, []DelegationCheck{
		{Domain: "OURS.example.com.", CheckedAt: at, Verified: true, NS: []string{"ns1.sinkhole.example"}, Addrs: []string{"192.0.2.1"}},
		{Domain: "elsewhere.example.com", CheckedAt: at, NS: []string{"ns1.parking.example"}, Problem: "NS points elsewhere: ns1.parking.example"},
	}, ch)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.GetDomain(ctx, "ours.example.com")
	if err != nil || d.Delegation == nil || !d.Delegation.Verified || !d.Delegation.CheckedAt.Equal(at) || d.Delegation.NS[0] != "ns1.sinkhole.example" {
		t.Fatalf("ours: %+v %v", d.Delegation, err)
	}
	d, _ = r.GetDomain(ctx, "elsewhere.example.com")
	if d.Delegation == nil || d.Delegation.Verified || d.Delegation.Problem == "" {
		t.Fatalf("elsewhere: %+v", d.Delegation)
	}
	es, _ := r.Audit(ctx, AuditFilter{AfterSeq: before})
	if len(es) != 2 || es[0].Action != "domain.delegation" {
		t.Fatalf("audit %+v", es)
	}
	if _, err := r.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLastDelegations: the newest check of each domain, as GetDomain has
// it, for several domains at once.
func TestLastDelegations(t *testing.T) {
	ctx := context.Background()
	r, _, _ := newTestRegistry(t)
	ch := Change{Actor: "tester"}
	if _, err := r.AddCase(ctx, NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportDomains(ctx, "c1", "l", []byte("a.example.com\nb.example.com\nc.example.com\n"), ch); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2010, 2, 25, 10, 0, 0, 0, time.UTC)
	for i, verified := range []bool{false, true} {
		if err := r.RecordDelegation(ctx, []DelegationCheck{
			{Domain: "a.example.com", CheckedAt: at.Add(time.Duration(i) * time.Hour), Verified: verified, NS: []string{"ns1.sinkhole.example"}, Addrs: []string{"192.0.2.1"}},
			{Domain: "b.example.com", CheckedAt: at, Problem: "no answer"},
		}, ch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.LastDelegations(ctx, []string{"a.example.com", "b.example.com", "c.example.com", "unknown.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d checks, want 2: %+v", len(got), got)
	}
	for _, n := range []string{"a.example.com", "b.example.com"} {
		d, err := r.GetDomain(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[n], *d.Delegation) {
			t.Errorf("%s: %+v, GetDomain has %+v", n, got[n], *d.Delegation)
		}
	}
	if !got["a.example.com"].Verified {
		t.Error("a.example.com: not the newest check")
	}
}
