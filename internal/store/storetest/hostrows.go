package storetest

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// hrDay is the day of the host rows' fixture, d1 of the other.
var hrDay = d1

func hrEvent(hm string, ip, family, bot string, port uint16, proto event.Protocol, domain, cas string, srcPort uint16) event.Event {
	t, err := time.Parse("15:04", hm)
	if err != nil {
		panic(err)
	}
	e := event.Event{
		Time:     hrDay.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute),
		Protocol: proto, Transport: event.TransportTCP,
		SrcIP: netip.MustParseAddr(ip), SrcPort: srcPort,
		DstIP: netip.MustParseAddr("192.0.2.53"), DstPort: port,
		Domain: domain, Zone: domain, Case: cas, Family: family, BotID: bot, Tag: "v2",
		ASN: 64500, ASName: "ALPHA Alpha Net", CountryCode: "DE", Region: "Berlin", City: "Berlin",
		Latitude: 52.52, Longitude: 13.405,
	}
	if proto == event.ProtoDNS {
		e.Transport = event.TransportUDP
	}
	return e
}

// hostRowFixture: a NAT address with two bots and two families, a host that
// called a seized name unclassified, a scanner (neither family nor case),
// an IPv6 host, a lower address, and an event of the next day.
func hostRowFixture() []event.Event {
	evs := []event.Event{
		hrEvent("10:00", "10.0.0.1", "waledac", "a1", 80, event.ProtoHTTP, "a.example", "c1", 1000),
		hrEvent("10:30", "10.0.0.1", "waledac", "a1", 443, event.ProtoHTTPS, "b.example", "c1", 1001),
		hrEvent("11:00", "10.0.0.1", "waledac", "a2", 80, event.ProtoHTTP, "a.example", "c1", 1002),
		hrEvent("11:30", "10.0.0.1", "kelihos", "", 53, event.ProtoDNS, "k.example", "c2", 53000),
		hrEvent("12:00", "10.0.0.2", "", "", 80, event.ProtoHTTP, "a.example", "c1", 2000),
		hrEvent("12:30", "10.0.0.3", "", "", 8080, event.ProtoTCP, "", "", 3000),
		hrEvent("13:00", "2001:db8::1", "kelihos", "k9", 25, event.ProtoSMTP, "k.example", "c2", 4000),
		hrEvent("13:10", "9.0.0.1", "waledac", "", 80, event.ProtoHTTP, "a.example", "c1", 5000),
		hrEvent("13:20", "2001:db8::2", "waledac", "", 80, event.ProtoHTTP, "a.example", "c1", 5001),
	}
	evs[0].Tag = "first-tag"
	evs[6].ASN, evs[6].ASName, evs[6].CountryCode, evs[6].Region, evs[6].City = 64501, "BETA", "FR", "", "Paris"
	evs[6].Latitude, evs[6].Longitude = 48.8566, 2.3522
	evs[7].ASN, evs[7].ASName, evs[7].CountryCode, evs[7].Region, evs[7].City, evs[7].Latitude, evs[7].Longitude = 64502, "", "BR", "", "", 0, 0
	next := hrEvent("00:00", "10.0.0.1", "waledac", "a1", 80, event.ProtoHTTP, "a.example", "c1", 1)
	next.Time = hrDay.AddDate(0, 0, 1)
	return append(evs, next)
}

func hrAt(s string) time.Time {
	t, _ := time.Parse("15:04", s)
	return hrDay.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute)
}

