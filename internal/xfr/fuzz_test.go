package xfr

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS hands raw packets, as a client would send them, to the
// request handler over UDP and TCP: it must not panic, and every message it
// writes must parse.
func FuzzServeDNS(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	m := new(dns.Msg)
	m.SetAxfr(testZone)
	seed(m)
	for _, serial := range []uint32{0, 1, 2, 3, 0xFFFFFFFF} {
		m = new(dns.Msg)
		m.SetIxfr(testZone, serial, "localhost.", "hostmaster.rpz.test.")
		seed(m)
	}
	m = new(dns.Msg)
	m.SetQuestion(testZone, dns.TypeSOA)
	m.SetEdns0(4096, true)
	seed(m)
	m = new(dns.Msg)
	m.SetQuestion("other.test.", dns.TypeNS)
	seed(m)
	m = new(dns.Msg)
	m.SetNotify(testZone)
	seed(m)
	// RFC 6891 section 6.1.1: two OPT records; an OPT not owned by the root.
	m = new(dns.Msg)
	m.SetQuestion(testZone, dns.TypeSOA)
	m.SetEdns0(4096, false)
	m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 4096}})
	seed(m)
	m = new(dns.Msg)
	m.SetQuestion(testZone, dns.TypeSOA)
	m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: testZone, Rrtype: dns.TypeOPT, Class: 4096}})
	seed(m)
	m = new(dns.Msg)
	m.SetIxfr(testZone, 1, "localhost.", "hostmaster.rpz.test.")
	m.Ns = nil // IXFR without the client's SOA
	seed(m)

	s, err := New(Config{Logger: testLogger(f), Fallback: fakeSource{"seized.test.": zoneText(f, soaLine("seized.test.", 1), "seized.test. 300 IN A 192.0.2.1")}})
	if err != nil {
		f.Fatal(err)
	}
	// 127.0.0.2, fakeWriter's client, is allowed without TSIG.
	s.unsigned = s.allowFrom
	for serial := uint32(1); serial <= 3; serial++ {
		if err := s.SetZone(testZone, rpzZone(serial, int(serial)*3)); err != nil {
			f.Fatal(err)
		}
	}
	f.Cleanup(func() { s.Shutdown(f.Context()) })

	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(raw); err != nil {
			return // the dns.Server drops what does not parse
		}
		w := &fakeWriter{tcp: tcp, keep: true}
		s.ServeDNS(w, req)
		for _, b := range w.msgs {
			if err := new(dns.Msg).Unpack(b); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if !tcp && len(b) > 65535 {
				t.Fatalf("udp answer of %d bytes", len(b))
			}
		}
	})
}
