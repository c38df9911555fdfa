package eventstore

import (
	"math/bits"
	"net/netip"
	"slices"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// UnknownFamily is the family of a HostRow whose events called a seized
// name (they have a case) but that the classifier did not name.
const UnknownFamily = "unknown"

// MaxPorts is the number of destination ports, the most called of the
// range, that HostRow.DstPorts can name; calls to any other port set
// HostRow.OtherPorts.
const MaxPorts = 63

// HostRowQuery selects the events HostRows aggregates.
type HostRowQuery struct {
	// From and To bound the time of the events, [From, To); zero leaves
	// that side open.
	From, To time.Time
	// PartitionEvents is about how many events an engine that aggregates
	// a range of addresses at a time takes in one part (the DuckDB engine:
	// 4,194,304 when 0); an engine may ignore it. Tests set it low to
	// exercise the partitioning. Both engines cut at about 4,194,304 when
	// it is 0.
	PartitionEvents int64
}

// The protocols and transports as the small numbers that an engine packs
// into one value per event for HostRow.Unpack; 0 is none.
var (
	PackedProtocols  = []event.Protocol{"", event.ProtoDNS, event.ProtoHTTP, event.ProtoHTTPS, event.ProtoSMTP, event.ProtoTCP, event.ProtoUDP}
	PackedTransports = []event.Transport{"", event.TransportTCP, event.TransportUDP}
)

// Unpack sets the ports and protocols of r from what an engine aggregated
// in two numbers: mask has bit i set for a call to ports[i] and bit 63 for
// a call to any other port; last is the last callback's source port <<
// 32 | destination port << 16 | protocol code << 8 | transport code (the
// codes are places in PackedProtocols and PackedTransports). DstPorts is
// reused.
func (r *HostRow) Unpack(ports []uint16, mask, last uint64) {
	r.DstPorts = r.DstPorts[:0]
	for m := mask &^ (1 << 63); m != 0; m &= m - 1 {
		r.DstPorts = append(r.DstPorts, ports[bits.TrailingZeros64(m)])
	}
	slices.Sort(r.DstPorts)
	r.OtherPorts = mask&(1<<63) != 0
	r.SrcPort, r.DstPort = uint16(last>>32), uint16(last>>16)
	r.Protocol = PackedProtocols[min(int(last>>8&0xff), len(PackedProtocols)-1)]
	r.Transport = PackedTransports[min(int(last&0xff), len(PackedTransports)-1)]
}

// HostRow is one infected host: the events of one source address and one
// family in the range of a HostRowQuery.
type HostRow struct {
	IP netip.Addr
	// Family is the malware family, UnknownFamily for events with a case
	// but no family.
	Family string
	// FirstSeen and LastSeen are the times of the first and last event.
	FirstSeen, LastSeen time.Time
	// Events counts the callbacks.
	Events int64
	// BotIDs counts the distinct non-empty bot ids: more than one when
	// several bots share the address (NAT).
	BotIDs int64
	// DstPorts are the distinct destination ports called, ascending, among
	// the MaxPorts most called ports of the range; OtherPorts reports calls
	// to other ports.
	DstPorts   []uint16
	OtherPorts bool

	// The last callback: its source port (with LastSeen and IP it names
	// the subscriber behind a carrier-grade NAT), destination port,
	// application and transport protocols.
	SrcPort   uint16
	DstPort   uint16
	Protocol  event.Protocol
	Transport event.Transport

	// The first callback: the name it called, the case that seized the
	// name, and the classifier's tag.
	Domain, Case, Tag string

	// Enrichment of the address (of any one of the events: they agree
	// unless the enrichment databases changed during the range).
	ASN                   uint32
	ASName                string
	Country, Region, City string
	Latitude, Longitude   float64
}

// HostFilter selects hosts by the network that announces them, the address
// block they are in, or the country they are in: a host that matches any
// one is selected. The zero HostFilter selects no host.
type HostFilter struct {
	ASNs      []uint32
	Prefixes  []netip.Prefix
	Countries []string
}

// Empty reports whether f selects no host.
func (f HostFilter) Empty() bool {
	return len(f.ASNs) == 0 && len(f.Prefixes) == 0 && len(f.Countries) == 0
}

// DailyHostQuery asks for the infected hosts per day of a set of networks.
type DailyHostQuery struct {
	// From and To bound the time of the events, [From, To); zero leaves
	// that side open.
	From, To time.Time
	// Filter selects the hosts.
	Filter HostFilter
	// ByASN also counts the hosts of each network.
	ByASN bool
}

// DailyHosts is one UTC day of DailyHosts.
type DailyHosts struct {
	// Day is midnight UTC.
	Day time.Time `json:"day"`
	// IPs is the number of distinct infected addresses of the filter.
	IPs int64 `json:"ips"`
	// ByASN counts them per network (DailyHostQuery.ByASN), most first,
	// then by ASN.
	ByASN []ASNHosts `json:"by_asn,omitempty"`
}

// ASNHosts is the number of infected addresses of one network.
type ASNHosts struct {
	ASN    uint32 `json:"asn"`
	ASName string `json:"as_name,omitempty"`
	IPs    int64  `json:"ips"`
}

// CityQuery asks for infected hosts per city.
type CityQuery struct {
	// From and To bound the time of the events, [From, To); zero leaves
	// that side open. (Rollup.Cities takes whole days.)
	From, To time.Time
	// Family, if set, keeps only that family (UnknownFamily: events with
	// a case and no family).
	Family string
	// Country, if set, keeps only that country (ISO code).
	Country string
	// Limit, if positive, returns only the first Limit cities.
	Limit int
}

// CityCount is the number of infected hosts of one city.
type CityCount struct {
	// Country is the ISO code, City the name the enrichment gave.
	Country string `json:"country"`
	City    string `json:"city"`
	// Latitude and Longitude are the city's position (of one of its
	// events: the enrichment gives all hosts of a city the same).
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	// IPs is the number of distinct infected source addresses.
	IPs int64 `json:"ips"`
}
