package report

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/scope"
)

var fxDay = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

func at(h, m, s int) time.Time {
	return fxDay.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
}

// fixtureRows are the rows of the golden files: a NAT address with two
// families, an unclassified host, an IPv6 host, a host calling many ports,
// a network with an awkward name, a host without geolocation, and hosts
// out of the subscriber's scope.
func fixtureRows() []eventstore.HostRow {
	alpha := func(r eventstore.HostRow) eventstore.HostRow {
		r.ASN, r.ASName, r.Country, r.Region, r.City, r.Latitude, r.Longitude = 64500, "ALPHA-NET Alpha Networks, Inc.", "DE", "Berlin", "Berlin", 52.52, 13.405
		return r
	}
	return []eventstore.HostRow{
		alpha(eventstore.HostRow{IP: netip.MustParseAddr("192.0.2.7"), Family: "kelihos", FirstSeen: at(11, 30, 0), LastSeen: at(11, 30, 0), Events: 1,
			DstPorts: []uint16{53}, SrcPort: 53000, DstPort: 53, Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			Domain: "k1.kelihos.example", Case: "kelihos-2024", Tag: "dns"}),
		alpha(eventstore.HostRow{IP: netip.MustParseAddr("192.0.2.7"), Family: "waledac", FirstSeen: at(10, 0, 0), LastSeen: at(23, 59, 59), Events: 36, BotIDs: 2,
			DstPorts: []uint16{80, 443}, SrcPort: 41002, DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			Domain: "bestmirabella.example", Case: "waledac-2024", Tag: "v2"}),
		alpha(eventstore.HostRow{IP: netip.MustParseAddr("192.0.2.9"), Family: eventstore.UnknownFamily, FirstSeen: at(12, 0, 0), LastSeen: at(12, 5, 0), Events: 2,
			DstPorts: []uint16{80}, SrcPort: 2000, DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			Domain: "bestmirabella.example", Case: "waledac-2024"}),
		{IP: netip.MustParseAddr("198.51.100.20"), Family: "waledac", FirstSeen: at(1, 2, 3), LastSeen: at(4, 5, 6), Events: 1200,
			DstPorts: []uint16{25, 80, 443, 8080}, OtherPorts: true, SrcPort: 61000, DstPort: 8080, Protocol: event.ProtoTCP, Transport: event.TransportTCP,
			Domain: "lovelifeportal.example", Case: "waledac-2024", Tag: "v2",
			ASN: 64501, ASName: `Beta "Quoted", Ltd — Zürich`, Country: "CH", Region: "Zurich", City: "Zürich", Latitude: 47.3769, Longitude: 8.5417},
		{IP: netip.MustParseAddr("198.51.100.21"), Family: "waledac", FirstSeen: at(6, 0, 0), LastSeen: at(6, 0, 0), Events: 1,
			DstPorts: []uint16{80}, SrcPort: 1025, DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			Domain: "lovelifeportal.example", Case: "waledac-2024", Tag: "v2", ASN: 64501, Country: "CH"},
		{IP: netip.MustParseAddr("2001:db8:5::1"), Family: "kelihos", FirstSeen: at(13, 0, 0), LastSeen: at(13, 0, 0), Events: 1, BotIDs: 1,
			DstPorts: []uint16{25}, SrcPort: 4000, DstPort: 25, Protocol: event.ProtoSMTP, Transport: event.TransportTCP,
			Domain: "k1.kelihos.example", Case: "kelihos-2024", Tag: "spam", ASN: 64502, ASName: "GAMMA", Country: "FR", City: "Paris", Latitude: 48.8566, Longitude: 2.3522},
		// Out of scope.
		{IP: netip.MustParseAddr("203.0.113.5"), Family: "waledac", FirstSeen: at(8, 0, 0), LastSeen: at(8, 0, 0), Events: 1,
			DstPorts: []uint16{80}, Domain: "bestmirabella.example", Case: "waledac-2024", ASN: 64999, Country: "US"},
	}
}

// fixtureSubscriber sees AS64500, 198.51.100.16/28 and France.
func fixtureSubscriber() Subscriber {
	return Subscriber{
		Name: "isp-a", Org: "ISP A GmbH",
		Scope: scope.Scope{ASNs: []uint32{64500}, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.16/28")}, Countries: []string{"FR"}},
		TLP:   "AMBER",
	}
}

func fixtureOptions() Options {
	return Options{
		Operator:  Operator{Name: "Example CERT sinkhole", Email: "sinkhole@cert.example", URL: "https://cert.example/sinkhole"},
		Generated: time.Date(2024, 5, 2, 6, 0, 0, 0, time.UTC),
	}
}

// rowSource is a Source of rows held in memory.
type rowSource []eventstore.HostRow

func (s rowSource) HostRows(ctx context.Context, q eventstore.HostRowQuery, fn func(*eventstore.HostRow) error) error {
	for i := range s {
		r := s[i]
		if !q.From.IsZero() && r.LastSeen.Before(q.From) || !q.To.IsZero() && !r.FirstSeen.Before(q.To) {
			continue
		}
		r.DstPorts = slices.Clone(r.DstPorts)
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}
