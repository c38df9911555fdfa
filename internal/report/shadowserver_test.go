package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// fixtureEvents are the events of the sinkhole event reports' golden
// files: each report's kind of callback, an unattributed host, quotes,
// commas and line breaks in what bots send, and events that no report of
// fixtureSubscriber holds (a scanner, hosts out of scope).
func fixtureEvents() []event.Event {
	alpha := func(e event.Event) event.Event {
		e.ASN, e.ASName, e.CountryCode, e.Region, e.City, e.Latitude, e.Longitude = 64500, "ALPHA-NET", "DE", "Berlin", "Berlin", 52.52, 13.405
		e.Sensor = "sensor-1"
		return e
	}
	sink4, sink6 := netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8:53::53")
	return []event.Event{
		alpha(event.Event{Time: at(0, 0, 1), Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP: netip.MustParseAddr("192.0.2.7"), SrcPort: 53000, DstIP: sink4, DstPort: 53,
			Domain: "k1.kelihos.example", Case: "kelihos-2024", Family: "kelihos", Tag: "dns", DNSQType: "A", DNSRcode: "NOERROR"}),
		alpha(event.Event{Time: at(0, 0, 2), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("192.0.2.7"), SrcPort: 41002, DstIP: sink4, DstPort: 80,
			Domain: "c2.waledac.example", Case: "waledac-2024", Family: "waledac", Tag: "v2", BotID: "bot-1",
			HTTPMethod: "POST", HTTPPath: "/index.php?id=1,2&x=\"y\"", HTTPUserAgent: "Mozilla/4.0 (compatible; MSIE 8.0, \"quoted\")",
			HTTPReferer: "http://c2.waledac.example/", HTTPForwardedBy: "10.0.0.8"}),
		alpha(event.Event{Time: at(0, 0, 3), Protocol: event.ProtoHTTPS, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("192.0.2.9"), SrcPort: 2000, DstIP: sink4, DstPort: 443,
			Domain: "c2.waledac.example", Case: "waledac-2024", TLSVersion: "1.3", TLSCipher: "TLS_AES_128_GCM_SHA256",
			HTTPMethod: "GET", HTTPPath: "/", HTTPUserAgent: "agent\nwith a line break"}),
		alpha(event.Event{Time: at(1, 2, 3), Protocol: event.ProtoSMTP, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("192.0.2.9"), SrcPort: 4000, DstIP: sink4, DstPort: 25,
			Domain: "mx.kelihos.example", Case: "kelihos-2024", Family: "kelihos", Tag: "spam", SMTPHelo: "x"}),
		{Time: at(2, 0, 0), Protocol: event.ProtoTCP, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("198.51.100.20"), SrcPort: 61000, DstIP: sink4, DstPort: 8080,
			Case: "waledac-2024", Family: "waledac", ASN: 64501, ASName: `Beta "Quoted", Ltd`, CountryCode: "CH", Region: "Zurich", City: "Zürich"},
		{Time: at(3, 0, 0), Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP: netip.MustParseAddr("2001:db8:5::1"), SrcPort: 5353, DstIP: sink6, DstPort: 53,
			Domain: "k2.kelihos.example", Case: "kelihos-2024", Family: "kelihos", ASN: 64502, CountryCode: "FR", City: "Paris"},
		{Time: at(3, 0, 1), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("2001:db8:5::1"), SrcPort: 50000, DstIP: sink6, DstPort: 80,
			Domain: "c2.waledac.example", Case: "waledac-2024", Family: "waledac", Tag: "v2",
			HTTPMethod: "GET", HTTPPath: "/gate.php", HTTPUserAgent: "bot/1.0", ASN: 64502, CountryCode: "FR", City: "Paris"},
		// No Host header: the classifier knew the family from the path.
		{Time: at(3, 0, 2), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("2001:db8:5::1"), SrcPort: 50001, DstIP: sink6, DstPort: 80,
			Family: "waledac", HTTPMethod: "POST", HTTPPath: "/gate.php?v=2", ASN: 64502, CountryCode: "FR", City: "Paris"},
		// A scanner: no family, no case.
		alpha(event.Event{Time: at(4, 0, 0), Protocol: event.ProtoTCP, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("192.0.2.66"), SrcPort: 1234, DstIP: sink4, DstPort: 22}),
		// Out of scope.
		{Time: at(5, 0, 0), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: netip.MustParseAddr("203.0.113.5"), SrcPort: 1111, DstIP: sink4, DstPort: 80,
			Domain: "c2.waledac.example", Case: "waledac-2024", Family: "waledac", ASN: 64999, CountryCode: "US"},
	}
}

