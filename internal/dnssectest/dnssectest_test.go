package dnssectest

import (
	"crypto"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sinkA = "192.0.2.53"

// sinkhole answers every A question with sinkA, unsigned, and when key is
// set signs its answers and serves the key at the apex of zone (only the
// apex: the test asks no other name of a signed child).
func sinkhole(t *testing.T, zone string, key *dns.DNSKEY, signer crypto.Signer) string {
	return Serve(t, dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		q := req.Question[0]
		var rrs []dns.RR
		switch q.Qtype {
		case dns.TypeA:
			rr, _ := dns.NewRR(q.Name + " 1 IN A " + sinkA)
			rrs = append(rrs, rr)
		case dns.TypeDNSKEY:
			if key != nil {
				rrs = append(rrs, key)
			}
		}
		if len(rrs) == 0 {
			rr, _ := dns.NewRR(zone + " 1 IN SOA ns1.sinkhole.test. h.invalid. 1 2 3 4 1")
			m.Ns = []dns.RR{rr}
		}
		m.Answer = rrs
		if key != nil && len(rrs) > 0 {
			sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 1},
				Algorithm: key.Algorithm, SignerName: zone, KeyTag: key.KeyTag(),
				Inception: uint32(time.Now().Add(-time.Hour).Unix()), Expiration: uint32(time.Now().Add(time.Hour).Unix())}
			if err := sig.Sign(signer, rrs); err != nil {
				t.Errorf("signing: %v", err)
			}
			m.Answer = append(m.Answer, sig)
		}
		if opt := req.IsEdns0(); opt != nil {
			m.SetEdns0(1232, opt.Do())
		}
		_ = w.WriteMsg(m)
	}))
}

// TestChainOfTrust: through Unbound, a child without DS resolves insecure,
// one with a stale DS is SERVFAIL, one signed with the key of its DS is
// secure (AD); removing the stale DS makes its child resolve.
func TestChainOfTrust(t *testing.T) {
	p := StartParent(t, "parent.test.")
	plain := sinkhole(t, "unsigned.parent.test.", nil, nil)

	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "signed.parent.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 1},
		Flags: dns.ZONE | dns.SEP, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	signed := sinkhole(t, "signed.parent.test.", key, priv.(crypto.Signer))

	p.Delegate(t, "unsigned.parent.test", plain, nil)
	p.Delegate(t, "stale.parent.test", plain, []string{"ns1.sinkhole.test.", "ns2.sinkhole.test."}, StaleDS(t, "stale.parent.test"))
	p.Delegate(t, "signed.parent.test", signed, nil, key.ToDS(dns.SHA256))
	start := time.Now()
	u := StartUnbound(t, p)
	t.Logf("unbound answered %v after start", time.Since(start))

	check := func(name string, rcode int, ad bool) {
		t.Helper()
		r := u.Query(t, name, dns.TypeA)
		if r.Rcode != rcode || r.AuthenticatedData != ad {
			t.Errorf("%s: rcode %s AD %v, want %s AD %v:\n%v", name, dns.RcodeToString[r.Rcode], r.AuthenticatedData,
				dns.RcodeToString[rcode], ad, r)
			return
		}
		if rcode != dns.RcodeSuccess {
			return
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.Equal(net.ParseIP(sinkA)) {
				return
			}
		}
		t.Errorf("%s: no A %s in %v", name, sinkA, r.Answer)
	}
	check("www.unsigned.parent.test", dns.RcodeSuccess, false)
	check("www.stale.parent.test", dns.RcodeServerFailure, false)
	if ede := extendedError(u.Query(t, "www.stale.parent.test", dns.TypeA)); ede != dns.ExtendedErrorCodeDNSBogus {
		t.Errorf("stale DS: extended error %d (%s), want DNSSEC Bogus", ede, dns.ExtendedErrorCodeToString[ede])
	}
	check("signed.parent.test", dns.RcodeSuccess, true)
	check("nothere.parent.test", dns.RcodeNameError, true)
	check("zzz.parent.test", dns.RcodeNameError, true)

	// The registry removes the stale DS.
	p.SetDS(t, "stale.parent.test")
	u.Flush(t, "stale.parent.test")
	check("www.stale.parent.test", dns.RcodeSuccess, false)
}

// extendedError is the EDE code of an answer (RFC 8914), or 0xffff.
func extendedError(m *dns.Msg) uint16 {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return e.InfoCode
			}
		}
	}
	return 0xffff
}
