package eventstore

import (
	"context"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// Writer takes in batches of events: the pipeline's store writer calls
// it, storing each batch with the spool's position as its mark, so that
// every spooled event is stored exactly once. A batch is all or nothing.
type Writer interface {
	// Append stores a batch of events. Every event is checked first
	// (Check), and a batch with an invalid event is refused whole with an
	// *EventError that names its index; nothing of it is stored.
	Append(ctx context.Context, batch []event.Event) error
	// AppendMarked is Append that also sets the mark of source to mark in
	// the same transaction: either the batch and the mark are both
	// stored, or neither is. An empty source sets no mark; a batch may be
	// empty, to move the mark alone. An error that comes from the
	// engine's state and not from the batch is a *TransientError: when
	// it is reported, nothing of the batch is stored.
	AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error
	// Mark returns the mark of source that AppendMarked stored last, or
	// nil when it has none.
	Mark(ctx context.Context, source string) ([]byte, error)
}

// Reader answers the questions asked of the stored events. Its methods
// are safe for concurrent use, also beside a Writer's appends; each sees
// the events committed when it starts.
type Reader interface {
	// UniqueHosts counts distinct source addresses, bot ids and events,
	// grouped by the dimensions of q, ordered by IPs descending and then
	// by the keys in the order Day, Family, ASN, Country. Totals over no
	// events are one row of zeros; grouped queries over none give no
	// rows. An unknown dimension is an error.
	UniqueHosts(ctx context.Context, q HostQuery) ([]HostCount, error)
	// CallbacksPerHour counts events and distinct source addresses per
	// UTC hour, in time order. Hours without events are left out.
	CallbacksPerHour(ctx context.Context, q HourQuery) ([]HourCount, error)
	// Scan calls fn with each event of q in time order. The event is
	// reused between calls: fn must copy what it keeps. Scan stops at the
	// first error of fn and returns it as it is. Times come back in UTC.
	Scan(ctx context.Context, q ScanQuery, fn func(*event.Event) error) error
	// Stats returns the number of events and their time span.
	Stats(ctx context.Context) (Stats, error)
	// Sources calls fn with each distinct source (address, family, bot
	// id) of the events of [from, to), in no order, and stops at fn's
	// first error.
	Sources(ctx context.Context, from, to time.Time, fn func(Source) error) error
	// HostRows calls fn with one HostRow per source address and family of
	// the infected hosts of q, in the order of the address (IPv4
	// numerically, then IPv6 numerically) and by family for one address.
	// The row and its DstPorts are reused between calls: fn must copy
	// what it keeps. HostRows reads one snapshot of the events and stops
	// at the first error of fn, which it returns as it is.
	HostRows(ctx context.Context, q HostRowQuery, fn func(*HostRow) error) error
	// DailyHosts counts the distinct addresses of infected hosts that
	// q.Filter selects, per UTC day, and per network if asked. Days
	// without hosts are left out.
	DailyHosts(ctx context.Context, q DailyHostQuery) ([]DailyHosts, error)
	// HostsPerCity counts the distinct addresses of infected hosts per
	// country and city, most first, then by country and city. Events of
	// no known city are left out.
	HostsPerCity(ctx context.Context, q CityQuery) ([]CityCount, error)
}

// Rollup is the daily rollup of the infected hosts of the events, which
// the dashboard reads: it answers for whole UTC days of a window that
// ends today, and takes in new events when it is refreshed. Its counts
// equal those of the Reader over the same days.
type Rollup interface {
	// Refresh brings the rollup up to date with the events; full compares
	// every day of the window, not only today and yesterday. Its stats
	// say whether anything changed.
	Refresh(ctx context.Context, full bool) (RefreshStats, error)
	// AsOf is the time up to which the last Refresh took in events; zero
	// before the first.
	AsOf() time.Time
	// Days is how many UTC days, up to today, the rollup keeps.
	Days() int
	// Hosts counts distinct infected addresses and their events as
	// UniqueHosts with Infected does, over whole days (From's day
	// included, To's day included unless To is midnight); Bots is 0, and
	// a host with a case and no family counts as UnknownFamily.
	Hosts(ctx context.Context, q HostQuery) ([]HostCount, error)
	// Spans counts, per family (by name, after the row of all families
	// together, Family ""), the distinct infected addresses of the spans
	// of days that end with the UTC day of end. family, if set, keeps
	// only that family.
	Spans(ctx context.Context, end time.Time, spans []int, family string) ([]SpanCount, error)
	// Hours returns the callbacks of infected hosts per UTC hour, in time
	// order; IPs is 0. Hours without callbacks are left out.
	Hours(ctx context.Context, q HourQuery) ([]HourCount, error)
	// Cities is HostsPerCity over whole days.
	Cities(ctx context.Context, q CityQuery) ([]CityCount, error)
	// RollupDays returns the UTC days the rollup holds, oldest first.
	RollupDays(ctx context.Context) ([]time.Time, error)
	// Families returns the families of the rollup's hosts, by name.
	Families(ctx context.Context) ([]string, error)
	// DailyByASN is DailyHosts of the networks asns, one list per
	// network with hosts, over whole days.
	DailyByASN(ctx context.Context, from, to time.Time, asns []uint32) (map[uint32][]DailyHosts, error)
	// Zones returns, for each of zones that had events in the rollup's
	// days, the time of its newest event and the number of its events.
	Zones(ctx context.Context, zones []string) (map[string]ZoneActivity, error)
	// HostList returns infected addresses of q, most events first: one
	// row per address, family, network and country.
	HostList(ctx context.Context, q HostListQuery) ([]RollupHost, error)
}
