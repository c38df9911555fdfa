package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"maps"
	"net/netip"
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
	if count != 7 {
		t.Errorf("%d rows, want the 7 events of infected hosts in scope", count)
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