// eventSource is an EventSource of events held in memory.
type eventSource []event.Event

func (s eventSource) Scan(ctx context.Context, q eventstore.ScanQuery, fn func(*event.Event) error) error {
	for i := range s {
		e := s[i]
		if !q.From.IsZero() && e.Time.Before(q.From) || !q.To.IsZero() && !e.Time.Before(q.To) {
			continue
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

// writeSinkholeFixture writes fixtureSubscriber's sinkhole event reports
// of fxDay and returns them by file name.
func writeSinkholeFixture(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string]*bytes.Buffer{}
	rows, err := WriteSinkholeEvents(context.Background(), eventSource(fixtureEvents()), fixtureSubscriber(), fxDay.Add(5*time.Hour),
		func(name string) (io.Writer, error) {
			if files[name] != nil {
				t.Fatalf("%s opened twice", name)
			}
			files[name] = new(bytes.Buffer)
			return files[name], nil
		})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for name, b := range files {
		out[name] = b.Bytes()
		recs, err := csv.NewReader(bytes.NewReader(b.Bytes())).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rows[name] != len(recs)-1 {
			t.Errorf("%s: Close says %d rows, the file has %d", name, rows[name], len(recs)-1)
		}
	}
	return out
}

func TestSinkholeGolden(t *testing.T) {
	files := writeSinkholeFixture(t)
	want := []string{
		"2024-05-01-event4_sinkhole-isp-a.csv", "2024-05-01-event4_sinkhole_http-isp-a.csv",
		"2024-05-01-event6_sinkhole-isp-a.csv", "2024-05-01-event6_sinkhole_http-isp-a.csv",
	}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	for name, b := range files {
		checkGolden(t, "sinkhole/"+name, b)
	}
}

func TestSinkholeRows(t *testing.T) {
	files := writeSinkholeFixture(t)
	count := 0
	for name, b := range files {
		recs, _ := csv.NewReader(bytes.NewReader(b)).ReadAll()
		report := strings.TrimSuffix(strings.TrimPrefix(name, "2024-05-01-"), "-isp-a.csv")
		if !slices.Equal(recs[0], SinkholeColumns(report)) {
			t.Errorf("%s: header %q", name, recs[0])
		}
		for _, r := range recs[1:] {
			count++
			if r[2] == "192.0.2.66" || r[2] == "203.0.113.5" {
				t.Errorf("%s: a row of %s, which is no infected host of the scope", name, r[2])
			}
		}
	}
	if count != 8 {
		t.Errorf("%d rows, want the 8 events of infected hosts in scope", count)
	}
}

func TestSinkholeFileName(t *testing.T) {
	day := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
	for sub, want := range map[string]string{
		"isp-a":            "2026-12-06-event4_sinkhole-isp-a.csv",
		"CERT.example (x)": "2026-12-06-event4_sinkhole-CERT-example-x.csv",
		"--a--b--":         "2026-12-06-event4_sinkhole-a-b.csv",
		"":                 "2026-12-06-event4_sinkhole.csv",
		"über_net":         "2026-12-06-event4_sinkhole-ber_net.csv",
	} {
		if got := SinkholeFileName(SinkholeEvents4, sub, day); got != want {
			t.Errorf("SinkholeFileName(%q) = %q, want %q", sub, got, want)
		}
	}
}

// TestSinkholeIntelMQ: IntelMQ's Shadowserver parser (intelmq_test.go)
// takes every row of every report.
func TestSinkholeIntelMQ(t *testing.T) {
	total := 0
	for name, b := range writeSinkholeFixture(t) {
		n, err := intelmqCheckSinkhole(name, b)
		if err != nil {
			t.Error(err)
		}
		total += n
	}
	if total != 8 {
		t.Errorf("%d rows checked, want 8", total)
	}
}

// TestIntelMQCheckRejects: the port of IntelMQ's checks refuses what
// IntelMQ refuses, so that its silence above means something.
func TestIntelMQCheckRejects(t *testing.T) {
	header := strings.Join(sinkholeHTTPColumns, ",") + "\n"
	good := "2024-05-01 00:00:02,tcp,192.0.2.7,41002,64500,DE,Berlin,Berlin,,,,,,,192.0.2.53,80,,,,,,,,,waledac,waledac,v2,http,,,/x,c2.waledac.example,a,,,\n"
	if _, err := intelmqCheckSinkhole("2024-05-01-event4_sinkhole_http-isp-a.csv", []byte(header+good)); err != nil {
		t.Fatalf("a good row: %v", err)
	}
	for _, c := range []struct{ what, name, from, to string }{
		{"time with T", "2024-05-01-event4_sinkhole_http-isp-a.csv", "2024-05-01 00:00:02", "2024-05-01T00:00:02Z"},
		{"no source address", "2024-05-01-event4_sinkhole_http-isp-a.csv", "192.0.2.7", ""},
		{"source 0.0.0.0", "2024-05-01-event4_sinkhole_http-isp-a.csv", "192.0.2.7", "0.0.0.0"},
		{"port not a number", "2024-05-01-event4_sinkhole_http-isp-a.csv", "41002", "x"},
		{"country of three letters", "2024-05-01-event4_sinkhole_http-isp-a.csv", ",DE,", ",DEU,"},
		{"host with a port", "2024-05-01-event4_sinkhole_http-isp-a.csv", "c2.waledac.example", "c2.waledac.example:80"},
		{"non-ASCII family", "2024-05-01-event4_sinkhole_http-isp-a.csv", "waledac,waledac", "waledac,wäledac"},
		{"file name with a dot", "2024-05-01-event4_sinkhole_http-isp.a.csv", "", ""},
		{"other report", "2024-05-01-scan_http-isp-a.csv", "", ""},
	} {
		data := header + good
		if c.from != "" {
			data = header + strings.Replace(good, c.from, c.to, 1)
		}
		if _, err := intelmqCheckSinkhole(c.name, []byte(data)); err == nil {
			t.Errorf("%s: accepted", c.what)
		}
	}
}

var jsonDump = flag.String("jsondump", "", "TestJSONIntelMQ writes the JSON lines it checks to this file, for testdata/intelmq/check.py")

// TestJSONIntelMQ: every line of the JSON report, at every TLP label,
// has a TLP that IntelMQ's TLP type takes and canonical times.
func TestJSONIntelMQ(t *testing.T) {
	var all bytes.Buffer
	defer func() {
		if *jsonDump != "" {
			if err := os.WriteFile(*jsonDump, all.Bytes(), 0o644); err != nil {
				t.Error(err)
			}
		}
	}()
	for _, label := range []string{"CLEAR", "WHITE", "GREEN", "AMBER", "AMBER+STRICT", "RED", "", "tlp:amber+strict"} {
		r, _ := fixtureReport(t)
		r.Subscriber.TLP = label
		var b bytes.Buffer
		if err := (JSONLines{Options: fixtureOptions()}).Write(&b, r); err != nil {
			t.Fatal(err)
		}
		all.Write(b.Bytes())
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		for i, line := range lines {
			var o map[string]any
			if err := json.Unmarshal([]byte(line), &o); err != nil {
				t.Fatalf("TLP %q line %d: %v", label, i+1, err)
			}
			if tlp, _ := o["tlp"].(string); !slices.Contains(intelmqTLPs, tlp) {
				t.Errorf("TLP %q line %d: tlp %q, which IntelMQ refuses", label, i+1, o["tlp"])
			}
			for _, k := range []string{"time.source", "extra.first_seen", "extra.last_seen"} {
				if err := imqCanonicalTime(o[k].(string)); err != nil {
					t.Errorf("TLP %q line %d: %s: %v", label, i+1, k, err)
				}
			}
		}
	}
	for label, want := range map[string]string{"CLEAR": "WHITE", "AMBER+STRICT": "AMBER", "GREEN": "GREEN", "RED": "RED", "AMBER": "AMBER"} {
		if got := intelmqTLP(label); got != want {
			t.Errorf("intelmqTLP(%q) = %q, want %q", label, got, want)
		}
	}
}

// FuzzSinkholeCSV: whatever the bots send and whatever the subscriber is
// called, every report reads back as CSV of its header's width, its file
// name is one IntelMQ takes, and IntelMQ's checks take every row whose
// names are the kind that reach the store.
func FuzzSinkholeCSV(f *testing.F) {
	for _, e := range fixtureEvents() {
		f.Add("isp-a", e.SrcIP.String(), uint16(e.SrcPort), string(e.Protocol), e.Family, e.Tag, e.Domain, e.HTTPPath, e.HTTPUserAgent, e.City)
	}
	f.Add("a.b c", "::ffff:192.0.2.1", uint16(0), "https", "", "", "", "GET / HTTP/1.1", "\r\n\"", "")
	f.Fuzz(func(t *testing.T, sub, ip string, port uint16, proto, family, tag, domain, path, agent, city string) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return
		}
		e := event.Event{Time: fxDay.Add(time.Hour), Protocol: event.Protocol(proto), Transport: event.TransportTCP,
			SrcIP: a, SrcPort: port, DstIP: netip.MustParseAddr("192.0.2.53"), DstPort: 80, Case: "c",
			Family: family, Tag: tag, Domain: domain, HTTPPath: path, HTTPUserAgent: agent, City: city}
		files := map[string]*bytes.Buffer{}
		w := NewSinkholeCSV(Subscriber{Name: sub}, fxDay, func(name string) (io.Writer, error) {
			files[name] = new(bytes.Buffer)
			return files[name], nil
		})
		if _, err := w.Add(&e); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if !intelmqFileName.MatchString(name) {
				t.Errorf("file name %q: IntelMQ takes no report from it", name)
			}
			recs, err := csv.NewReader(bytes.NewReader(b.Bytes())).ReadAll()
			if err != nil || len(recs) != 2 {
				t.Fatalf("%q reads back as %d records: %v", b.String(), len(recs), err)
			}
			if got := recs[1][7]; !strings.ContainsRune(city, '\r') && got != strings.ToUpper(city) {
				t.Errorf("src_city %q of %q: want it in upper case", got, city)
			}
			if _, err := intelmqCheckSinkhole(name, b.Bytes()); err != nil && storable(&e) {
				t.Errorf("%v", err)
			}
		}
	})
}

