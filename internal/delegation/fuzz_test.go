package delegation

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzResponse feeds arbitrary DNS responses to the code that reads NS
// names, DS records and addresses out of them.
func FuzzResponse(f *testing.F) {
	seed := func(rcode int, answer, ns []string) {
		m := new(dns.Msg)
		m.SetQuestion("seized.test.", dns.TypeNS)
		m.Response, m.Rcode = true, rcode
		for _, s := range answer {
			r, _ := dns.NewRR(s)
			m.Answer = append(m.Answer, r)
		}
		for _, s := range ns {
			r, _ := dns.NewRR(s)
			m.Ns = append(m.Ns, r)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(dns.RcodeSuccess, []string{"seized.test. 60 NS NS1.Sinkhole.Example.", "seized.test. 60 NS ns2.sinkhole.example."}, nil)
	seed(dns.RcodeSuccess, nil, []string{"SEIZED.test. 60 NS ns1.parking.example."})
	seed(dns.RcodeSuccess, []string{"seized.test. 60 CNAME x.example.", "x.example. 60 A 192.0.2.1", "x.example. 60 AAAA ::ffff:192.0.2.1"}, nil)
	seed(dns.RcodeNameError, nil, []string{"test. 60 SOA ns.test. h.test. 1 2 3 4 5"})
	seed(dns.RcodeServerFailure, nil, nil)
	seed(dns.RcodeSuccess, []string{"seized.test. 60 DS 60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A",
		"SEIZED.test. 60 DS 2371 8 1 1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7", "other.test. 60 DS 1 13 2 00"}, nil)

	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return
		}
		names, problem := nsNames(m, "seized.test.")
		if (len(names) == 0) == (problem == "") {
			t.Fatalf("names %q with problem %q", names, problem)
		}
		if !slices.IsSorted(names) {
			t.Fatalf("unsorted %q", names)
		}
		for _, n := range names {
			if n != strings.ToLower(n) || strings.HasSuffix(n, ".") {
				t.Fatalf("not normalised: %q", n)
			}
		}
		ds, problem := dsRecords(m, "seized.test.")
		if len(ds) > 0 && problem != "" {
			t.Fatalf("DS records %v with problem %q", ds, problem)
		}
		for i, d := range ds {
			if !strings.EqualFold(d.Hdr.Name, "seized.test.") {
				t.Fatalf("DS of %s", d.Hdr.Name)
			}
			if i > 0 && ds[i-1].KeyTag > d.KeyTag {
				t.Fatalf("unsorted DS records %v", ds)
			}
		}
		for _, a := range answerAddrs(m) {
			if !a.IsValid() || a.Is4In6() {
				t.Fatalf("address %v", a)
			}
		}
	})
}
