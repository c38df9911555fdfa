package rpz

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestBuild(t *testing.T) {
	cfg := Config{
		Zone: "RPZ.Takedown.Test",
		A:    []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		AAAA: []netip.Addr{netip.MustParseAddr("2001:db8::53")},
		TTL:  60,
	}
	rrs, err := Build(cfg, 7, []Entry{
		{Name: "Zeta.example.", Policy: NXDOMAIN},
		{Name: "alpha.example", Policy: Redirect},
		{Name: "zeta.example", Policy: Redirect}, // duplicate: NXDOMAIN wins
	})
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, rr := range rrs {
		got.WriteString(rr.String() + "\n")
	}
	want := `rpz.takedown.test.	60	IN	SOA	localhost. hostmaster.rpz.takedown.test. 7 300 60 604800 60
rpz.takedown.test.	60	IN	NS	localhost.
alpha.example.rpz.takedown.test.	60	IN	A	192.0.2.53
alpha.example.rpz.takedown.test.	60	IN	AAAA	2001:db8::53
*.alpha.example.rpz.takedown.test.	60	IN	A	192.0.2.53
*.alpha.example.rpz.takedown.test.	60	IN	AAAA	2001:db8::53
zeta.example.rpz.takedown.test.	60	IN	CNAME	.
*.zeta.example.rpz.takedown.test.	60	IN	CNAME	.
`
	if got.String() != want {
		t.Errorf("Build:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestBuildDefaults(t *testing.T) {
	rrs, err := Build(Config{}, 1, []Entry{{Name: "a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	soa := rrs[0].(*dns.SOA)
	if soa.Hdr.Name != DefaultZone || soa.Hdr.Ttl != DefaultTTL || soa.Mbox != "hostmaster."+DefaultZone {
		t.Errorf("defaults: %v", soa)
	}
	if len(rrs) != 4 {
		t.Errorf("%d records, want 4", len(rrs))
	}
}

func TestBuildErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg     Config
		entries []Entry
	}{
		"redirect without addresses": {Config{}, []Entry{{Name: "a.example", Policy: Redirect}}},
		"empty name":                 {Config{}, []Entry{{Name: " "}}},
		"wildcard name":              {Config{}, []Entry{{Name: "*.a.example"}}},
		"bad label":                  {Config{}, []Entry{{Name: "a..example"}}},
		"too long":                   {Config{}, []Entry{{Name: strings.Repeat("a23456789.", 25) + "example"}}},
		"unknown policy":             {Config{}, []Entry{{Name: "a.example", Policy: 9}}},
		"A not v4":                   {Config{A: []netip.Addr{netip.MustParseAddr("::1")}}, nil},
		"AAAA not v6":                {Config{AAAA: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}, nil},
	} {
		if _, err := Build(tc.cfg, 1, tc.entries); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for s, want := range map[string]Policy{"nxdomain": NXDOMAIN, " Redirect": Redirect} {
		if p, err := ParsePolicy(s); err != nil || p != want {
			t.Errorf("ParsePolicy(%q) = %v, %v", s, p, err)
		}
		if ParsePolicy := want.String(); ParsePolicy == "" {
			t.Error("empty String")
		}
	}
	if _, err := ParsePolicy("drop"); err == nil || !strings.Contains(err.Error(), `"drop"`) {
		t.Errorf("ParsePolicy(drop) error %v does not quote the input", err)
	}
}

// TestWriteZoneFile writes a zone and checks it with named-checkzone from
// bind9, and that it parses back to the same records.
func TestWriteZoneFile(t *testing.T) {
	cfg := Config{Zone: "rpz.takedown.test", A: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}
	rrs, err := Build(cfg, 2026112601, []Entry{
		{Name: "waledac-cc.example", Policy: NXDOMAIN},
		{Name: "xn--bcher-kva.example", Policy: Redirect},
		{Name: "sub.domain.example", Policy: Redirect},
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteZoneFile(&buf, rrs); err != nil {
		t.Fatal(err)
	}

	zp := dns.NewZoneParser(bytes.NewReader(buf.Bytes()), "", "")
	i := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if i >= len(rrs) || !dns.IsDuplicate(rr, rrs[i]) {
			t.Fatalf("record %d parses back as %v", i, rr)
		}
		i++
	}
	if err := zp.Err(); err != nil || i != len(rrs) {
		t.Fatalf("parsed %d of %d records: %v", i, len(rrs), err)
	}

	checkzone, err := exec.LookPath("named-checkzone")
	if err != nil {
		t.Fatal("named-checkzone not found: install it with `apt-get install bind9` (bind9-utils)")
	}
	path := filepath.Join(t.TempDir(), "rpz.zone")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(checkzone, "-k", "fail", "-n", "fail", "rpz.takedown.test", path).CombinedOutput()
	if err != nil {
		t.Fatalf("named-checkzone: %v\n%s\n%s", err, out, buf.String())
	}
	if !strings.Contains(string(out), "loaded serial 2026112601") {
		t.Errorf("named-checkzone: %s", out)
	}

	if err := WriteZoneFile(&buf, rrs[1:]); err == nil {
		t.Error("zone without SOA first written")
	}
}

func BenchmarkBuild(b *testing.B) {
	entries := make([]Entry, 800_000)
	for i := range entries {
		entries[i] = Entry{Name: "d" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + ".example" + itoa(i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(Config{}, 1, entries); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// FuzzBuild feeds arbitrary domain names (they come from court-order lists)
// to Build: it must not panic, and an accepted zone must write and parse
// back.
func FuzzBuild(f *testing.F) {
	for _, s := range []string{"waledac-cc.example", "A.B.", "*.x", "a..b", "xn--bcher-kva.example", `a\.b.example`, "\x00", strings.Repeat("a.", 130)} {
		f.Add(s, true)
	}
	cfg := Config{A: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	f.Fuzz(func(t *testing.T, name string, redirect bool) {
		p := NXDOMAIN
		if redirect {
			p = Redirect
		}
		rrs, err := Build(cfg, 1, []Entry{{Name: name, Policy: p}})
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteZoneFile(&buf, rrs); err != nil {
			t.Fatal(err)
		}
		zp := dns.NewZoneParser(&buf, "", "")
		n := 0
		for _, ok := zp.Next(); ok; _, ok = zp.Next() {
			n++
		}
		if zp.Err() != nil || n != len(rrs) {
			t.Fatalf("%q: zone file parses to %d of %d records: %v", name, n, len(rrs), zp.Err())
		}
	})
}