// storable: the event's names are as the sinkhole records them (a
// lower-case printable family and tag, a domain name, a TLS/HTTP
// protocol), which is what reaches the store.
func storable(e *event.Event) bool {
	printable := regexp.MustCompile(`^[ -~]*$`)
	name := regexp.MustCompile(`^([a-z0-9-]+\.)*[a-z0-9-]+$`)
	return printable.MatchString(e.Family) && e.Family == strings.ToLower(e.Family) &&
		(e.Domain == "" || name.MatchString(e.Domain))
}

// BenchmarkSinkholeCSV writes a day of callbacks of the fixture's kinds as
// the sinkhole event reports.
func BenchmarkSinkholeCSV(b *testing.B) {
	evs := fixtureEvents()
	sub := fixtureSubscriber()
	b.ReportAllocs()
	for b.Loop() {
		w := NewSinkholeCSV(sub, fxDay, func(string) (io.Writer, error) { return io.Discard, nil })
		for range 1000 {
			for i := range evs {
				if _, err := w.Add(&evs[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000*len(evs)), "ns/event")
}

// TestSinkholeRegionCityUpper: region and city in upper case, as
// Shadowserver writes them ("METROPOLITANA DE LIMA", "LIMA" in the sample
// rows of IntelMQ 3.2.1's tests), non-ASCII letters too.
func TestSinkholeRegionCityUpper(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "sinkhole", "*.csv"))
	seen := map[string]bool{}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || len(rows) < 2 || rows[0][6] != "src_region" || rows[0][7] != "src_city" {
			t.Fatalf("%s: %v", path, err)
		}
		for _, r := range rows[1:] {
			for _, v := range r[6:8] {
				if v != strings.ToUpper(v) {
					t.Errorf("%s: %q is not in upper case", path, v)
				}
				seen[v] = true
			}
		}
	}
	for _, want := range []string{"BERLIN", "ZURICH", "ZÜRICH", "PARIS"} {
		if !seen[want] {
			t.Errorf("no %s among the regions and cities of the golden files", want)
		}
	}
	if got := string(appendUpper(nil, "Nordrhein-Westfalen")) + "|" + string(appendUpper(nil, "Köln")); got != "NORDRHEIN-WESTFALEN|KÖLN" {
		t.Errorf("appendUpper: %q", got)
	}
}
