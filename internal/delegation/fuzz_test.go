package delegation

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzResponse feeds arbitrary DNS responses to the code that reads NS
// names and addresses out of them.
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
		for _, a := range answerAddrs(m) {
			if !a.IsValid() || a.Is4In6() {
				t.Fatalf("address %v", a)
			}
		}
	})
}
