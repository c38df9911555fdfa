package xfr

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/rpz"
)

// benchZone builds an RPZ of n names (2n+2 records) plus extra names.
func benchZone(b *testing.B, n int, serial uint32, extra ...string) []dns.RR {
	entries := make([]rpz.Entry, 0, n+len(extra))
	for i := range n {
		entries = append(entries, rpz.Entry{Name: fmt.Sprintf("bot%07d.avalanche.example", i)})
	}
	for _, e := range extra {
		entries = append(entries, rpz.Entry{Name: e, Policy: rpz.Redirect})
	}
	rrs, err := rpz.Build(rpz.Config{Zone: testZone, A: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}, serial, entries)
	if err != nil {
		b.Fatal(err)
	}
	return rrs
}

// withSerial returns a copy of rrs with a new SOA serial (the server keeps
// the slices it is given).
func withSerial(rrs []dns.RR, serial uint32) []dns.RR {
	out := make([]dns.RR, len(rrs))
	copy(out, rrs)
	soa := dns.Copy(rrs[0]).(*dns.SOA)
	soa.Serial = serial
	out[0] = soa
	return out
}

// BenchmarkSetZone measures SetZone of a one-name change (one name added or
// removed in turn) on a large RPZ; the copy of the record slice that a new
// version needs is not timed.
func BenchmarkSetZone(b *testing.B) {
	for _, n := range []int{10_000, 800_000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			base := benchZone(b, n, 1)
			plus := benchZone(b, n, 1, "new.conficker.example")
			s, err := New(Config{JournalMax: 4})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Shutdown(b.Context())
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.HeapAlloc
			if err := s.SetZone(testZone, base); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heapPerRecord := float64(ms.HeapAlloc-before) / float64(len(base))
			serial := uint32(1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				serial++
				next := base
				if i%2 == 0 {
					next = plus
				}
				next = withSerial(next, serial)
				b.StartTimer()
				if err := s.SetZone(testZone, next); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(heapPerRecord, "heap-B/record")
		})
	}
}

// BenchmarkTransfer measures serving the transfers after a one-name change
// on an 800,000-name RPZ, and reports the bytes each sends.
func BenchmarkTransfer(b *testing.B) {
	const n = 800_000
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	s.unsigned = s.allowFrom
	if err := s.SetZone(testZone, benchZone(b, n, 1)); err != nil {
		b.Fatal(err)
	}
	if err := s.SetZone(testZone, benchZone(b, n, 2, "new.conficker.example")); err != nil {
		b.Fatal(err)
	}
	ixfr := new(dns.Msg)
	ixfr.SetIxfr(testZone, 1, "localhost.", "hostmaster."+testZone)
	axfr := new(dns.Msg)
	axfr.SetAxfr(testZone)

	for _, tc := range []struct {
		name string
		req  *dns.Msg
	}{{"type=ixfr", ixfr}, {"type=axfr", axfr}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var w *fakeWriter
			for b.Loop() {
				w = &fakeWriter{tcp: true}
				s.ServeDNS(w, tc.req)
			}
			b.ReportMetric(float64(w.bytes), "bytes/transfer")
			b.ReportMetric(float64(w.n), "msgs/transfer")
		})
	}
}

// BenchmarkPublish measures Publish of a one-name change (the caller
// knows the change and makes the records itself) on a large RPZ: the cost
// does not depend on the zone's size.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{10_000, 800_000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			s, err := New(Config{JournalMax: 4})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Shutdown(b.Context())
			base := benchZone(b, n, 1)
			if err := s.Publish(testZone, &rrList{apex: base[:2], rrs: base}, nil); err != nil {
				b.Fatal(err)
			}
			one := benchZone(b, 0, 1, "new.conficker.example")[2:]
			soa := base[0].(*dns.SOA)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				soa = dns.Copy(soa).(*dns.SOA)
				soa.Serial++
				d := &Diff{Add: one}
				if i%2 == 1 {
					d = &Diff{Del: one}
				}
				if err := s.Publish(testZone, sizedContent{soa, len(base)}, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// sizedContent is a version of n records that Publish takes without ever
// asking for them.
type sizedContent struct {
	soa *dns.SOA
	n   int
}

func (c sizedContent) SOA() *dns.SOA             { return c.soa }
func (c sizedContent) Apex() []dns.RR            { return []dns.RR{c.soa} }
func (c sizedContent) Len() int                  { return c.n }
func (c sizedContent) Records(func(dns.RR) bool) { panic("records asked for") }
