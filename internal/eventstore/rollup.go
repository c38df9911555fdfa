package eventstore

import (
	"net/netip"
	"time"
)

// RefreshStats tells what a Refresh did.
type RefreshStats struct {
	// Checked is the number of days compared with the events.
	Checked int
	// Added is the number of days brought up to date with an increment;
	// Rebuilt the number rebuilt whole; Dropped the number removed (no
	// events any more, or out of the window).
	Added, Rebuilt, Dropped int
}

// Changed reports whether the refresh changed the rollup.
func (s RefreshStats) Changed() bool { return s.Added+s.Rebuilt+s.Dropped > 0 }

// SpanCount is the number of distinct infected addresses of a family over
// the last days up to a day, for each of several spans.
type SpanCount struct {
	// Family is "" for all families together (a host of two families
	// counts once).
	Family string `json:"family,omitempty"`
	// IPs[i] counts the hosts of the last Spans[i] days.
	IPs []int64 `json:"ips"`
}

// ZoneActivity is the last query of a seized zone that the rollup knows.
type ZoneActivity struct {
	// Last is the time of the newest event that names the zone.
	Last time.Time `json:"last"`
	// Queries counts its events over the rollup's days.
	Queries int64 `json:"queries"`
}

// RollupHost is one infected address of HostList.
type RollupHost struct {
	IP        netip.Addr `json:"ip"`
	Family    string     `json:"family,omitempty"`
	ASN       uint32     `json:"asn,omitempty"`
	ASName    string     `json:"as_name,omitempty"`
	Country   string     `json:"country,omitempty"`
	City      string     `json:"city,omitempty"`
	Events    int64      `json:"events"`
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  time.Time  `json:"last_seen"`
}

// HostListQuery selects the infected addresses of HostList.
type HostListQuery struct {
	// From and To bound the days as in Hosts.
	From, To time.Time
	Family   string
	ASN      uint32
	Country  string
	// Limit caps the list; 0 means 1,000.
	Limit int
}
