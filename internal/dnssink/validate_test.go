package dnssink

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/dnssectest"
)

// TestValidatingResolverSeesAD puts the sinkhole behind a real validating
// resolver (Unbound) whose only trust anchor is a parent zone the test
// signs, with our DS for the seized zone in that parent: the apex, a name
// below it, a deep name and a NODATA answer all come back secure (AD). (A
// stale DS giving SERVFAIL is internal/delegation's test.)
func TestValidatingResolverSeesAD(t *testing.T) {
	key := testKey(t, dns.ECDSAP256SHA256)
	const zone = "seized.parent.test."
	cfg := testConfig()
	cfg.Served = signedSet(t, testSinkhole(), []testZone{{Name: zone, Case: "waledac", TXT: "sinkholed"}},
		map[string][]dnssec.Key{"waledac": {key}})
	s, _ := startServer(t, cfg)
	waitSigned(t, s, 1)

	parent := dnssectest.StartParent(t, "parent.test.")
	parent.Delegate(t, zone, s.UDPAddr(0).String(), nil, key.DS(zone))
	u := dnssectest.StartUnbound(t, parent)
	for _, q := range []struct {
		name  string
		qtype uint16
		want  int // answer records of the type asked
	}{
		{zone, dns.TypeA, 1},
		{"www." + zone, dns.TypeA, 1},
		{"a.b.c.Bot-17." + zone, dns.TypeA, 1},
		{"www." + zone, dns.TypeTXT, 1},
		{zone, dns.TypeAAAA, 1},
		{"www." + zone, dns.TypeSRV, 0},
		{zone, dns.TypeSRV, 0},
	} {
		r := u.Query(t, q.name, q.qtype)
		got := 0
		for _, rr := range r.Answer {
			if rr.Header().Rrtype == q.qtype {
				got++
				if a, ok := rr.(*dns.A); ok && a.A.String() != testSinkhole().A[0].String() {
					t.Errorf("%s A: %s, want the sinkhole", q.name, a.A)
				}
			}
		}
		t.Logf("%s %s: %s ad=%v answer=%d authority=%d", q.name, dns.TypeToString[q.qtype], dns.RcodeToString[r.Rcode], r.AuthenticatedData, len(r.Answer), len(r.Ns))
		if r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData || got != q.want {
			t.Errorf("%s %s through unbound: %s, AD %v, %d records, want NOERROR, AD, %d:\n%s",
				q.name, dns.TypeToString[q.qtype], dns.RcodeToString[r.Rcode], r.AuthenticatedData, got, q.want, r)
		}
	}
}