func wantHostRows() []eventstore.HostRow {
	alpha := func(r eventstore.HostRow) eventstore.HostRow {
		r.ASN, r.ASName, r.Country, r.Region, r.City, r.Latitude, r.Longitude = 64500, "ALPHA Alpha Net", "DE", "Berlin", "Berlin", 52.52, 13.405
		return r
	}
	return []eventstore.HostRow{
		{IP: netip.MustParseAddr("9.0.0.1"), Family: "waledac", FirstSeen: hrAt("13:10"), LastSeen: hrAt("13:10"), Events: 1,
			DstPorts: []uint16{80}, SrcPort: 5000, DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			Domain: "a.example", Case: "c1", Tag: "v2", ASN: 64502, Country: "BR"},
		alpha(eventstore.HostRow{IP: netip.MustParseAddr("10.0.0.1"), Family: "kelihos", FirstSeen: hrAt("11:30"), LastSeen: hrAt("11:30"), Events: 1,
			DstPorts: []uint16{53}, SrcPort: 53000, DstPort: 53, Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			Domain: "k.example", Case: "c2", Tag: "v2"}),
		alpha(eventstore.HostRow{IP: netip.MustParseAddr("10.0.0.1"), Family: "waledac", FirstSeen: hrAt("10:00"), LastSeen: hrAt("11:00"), Events: 3, BotIDs: 2,
			DstPorts: []uint16{80, 443}, SrcPort: 1002, DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			Domain: "a.example", Case: "c1", Tag: "first-tag"}),
		alpha(eventstore.HostRow{IP: netip.MustParseAddr("10.0.0.2"), Family: eventstore.UnknownFamily, FirstSeen: hrAt("12:00"), LastSeen: hrAt("12:00"), Events: 1,
			DstPorts: []uint16{80}, SrcPort: 2000, DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			Domain: "a.example", Case: "c1", Tag: "v2"}),
		{IP: netip.MustParseAddr("2001:db8::1"), Family: "kelihos", FirstSeen: hrAt("13:00"), LastSeen: hrAt("13:00"), Events: 1, BotIDs: 1,
			DstPorts: []uint16{25}, SrcPort: 4000, DstPort: 25, Protocol: event.ProtoSMTP, Transport: event.TransportTCP,
			Domain: "k.example", Case: "c2", Tag: "v2", ASN: 64501, ASName: "BETA", Country: "FR", City: "Paris", Latitude: 48.8566, Longitude: 2.3522},
		alpha(eventstore.HostRow{IP: netip.MustParseAddr("2001:db8::2"), Family: "waledac", FirstSeen: hrAt("13:20"), LastSeen: hrAt("13:20"), Events: 1,
			DstPorts: []uint16{80}, SrcPort: 5001, DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			Domain: "a.example", Case: "c1", Tag: "v2"}),
	}
}

