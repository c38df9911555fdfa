package enrich

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"testing"
)

func seedFile(f *testing.F, path string) {
	f.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
}

func FuzzParseRPSL(f *testing.F) {
	seedFile(f, "testdata/ripe.db")
	for _, s := range []string{
		"inetnum: 192.0.2.0 - 192.0.2.255\nabuse-mailbox: a@example.net\n",
		"inet6num: 2001:db8::/32\nabuse-c: X\n\nrole: r\nnic-hdl: X\nabuse-mailbox: b@example.net\n",
		"aut-num: AS1\n+ continued\n\t# c\n",
		"  leading continuation\n",
		"inetnum: ::ffff:1.2.3.4/120\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := readRPSL(bytes.NewReader(data), "fuzz")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			return
		}
		tab := buildRIRTable([]*rpslData{d})
		for p, v := range tab.nets.m {
			if !p.IsValid() || v.contact == "" {
				t.Fatalf("entry %v %+v", p, v)
			}
			tab.nets.lookup(p.Addr())
		}
	})
}

func FuzzParseIPtoASN(f *testing.F) {
	seedFile(f, "testdata/ip2asn-v4.tsv")
	seedFile(f, "testdata/ip2asn-v6.tsv")
	f.Add([]byte("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n"))
	f.Add([]byte("1.0.0.0\t1.0.0.9\t1\tUS\tx\n1.0.0.5\t1.0.0.20\t2\tUS\ty\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := parseIPtoASN(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for _, rs := range [][]ipRange{tab.v4, tab.v6} {
			for _, r := range rs {
				if r.to.Less(r.from) || r.asn == 0 {
					t.Fatalf("bad range %+v", r)
				}
				if rec, ok := tab.lookup(r.from); !ok || rec.ASN != r.asn {
					t.Fatalf("range %+v: lookup of its start = %+v %v", r, rec, ok)
				}
				if rec, ok := tab.lookup(r.to); !ok || rec.ASN != r.asn {
					t.Fatalf("range %+v: lookup of its end = %+v %v", r, rec, ok)
				}
			}
		}
	})
}

func FuzzParseAbuseFile(f *testing.F) {
	seedFile(f, "testdata/abuse.txt")
	for _, s := range []string{
		"192.0.2.0/24 a@example.net\n", "AS64500 b@example.net # c\n", "2001:db8::1 c@example.net\n",
		"192.0.2.1/24 a@example.net\n", "as1 x\n", "::ffff:1.2.3.0/120 a@b.c\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := parseAbuseFile(bytes.NewReader(data), "fuzz")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			return
		}
		for p, v := range tab.nets.m {
			if !validMailbox(v.contact) {
				t.Fatalf("%v: %q accepted as a mailbox", p, v.contact)
			}
			if got, _, ok := tab.nets.lookup(p.Addr()); !ok || got.contact == "" {
				t.Fatalf("%v not found", p)
			}
		}
		_ = netip.Addr{}
	})
}
