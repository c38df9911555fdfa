package chstore

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
)

// FuzzPrefixBounds: an address is in a block exactly when its 16 bytes
// (IPv4 mapped, as src_ip6 holds them) are within the bounds that
// DailyHosts' filter compares with.
func FuzzPrefixBounds(f *testing.F) {
	for _, s := range []struct {
		prefix, addr string
	}{
		{"10.0.0.0/30", "10.0.0.3"}, {"10.0.0.2/32", "10.0.0.2"}, {"2001:db8::/126", "2001:db8::4"},
		{"0.0.0.0/0", "255.255.255.255"}, {"::/0", "10.0.0.1"}, {"::ffff:0:0/96", "1.2.3.4"}, {"2001:db8::/32", "2001:db9::"},
	} {
		p, a := netip.MustParsePrefix(s.prefix), netip.MustParseAddr(s.addr)
		b := a.As16()
		f.Add(p.Addr().AsSlice(), p.Bits(), b[:], a.Is4())
	}
	f.Fuzz(func(t *testing.T, praw []byte, bits int, araw []byte, a4 bool) {
		pa, ok := netip.AddrFromSlice(praw)
		if !ok {
			return
		}
		p, err := pa.Prefix(bits)
		if err != nil {
			return
		}
		a, ok := netip.AddrFromSlice(araw)
		if !ok {
			return
		}
		if a4 && a.Is4In6() {
			a = a.Unmap()
		}
		lo, hi, v6 := prefixBounds(p)
		l, _ := hex.DecodeString(lo)
		h, _ := hex.DecodeString(hi)
		a16 := a.As16()
		in := bytes.Compare(a16[:], l) >= 0 && bytes.Compare(a16[:], h) <= 0
		if v6 && a.Unmap().Is4() {
			in = false // the filter also asks for an IPv6 host
		}
		// As stored, an IPv4-mapped source is the IPv4 host; a block of
		// one family holds no host of the other (as in the DuckDB
		// engine).
		want := p.Contains(a.Unmap())
		if in != want {
			t.Errorf("%s and %s: in bounds %s..%s = %v, contained %v", p, a, lo, hi, in, want)
		}
	})
}

// An event stored after HostRows built its dictionaries has strings that
// they lack: each is looked up alone, and a hash that no event has is an
// error, not an empty name.
func TestHostDictsMiss(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	s := open(t, config(c, "takedown"))
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := s.AppendMarked(t.Context(), testEvents(10, start, time.Minute), "spool", []byte("1")); err != nil {
		t.Fatal(err)
	}
	var w where
	w.add(infected)
	d := hostDicts{s: s, w: &w}
	if err := d.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	late := testEvents(1, start.Add(time.Hour), time.Minute)
	late[0].Family, late[0].Domain, late[0].Case, late[0].Tag = "kelihos", "late.example", "c9", "t9"
	late[0].City, late[0].CountryCode, late[0].ASName = "Lyon", "FR", "LATE"
	if err := s.AppendMarked(t.Context(), late, "spool", []byte("2")); err != nil {
		t.Fatal(err)
	}
	hash := func(expr string) uint64 {
		return queryUint(t, c, 0, "SELECT any("+expr+") FROM takedown.events WHERE family = 'kelihos'")
	}
	if f, err := d.family(t.Context(), hash(famHash)); err != nil || f != "kelihos" {
		t.Errorf("family: %q, %v; want kelihos", f, err)
	}
	if e, err := d.first(t.Context(), hash(firstHash)); err != nil || e != (firstEntry{"late.example", "c9", "t9"}) {
		t.Errorf("first: %+v, %v", e, err)
	}
	if e, err := d.place(t.Context(), hash(placeHash)); err != nil || e.city != "Lyon" || e.cc != "FR" || e.asName != "LATE" {
		t.Errorf("place: %+v, %v", e, err)
	}
	if _, err := d.first(t.Context(), 12345); err == nil || !strings.Contains(err.Error(), "no event has the hash 12345") {
		t.Errorf("a hash of no event: %v", err)
	}
}