func collectHostRows(t *testing.T, b Engine, q eventstore.HostRowQuery) []eventstore.HostRow {
	t.Helper()
	var got []eventstore.HostRow
	err := b.HostRows(t.Context(), q, func(r *eventstore.HostRow) error {
		c := *r
		c.DstPorts = slices.Clone(r.DstPorts)
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Fatalf("host rows: %v", err)
	}
	return got
}

func testHostRows(t *testing.T, b Engine) {
	load(t, b, hostRowFixture())
	want := wantHostRows()
	for _, per := range []int64{0, 1, 2, 3} { // 0: one partition per family of addresses
		got := collectHostRows(t, b, eventstore.HostRowQuery{From: hrDay, To: hrDay.AddDate(0, 0, 1), PartitionEvents: per})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("partition events %d:", per)
			for i := range max(len(got), len(want)) {
				var g, w eventstore.HostRow
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("row %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
		}
	}

	// The open range also has the next day's event.
	if got := collectHostRows(t, b, eventstore.HostRowQuery{}); len(got) != len(want) || got[2].Events != 4 {
		t.Errorf("open range: %d rows, 10.0.0.1 waledac has %d events; want %d rows, 4 events", len(got), got[2].Events, len(want))
	}
	// An empty range calls nothing.
	if got := collectHostRows(t, b, eventstore.HostRowQuery{From: hrDay.AddDate(1, 0, 0)}); len(got) != 0 {
		t.Errorf("empty range: %d rows", len(got))
	}
	// fn's error comes back as it is.
	stop := errors.New("stop")
	if err := b.HostRows(t.Context(), eventstore.HostRowQuery{}, func(*eventstore.HostRow) error { return stop }); err != stop {
		t.Errorf("error %v, want %v", err, stop)
	}
}

// testHostRowsOtherPorts: a host calling more than MaxPorts ports names the
// MaxPorts most called and flags the others.
func testHostRowsOtherPorts(t *testing.T, b Engine) {
	var evs []event.Event
	for p := range eventstore.MaxPorts + 2 {
		e := hrEvent("10:00", "10.0.0.1", "waledac", "", uint16(1000+p), event.ProtoTCP, "a.example", "c1", 1)
		evs = append(evs, e)
		if p >= 2 { // ports 1000 and 1001 are the least called
			evs = append(evs, e)
		}
	}
	load(t, b, evs)
	got := collectHostRows(t, b, eventstore.HostRowQuery{})
	if len(got) != 1 {
		t.Fatalf("%d rows", len(got))
	}
	if !got[0].OtherPorts || len(got[0].DstPorts) != eventstore.MaxPorts || got[0].DstPorts[0] != 1002 || got[0].DstPorts[eventstore.MaxPorts-1] != 1000+eventstore.MaxPorts+1 {
		t.Errorf("ports %v, other %v", got[0].DstPorts, got[0].OtherPorts)
	}
}

func testDailyHosts(t *testing.T, b Engine) {
	load(t, b, hostRowFixture())
	for _, tc := range []struct {
		name   string
		filter eventstore.HostFilter
		byASN  bool
		want   []eventstore.DailyHosts
	}{
		{"none", eventstore.HostFilter{}, false, nil},
		{"asn", eventstore.HostFilter{ASNs: []uint32{64500}}, true, []eventstore.DailyHosts{
			{Day: hrDay, IPs: 3, ByASN: []eventstore.ASNHosts{{ASN: 64500, ASName: "ALPHA Alpha Net", IPs: 3}}},
			{Day: d2, IPs: 1, ByASN: []eventstore.ASNHosts{{ASN: 64500, ASName: "ALPHA Alpha Net", IPs: 1}}},
		}},
		{"country and v6 prefix", eventstore.HostFilter{Countries: []string{"BR"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/126")}}, true, []eventstore.DailyHosts{
			{Day: hrDay, IPs: 3, ByASN: []eventstore.ASNHosts{{ASN: 64500, ASName: "ALPHA Alpha Net", IPs: 1}, {ASN: 64501, ASName: "BETA", IPs: 1}, {ASN: 64502, ASName: "", IPs: 1}}},
		}},
		{"v4 prefix, no scanner", eventstore.HostFilter{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/30")}}, false, []eventstore.DailyHosts{
			{Day: hrDay, IPs: 2}, {Day: d2, IPs: 1},
		}},
		{"v4 host prefix", eventstore.HostFilter{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}}, false, []eventstore.DailyHosts{
			{Day: hrDay, IPs: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.DailyHosts(t.Context(), eventstore.DailyHostQuery{Filter: tc.filter, ByASN: tc.byASN})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// testHostRowsSnapshot: events appended while HostRows runs are not
// half-seen (a row without its network or domain): HostRows reads one
// snapshot.
func testHostRowsSnapshot(t *testing.T, b Engine) {
	load(t, b, hostRowFixture())
	late := hrEvent("14:00", "10.0.0.200", "waledac", "", 80, event.ProtoHTTP, "late.example", "c9", 1)
	late.ASN, late.ASName = 64999, "LATE"
	appended := false
	var got []eventstore.HostRow
	err := b.HostRows(t.Context(), eventstore.HostRowQuery{PartitionEvents: 1}, func(r *eventstore.HostRow) error {
		if !appended {
			appended = true
			if err := b.Append(t.Context(), []event.Event{late}); err != nil {
				return err
			}
		}
		got = append(got, *r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.IP == late.SrcIP {
			t.Errorf("HostRows saw an event appended after it started: %+v", r)
		}
	}
	if len(got) != len(wantHostRows()) {
		t.Errorf("%d rows, want %d", len(got), len(wantHostRows()))
	}
}
