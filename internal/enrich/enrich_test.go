package enrich

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newEnricher(t testing.TB, cfg Config) *Enricher {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// sameResult compares the enrichment fields, not the source paths.
func sameResult(got, want Result) bool {
	got.ASSource, got.GeoSource = "", ""
	return got == want
}

func TestLayouts(t *testing.T) {
	for _, l := range fixtureLayouts {
		t.Run(l.dbType, func(t *testing.T) {
			dir := t.TempDir()
			path := writeDB(t, dir, "test.mmdb", l.dbType, fixture, l.record)
			e := newEnricher(t, Config{Databases: []string{path}})
			if err := e.Err(); err != nil {
				t.Fatal(err)
			}
			si := e.Sources()
			if len(si) != 1 {
				t.Fatalf("Sources() = %+v, want one", si)
			}
			s := si[0]
			if s.Kind != KindMMDB || s.Layout != l.layout || s.DatabaseType != l.dbType || s.Vendor != l.vendor ||
				s.Records != len(fixture) || !s.Built.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || s.Loaded.IsZero() || s.Size == 0 {
				t.Errorf("source info = %+v, want kind mmdb, layout %s, vendor %s, %d records, built 2026-01-02T03:04:05Z", s, l.layout, l.vendor, len(fixture))
			}
			for _, n := range fixture {
				got := e.Lookup(netip.MustParseAddr(n.probe))
				if want := l.want(n); !sameResult(got, want) {
					t.Errorf("Lookup(%s) = %+v, want %+v", n.probe, got, want)
				}
				if got.ASN != 0 && got.ASSource != path || got.CountryCode != "" && got.GeoSource != path {
					t.Errorf("Lookup(%s) sources = %q, %q, want %q", n.probe, got.ASSource, got.GeoSource, path)
				}
			}
			// An IPv4-mapped address is an IPv4 address; an address of
			// no network is unknown.
			if got, want := e.Lookup(netip.MustParseAddr("::ffff:192.0.2.10")), l.want(fixture[0]); !sameResult(got, want) {
				t.Errorf("Lookup(::ffff:192.0.2.10) = %+v, want %+v", got, want)
			}
			if got := e.Lookup(netip.MustParseAddr("100.64.0.1")); got.Found() {
				t.Errorf("Lookup(100.64.0.1) = %+v, want nothing", got)
			}
		})
	}
}

// TestMMDBLookupTool checks that libmaxminddb's mmdblookup (Debian package
// mmdb-bin) reads the test databases and finds the values that the
// enricher returns.
func TestMMDBLookupTool(t *testing.T) {
	tool := testnet.Need(t, "mmdblookup")[0]
	lookup := func(t *testing.T, file, ip string, path ...string) string {
		t.Helper()
		out, err := exec.Command(tool, append([]string{"--file", file, "--ip", ip}, path...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mmdblookup %s %s %v: %v\n%s", file, ip, path, err, out)
		}
		// The answer is one value: `"DE" <utf8_string>` or `64500 <uint32>`.
		v := strings.TrimSpace(string(out))
		if i := strings.LastIndex(v, " <"); i >= 0 {
			v = v[:i]
		}
		return strings.Trim(v, `"`)
	}
	for _, l := range fixtureLayouts {
		t.Run(l.dbType, func(t *testing.T) {
			path := writeDB(t, t.TempDir(), "test.mmdb", l.dbType, fixture, l.record)
			e := newEnricher(t, Config{Databases: []string{path}, CacheSize: -1})
			for _, n := range fixture {
				got := e.Lookup(netip.MustParseAddr(n.probe))
				var checks [][]string // field, enricher's value, lookup path...
				switch l.layout {
				case LayoutASN:
					checks = [][]string{
						{"asn", strconv.FormatUint(uint64(got.ASN), 10), "autonomous_system_number"},
						{"as name", got.ASName, "autonomous_system_organization"},
					}
				case LayoutCountry:
					checks = [][]string{{"country", got.CountryCode, "country", "iso_code"}}
				case LayoutCity:
					checks = [][]string{
						{"country", got.CountryCode, "country", "iso_code"},
						{"region", got.Region, "subdivisions", "0", "names", "en"},
						{"city", got.City, "city", "names", "en"},
						{"latitude", strconv.FormatFloat(got.Latitude, 'f', 6, 64), "location", "latitude"},
						{"longitude", strconv.FormatFloat(got.Longitude, 'f', 6, 64), "location", "longitude"},
					}
				case LayoutIPinfo:
					checks = [][]string{
						{"asn", "AS" + strconv.FormatUint(uint64(got.ASN), 10), "asn"},
						{"as name", got.ASName, "as_name"},
						{"country", got.CountryCode, "country_code"},
					}
				}
				for _, c := range checks {
					if v := lookup(t, path, n.probe, c[2:]...); v != c[1] {
						t.Errorf("%s: mmdblookup says %s = %q, the enricher %q", n.probe, c[0], v, c[1])
					}
				}
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	v4 := filepath.Join("testdata", "ip2asn-v4.tsv")
	asn := writeDB(t, dir, "asn.mmdb", "GeoLite2-ASN", fixture, asnRecord)
	city := writeDB(t, dir, "city.mmdb", "GeoLite2-City", fixture, cityRecord)
	// A country database that puts 198.51.100.0/24 in Canada.
	canada := append([]fixtureNet(nil), fixture...)
	canada[1].cc = "CA"
	country := writeDB(t, dir, "country.mmdb", "DBIP-Country-Lite", canada, dbipCountryRecord)

	// iptoasn first: its AS name and country win. The Canadian country
	// database disagrees with the US, so the place comes from the city
	// database, which agrees.
	e := newEnricher(t, Config{Databases: []string{v4, country, asn, city}})
	got := e.Lookup(netip.MustParseAddr("198.51.100.100"))
	want := Result{ASN: 64501, ASName: "SAMPLE-CABLE", CountryCode: "US", Region: "California", City: "Los Angeles",
		Latitude: 34.0522, Longitude: -118.2437, ASSource: v4, GeoSource: v4}
	if got != want {
		t.Errorf("Lookup(198.51.100.100) = %+v, want %+v", got, want)
	}
	// 198.51.100.200 is not in the iptoasn file: AS from GeoLite2-ASN,
	// country from DB-IP, and no place, since the city database puts it
	// in another country.
	got = e.Lookup(netip.MustParseAddr("198.51.100.200"))
	want = Result{ASN: 64501, ASName: "Sample Cable (test)", CountryCode: "CA", ASSource: asn, GeoSource: country}
	if got != want {
		t.Errorf("Lookup(198.51.100.200) = %+v, want %+v", got, want)
	}
	// 192.0.2.10: all agree on DE; the city database fills the rest.
	got = e.Lookup(netip.MustParseAddr("192.0.2.10"))
	want = Result{ASN: 64500, ASName: "EXAMPLE-TRANSIT", CountryCode: "DE", Region: "Hesse", City: "Frankfurt am Main",
		Latitude: 50.1109, Longitude: 8.6821, ASSource: v4, GeoSource: v4}
	if got != want {
		t.Errorf("Lookup(192.0.2.10) = %+v, want %+v", got, want)
	}

	// Enrich fills an event; what nobody knows stays as it was.
	ev := event.Event{SrcIP: netip.MustParseAddr("192.0.2.10"), City: "kept?"}
	e.Enrich(&ev)
	if ev.ASN != 64500 || ev.ASName != "EXAMPLE-TRANSIT" || ev.CountryCode != "DE" || ev.Region != "Hesse" ||
		ev.City != "Frankfurt am Main" || ev.Latitude != 50.1109 || ev.Longitude != 8.6821 {
		t.Errorf("Enrich: %+v", ev)
	}
	ev = event.Event{SrcIP: netip.MustParseAddr("100.64.0.1"), CountryCode: "NL"}
	e.Enrich(&ev)
	if ev.CountryCode != "NL" || ev.ASN != 0 {
		t.Errorf("Enrich of an unknown address changed the event: %+v", ev)
	}
}

func TestIPtoASN(t *testing.T) {
	e := newEnricher(t, Config{Databases: []string{"testdata/ip2asn-v4.tsv", "testdata/ip2asn-v6.tsv"}})
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip   string
		want Result
	}{
		{"192.0.2.0", Result{ASN: 64500, ASName: "EXAMPLE-TRANSIT", CountryCode: "DE"}},
		{"192.0.2.255", Result{ASN: 64500, ASName: "EXAMPLE-TRANSIT", CountryCode: "DE"}},
		{"198.51.100.127", Result{ASN: 64501, ASName: "SAMPLE-CABLE", CountryCode: "US"}}, // "us" upper-cased
		{"198.51.100.128", Result{}},
		{"203.0.113.1", Result{}}, // AS 0: not routed
		{"0.0.0.1", Result{}},
		{"2001:db8:ffff::1", Result{ASN: 64502, ASName: "V6-TEST", CountryCode: "FR"}},
		{"2001:db9::1", Result{}},
	} {
		if got := e.Lookup(netip.MustParseAddr(tc.ip)); !sameResult(got, tc.want) {
			t.Errorf("Lookup(%s) = %+v, want %+v", tc.ip, got, tc.want)
		}
	}
	si := e.Sources()
	if si[0].Kind != KindIPtoASN || si[0].Layout != LayoutIPtoASN || si[0].Records != 2 || si[1].Records != 1 {
		t.Errorf("Sources() = %+v", si)
	}
}

func TestParseIPtoASNErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.0.0.0\t1.0.0.255\t13335\n", `x.tsv:1: has 3 tab-separated fields, want range_start, range_end, AS_number, country_code, AS_description: "1.0.0.0\t1.0.0.255\t13335"`},
		{"\n1.0.0.x\t1.0.0.255\t13335\tUS\tCF\n", `x.tsv:2: range start is not an IP address: "1.0.0.x\t1.0.0.255\t13335\tUS\tCF"`},
		{"1.0.0.9\t1.0.0.1\t1\tUS\tx\n", `x.tsv:1: range end is before its start`},
		{"1.0.0.0\t::1\t1\tUS\tx\n", `x.tsv:1: range start and end are of different address families`},
		{"1.0.0.0\t1.0.0.1\tAS-1\tUS\tx\n", `x.tsv:1: AS number is not a number from 0 to 4294967295`},
		{"1.0.0.0\t1.0.0.9\t1\tUS\tx\n1.0.0.5\t1.0.0.20\t2\tUS\ty\n", `x.tsv: range 1.0.0.5-1.0.0.20 overlaps range 1.0.0.0-1.0.0.9`},
	} {
		_, err := parseIPtoASN(strings.NewReader(tc.in), "x.tsv")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("parse %q: error %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestAbuse(t *testing.T) {
	e := newEnricher(t, Config{
		Databases:  []string{"testdata/ip2asn-v4.tsv"},
		AbuseFiles: []string{"testdata/abuse.txt"},
		RIRFiles:   []string{"testdata/ripe.db"},
	})
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip                    string
		asn                   uint32
		contact, sourcePrefix string
	}{
		{"192.0.2.5", 0, "noc@override.example", "testdata/abuse.txt:3"},                                   // user /25 beats RIR /24
		{"192.0.2.130", 0, "abuse@sub.example.net", "testdata/ripe.db: inetnum 192.0.2.128 - 192.0.2.191"}, // more specific RIR
		{"192.0.2.200", 0, "abuse@example.net", "testdata/ripe.db: inetnum 192.0.2.0 - 192.0.2.255"},
		{"198.51.100.7", 0, "asn-desk@sample.example", "testdata/abuse.txt:4"}, // AS 64501 from iptoasn; user AS beats RIR network
		{"198.51.100.99", 0, "one-host@override.example", "testdata/abuse.txt:6"},
		{"198.51.100.200", 0, "abuse@two.example.org", "testdata/ripe.db: inetnum 198.51.100.0 - 198.51.100.255"}, // via the organisation
		{"203.0.113.50", 0, "direct@doc.example", "testdata/ripe.db: inetnum 203.0.113.0 - 203.0.113.99"},
		{"203.0.113.99", 0, "direct@doc.example", "testdata/ripe.db: inetnum 203.0.113.0 - 203.0.113.99"},
		{"203.0.113.100", 0, "", ""}, // an inetnum without a contact
		{"2001:db8:1::1", 0, "v6@override.example", "testdata/abuse.txt:5"},
		{"2001:db8:2::1", 0, "abuse@example.net", "testdata/ripe.db: inet6num 2001:db8::/32"},
		{"100.64.0.1", 64500, "abuse@example.net", "testdata/ripe.db: aut-num AS64500"},
		{"100.64.0.1", 64510, "irt@cert.example", "testdata/ripe.db: aut-num AS64510"},
		{"100.64.0.1", 0, "", ""},
	} {
		c, src := e.Abuse(netip.MustParseAddr(tc.ip), tc.asn)
		if c != tc.contact || src != tc.sourcePrefix {
			t.Errorf("Abuse(%s, %d) = %q, %q; want %q, %q", tc.ip, tc.asn, c, src, tc.contact, tc.sourcePrefix)
		}
	}
	si := e.Sources()
	if si[1].Kind != KindAbuse || si[1].Records != 4 || si[2].Kind != KindRIR || si[2].Records != 14 {
		t.Errorf("Sources() = %+v", si)
	}
}

func TestParseRPSL(t *testing.T) {
	f, err := os.Open("testdata/ripe.db")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []rpslObject
	if err := parseRPSL(f, "ripe.db", func(o rpslObject) error { objs = append(objs, o); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(objs) != 14 {
		t.Fatalf("%d objects, want 14", len(objs))
	}
	first := objs[0]
	if first.class() != "inetnum" || first.key() != "192.0.2.0 - 192.0.2.255" || first[0].line != 6 {
		t.Errorf("first object %+v", first)
	}
	if got := first.first("descr"); got != "Example network for documentation" {
		t.Errorf("continued descr = %q", got)
	}
	if got := objs[8].first("address"); got != "Example Street 1 Example Town" {
		t.Errorf("+ continued address = %q", got)
	}
	if got := objs[9].first("abuse-mailbox"); got != "abuse@sub.example.net" {
		t.Errorf("abuse-mailbox with end-of-line comment = %q", got)
	}

	for _, tc := range []struct{ in, want string }{
		{"  continued\n", `r:1: continuation line outside an attribute: "  continued"`},
		{"inetnum: 1.2.3.4 - 1.2.3.5\nno colon here\n", `r:2: not an attribute ("name: value"), a continuation or a comment: "no colon here"`},
		{"inetnum: 1.2.3.4 - 1.2.3\n", `r:1: "1.2.3.4 - 1.2.3" is not a range of addresses: "inetnum: 1.2.3.4 - 1.2.3"`},
		{"% c\n\ninet6num: 10.0.0.0/8\n", `r:3: the network is of the other address family: "inet6num: 10.0.0.0/8"`},
		{"aut-num: 64500\n", `r:1: not an AS number: "aut-num: 64500"`},
	} {
		_, err := readRPSL(strings.NewReader(tc.in), "r")
		if err == nil || err.Error() != tc.want {
			t.Errorf("read %q: error %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"203.0.113.0", "203.0.113.99", "203.0.113.0/26 203.0.113.64/27 203.0.113.96/30"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"10.0.0.1", "10.0.0.1", "10.0.0.1/32"},
		{"2001:db8::", "2001:db8::1:ffff", "2001:db8::/111"},
	} {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tc.from), netip.MustParseAddr(tc.to)) {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("rangePrefixes(%s, %s) = %v, want %s", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestParseAbuseFileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"# ok\n\n192.0.2.0/24\n", `a.txt:3: has 1 fields, want a network or AS number and an e-mail address: "192.0.2.0/24"`},
		{"192.0.2.0/24 abuse@example.net extra\n", `a.txt:1: has 3 fields`},
		{"192.0.2.1/24 abuse@example.net\n", `a.txt:1: "192.0.2.1/24" has host bits set; the network is 192.0.2.0/24: "192.0.2.1/24 abuse@example.net"`},
		{"192.0.2.0/33 abuse@example.net\n", `a.txt:1: "192.0.2.0/33" is not a network in CIDR notation`},
		{"example.net abuse@example.net\n", `a.txt:1: "example.net" is not a network, an address or an AS number`},
		{"AS0 abuse@example.net\n", `a.txt:1: "AS0" is not an AS number from AS1 to AS4294967295`},
		{"ASX abuse@example.net\n", `a.txt:1: "ASX" is not an AS number`},
		{"AS64500 not-an-address\n", `a.txt:1: "not-an-address" is not an e-mail address: "AS64500 not-an-address"`},
		{"AS64500 <a@example.net>\n", `a.txt:1: "<a@example.net>" is not an e-mail address`},
		{"AS64500 a@example.net\nas64500 b@example.net\n", `a.txt:2: AS64500 is listed already on line 1: "as64500 b@example.net"`},
		{"192.0.2.7 a@example.net\n192.0.2.7/32 b@example.net\n", `a.txt:2: 192.0.2.7/32 is listed already on line 1`},
	} {
		_, err := parseAbuseFile(strings.NewReader(tc.in), "a.txt")
		var pe *ParseError
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !errors.As(err, &pe) {
			t.Errorf("parse %q: error %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	path := writeDB(t, dir, "ipinfo.mmdb", "ipinfo ipinfo_lite.mmdb", fixture, ipinfoFixture)
	abuse := filepath.Join(dir, "abuse.txt")
	if err := os.WriteFile(abuse, []byte("192.0.2.0/24 old@example.net\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnricher(t, Config{Databases: []string{path}, AbuseFiles: []string{abuse}, ReloadInterval: 10 * time.Millisecond})
	ip := netip.MustParseAddr("192.0.2.10")
	if got := e.Lookup(ip).CountryCode; got != "DE" {
		t.Fatalf("country %q, want DE", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	moved := append([]fixtureNet(nil), fixture...)
	moved[0].cc = "NL"
	writeDB(t, dir, "ipinfo.mmdb", "ipinfo ipinfo_lite.mmdb", moved, ipinfoFixture)
	testnet.WaitFor(t, "the new country", func() bool { return e.Lookup(ip).CountryCode == "NL" })

	if err := os.WriteFile(abuse, []byte("# changed\n192.0.2.0/24 new@example.net\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the new abuse contact", func() bool { c, _ := e.Abuse(ip, 0); return c == "new@example.net" })

	// A broken rewrite keeps the old version in service and says why.
	if err := os.WriteFile(abuse, []byte("192.0.2.0/24 broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the load error", func() bool { return e.Err() != nil })
	if c, _ := e.Abuse(ip, 0); c != "new@example.net" {
		t.Errorf("after a failed reload the contact is %q, want the old new@example.net", c)
	}
	if err := e.Err().Error(); !strings.Contains(err, abuse+`:1: "broken" is not an e-mail address`) {
		t.Errorf("Err() = %s", err)
	}
}

func TestMissingAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := writeDB(t, dir, "asn.mmdb", "GeoLite2-ASN", fixture, asnRecord)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")
	truncated := filepath.Join(dir, "truncated.mmdb")
	if err := os.WriteFile(truncated, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	// Garbage where the search tree is, the metadata intact.
	garbled := filepath.Join(dir, "garbled.mmdb")
	bad := append([]byte(nil), data...)
	for i := 0; i < 64 && i < len(bad); i++ {
		bad[i] = 0xff
	}
	if err := os.WriteFile(garbled, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	unknown := writeDB(t, dir, "unknown.mmdb", "GeoIP2-Anonymous-IP", fixture, asnRecord)

	e := newEnricher(t, Config{Databases: []string{missing, truncated, garbled, unknown, good}})
	// What loaded is served.
	if got := e.Lookup(netip.MustParseAddr("192.0.2.1")); got.ASN != 64500 {
		t.Errorf("Lookup with broken files configured = %+v, want AS64500 from %s", got, good)
	}
	si := e.Sources()
	for i, want := range []string{
		missing + ": file does not exist",
		truncated + ": neither a MaxMind DB (no metadata marker) nor an iptoasn TSV file",
		garbled + ` (database type "GeoLite2-ASN"): MaxMind DB is corrupt`,
		unknown + ` (database type "GeoIP2-Anonymous-IP"): database type "GeoIP2-Anonymous-IP" is not one the enricher reads`,
	} {
		if si[i].Err == nil || !strings.HasPrefix(si[i].Err.Error(), want) {
			t.Errorf("source %d error = %v, want %s", i, si[i].Err, want)
		}
		if !si[i].Loaded.IsZero() {
			t.Errorf("source %d is marked loaded", i)
		}
	}
	if si[4].Err != nil || si[4].Loaded.IsZero() {
		t.Errorf("good source: %+v", si[4])
	}
	// The missing file appears: the next reload serves it.
	if err := os.Rename(truncated, missing); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(missing, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if !e.Reload() {
		t.Fatal("Reload() saw no change")
	}
	si = e.Sources()
	if si[0].Err != nil || si[0].Layout != LayoutASN {
		t.Errorf("after the file appeared: %+v", si[0])
	}
	if si[1].Err == nil || !strings.Contains(si[1].Err.Error(), "does not exist") {
		t.Errorf("after the file went away: %+v", si[1])
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Databases: []string{""}},
		{Databases: []string{"a"}, AbuseFiles: []string{"a"}},
		{ReloadInterval: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	e := newEnricher(t, Config{}) // the zero Config works
	if e.Lookup(netip.MustParseAddr("192.0.2.1")).Found() || e.Err() != nil {
		t.Error("an empty enricher found something")
	}
}

func TestDetectLayout(t *testing.T) {
	for typ, want := range map[string]Layout{
		"GeoLite2-ASN": LayoutASN, "GeoIP2-ISP": LayoutASN, "DBIP-ASN-Lite (compat=GeoLite2-ASN)": LayoutASN,
		"GeoIP2-City-Europe": LayoutCity, "GeoIP2-Enterprise": LayoutCity, "DBIP-Location (compat=City)": LayoutCity,
		"GeoLite2-Country": LayoutCountry, "DBIP-Country": LayoutCountry,
		"ipinfo ipinfo_lite.mmdb": LayoutIPinfo, "ipinfo country_asn.mmdb": LayoutIPinfo,
	} {
		if got, _, err := DetectLayout(typ); got != want || err != nil {
			t.Errorf("DetectLayout(%q) = %q, %v; want %q", typ, got, err, want)
		}
	}
	for _, typ := range []string{"GeoIP2-Anonymous-IP", "GeoIP2-Connection-Type", "", "sing-geoip"} {
		if _, _, err := DetectLayout(typ); err == nil {
			t.Errorf("DetectLayout(%q) succeeded", typ)
		}
	}
}

func TestCacheMetricsAndAllocs(t *testing.T) {
	dir := t.TempDir()
	path := writeDB(t, dir, "city.mmdb", "GeoLite2-City", fixture, cityRecord)
	reg := prometheus.NewPedanticRegistry()
	e := newEnricher(t, Config{Databases: []string{path}, Registerer: reg})
	ev := event.Event{SrcIP: netip.MustParseAddr("198.51.100.200")}
	e.Enrich(&ev) // miss
	allocs := testing.AllocsPerRun(100, func() { e.Enrich(&ev) })
	if allocs != 0 {
		t.Errorf("Enrich on a cache hit allocates %v times", allocs)
	}
	if ev.City != "Los Angeles" {
		t.Errorf("city %q", ev.City)
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		`takedown_enrich_cache_lookups_total{result="hit"}`:  101,
		`takedown_enrich_cache_lookups_total{result="miss"}`: 1,
		`takedown_enrich_cache_entries`:                      1,
		`takedown_enrich_sources_failing`:                    0,
		`takedown_enrich_loads_total{result="ok"}`:           1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	// A second enricher on the same registry is refused.
	if _, err := New(Config{Registerer: reg}); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(100)
	if len(c.slots) != 128 {
		t.Fatalf("%d slots", len(c.slots))
	}
	a := netip.MustParseAddr("10.0.0.0")
	for i := 0; i < 10000; i++ {
		c.put(a, Result{ASN: uint32(i)})
		a = a.Next()
	}
	if n := c.len(); n > 128 {
		t.Errorf("%d entries in a cache of 128", n)
	}
	last := a.Prev()
	if r, ok := c.get(last); !ok || r.ASN != 9999 {
		t.Errorf("the last address put is not found: %v %v", r, ok)
	}
}

// gather returns the registry's samples by name{labels}.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

// TestSetFiles: SetFiles switches the file set: new files are read, files
// kept are not read again, dropped files leave the snapshot, and a bad
// list changes nothing.
func TestSetFiles(t *testing.T) {
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.txt"), filepath.Join(dir, "two.txt")
	if err := os.WriteFile(one, []byte("192.0.2.0/24 one@example.net\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(two, []byte("192.0.2.0/25 two@example.net\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnricher(t, Config{AbuseFiles: []string{one}})
	ip := netip.MustParseAddr("192.0.2.10")
	contact := func() string { c, _ := e.Abuse(ip, 0); return c }
	if c := contact(); c != "one@example.net" {
		t.Fatalf("contact %q", c)
	}
	loaded := e.Sources()[0].Loaded
	if _, err := e.SetFiles([]string{one}, []string{one}, nil); err == nil {
		t.Fatal("a file as database and abuse file at once was accepted")
	}
	if c := contact(); c != "one@example.net" || len(e.Sources()) != 1 {
		t.Fatalf("a refused SetFiles changed the files: %q %+v", c, e.Sources())
	}
	changed, err := e.SetFiles(nil, []string{two, one}, []string{"testdata/ripe.db"})
	if err != nil || !changed {
		t.Fatalf("SetFiles: %v, %v", changed, err)
	}
	si := e.Sources()
	if len(si) != 3 || si[0].Path != two || si[1].Path != one || si[1].Loaded != loaded || si[2].Kind != KindRIR || si[2].Records != 14 {
		t.Fatalf("Sources() = %+v", si)
	}
	if c := contact(); c != "two@example.net" {
		t.Fatalf("contact %q, want the more specific network of the new file", c)
	}
	if c, _ := e.Abuse(netip.MustParseAddr("203.0.113.50"), 0); c != "direct@doc.example" {
		t.Fatalf("RIR contact %q", c)
	}
	if changed, err := e.SetFiles(nil, []string{two, one}, []string{"testdata/ripe.db"}); err != nil || changed {
		t.Fatalf("SetFiles with the same files: %v, %v", changed, err)
	}
	if _, err := e.SetFiles(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if c := contact(); c != "" || len(e.Sources()) != 0 {
		t.Fatalf("after dropping every file: %q %+v", c, e.Sources())
	}
	if c, _ := e.Abuse(netip.MustParseAddr("203.0.113.50"), 0); c != "" {
		t.Fatalf("RIR contact %q after dropping the RIR file", c)
	}
}
