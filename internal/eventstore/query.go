package eventstore

import (
	"net/netip"
	"time"
)

// MinTime and MaxTime bound the times a query may name. The DuckDB engine
// keeps times as nanoseconds since 1970 in 64 bits, 1677-09-21 to
// 2262-04-11; a bound outside that is no empty answer but an error of the
// conversion, so readers check their parameters against these (round days
// inside the range) and every engine answers for any time between them.
var (
	MinTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Dimension is a key by which UniqueHosts groups its counts.
type Dimension string

// Dimensions of UniqueHosts.
const (
	DimDay     Dimension = "day"     // UTC calendar day of the event
	DimFamily  Dimension = "family"  // malware family
	DimASN     Dimension = "asn"     // network of the source address
	DimCountry Dimension = "country" // country of the source address
)

// HostQuery asks for unique hosts.
type HostQuery struct {
	// From and To bound the time of the events, [From, To). A zero From or
	// To leaves that side open.
	From, To time.Time
	// GroupBy lists the dimensions to count by, in any order; none gives
	// the totals over all events that match.
	GroupBy []Dimension
	// Family, if set, keeps only events of that family.
	Family string
	// ASN, if not 0, keeps only events from that network.
	ASN uint32
	// Country, if set, keeps only events from that country (ISO code).
	Country string
	// Infected keeps only the events of infected hosts, as the rollup, the
	// reports and the dashboard count them: those with a family or a
	// seized name's case. A scanner knocking on the sinkhole's address
	// has neither.
	Infected bool
	// Limit, if positive, returns only the first Limit rows.
	Limit int
}

// HostCount is one row of UniqueHosts. The key fields of the dimensions not
// grouped by are zero. In JSON (the API's /v1/stats/unique-hosts, the CLI's
// --json) the keys are snake_case and zero keys are left out: a row
// without "family" is of unclassified events or not grouped by family.
type HostCount struct {
	// Day is midnight UTC of the day counted (DimDay).
	Day time.Time `json:"day,omitzero"`
	// Family is the malware family (DimFamily); "" for unclassified events.
	Family string `json:"family,omitempty"`
	// ASN is the network (DimASN); 0 for unknown.
	ASN uint32 `json:"asn,omitempty"`
	// ASName is one of the names seen for ASN in the range (DimASN).
	ASName string `json:"as_name,omitempty"`
	// Country is the ISO country code (DimCountry); "" for unknown.
	Country string `json:"country,omitempty"`
	// IPs is the number of distinct source addresses.
	IPs int64 `json:"ips"`
	// Bots is the number of distinct non-empty bot ids; more than IPs when
	// several bots hide behind one NAT address.
	Bots int64 `json:"bots"`
	// Events is the number of events.
	Events int64 `json:"events"`
}

// HourQuery asks for callbacks per hour.
type HourQuery struct {
	// From and To bound the time of the events, [From, To); zero leaves
	// that side open.
	From, To time.Time
	// Family, if set, keeps only events of that family.
	Family string
}

// HourCount is one hour of CallbacksPerHour.
type HourCount struct {
	// Hour is the start of the hour, UTC.
	Hour time.Time `json:"hour"`
	// Events is the number of events in the hour.
	Events int64 `json:"events"`
	// IPs is the number of distinct source addresses in the hour.
	IPs int64 `json:"ips"`
}

// ScanQuery selects events to read back.
type ScanQuery struct {
	// From and To bound the time of the events, [From, To); zero leaves
	// that side open.
	From, To time.Time
	// Limit, if positive, stops after that many events.
	Limit int
}

// Stats describes what the store holds.
type Stats struct {
	// Events is the number of events kept.
	Events int64 `json:"events"`
	// Oldest and Newest are the times of the first and last events, zero
	// (left out of JSON) when there are none.
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
}

// Source is one distinct source of events: an address, with the family
// and the bot id its events named ("" when none).
type Source struct {
	IP     netip.Addr `json:"ip"`
	Family string     `json:"family,omitempty"`
	BotID  string     `json:"bot_id,omitempty"`
}
