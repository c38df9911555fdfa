// Package report makes the reports that network owners and CERTs receive
// about the infected hosts in their networks: per subscriber and day, in
// the formats their abuse desks parse (CSV with Shadowserver's column names,
// IntelMQ JSON lines, X-ARF mails, STIX 2.1 bundles), their callbacks one
// by one as Shadowserver's sinkhole event reports (WriteSinkholeEvents),
// and the remediation trend of their networks.
//
// Build reads a day's infected hosts from the event store once and sorts
// them into every subscriber's report with a scope.Index, holding the hosts
// in a compact table that the reports share; a Writer then writes one
// report in one format to an io.Writer.
package report

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/scope"
)

// Subscriber is the receiver of a report, as far as the report needs to
// know: the composition package maps the registry's subscribers onto it.
type Subscriber struct {
	// Name is the subscriber's handle, e.g. "isp-a": it names the report
	// in ids and file names.
	Name string
	// Org is the organisation's display name, for the texts.
	Org string
	// Scope is what the subscriber sees: its hosts and no others.
	Scope scope.Scope
	// TLP is the Traffic Light Protocol 2.0 label of its reports: CLEAR,
	// GREEN, AMBER, AMBER+STRICT or RED. Empty is AMBER, and WHITE (TLP
	// 1.0) is CLEAR: a list of infected hosts is personal data.
	TLP string
}

// Source gives the infected hosts of a time range, one row per address and
// family; every eventstore.Reader is one.
type Source interface {
	HostRows(ctx context.Context, q eventstore.HostRowQuery, fn func(*eventstore.HostRow) error) error
}

// Set is the reports of one period for many subscribers. Its reports share
// the rows of one table; a Set is safe for concurrent reading.
type Set struct {
	// From and To are the period, [From, To).
	From, To time.Time
	// Hosts is the number of rows read from the source, in anybody's scope
	// or not; Kept is the number in at least one scope, which the Set holds.
	Hosts, Kept int

	subs  []Subscriber
	t     *table
	lists [][]uint32
}

// Build reads the infected hosts of [from, to) from src once and gives each
// subscriber the rows in its scope, in the order of src (the store's:
// by address). Rows in no scope are not kept.
//
// Memory: a row in some scope costs 48 bytes in the shared table (outside
// the Go heap on Unix: see mapRows) and 4 bytes per subscriber that sees
// it; strings (families, names, networks, places) are held once.
func Build(ctx context.Context, src Source, subs []Subscriber, from, to time.Time) (*Set, error) {
	if err := checkPeriod(from, to); err != nil {
		return nil, err
	}
	scopes := make([]scope.Scope, len(subs))
	for i, s := range subs {
		scopes[i] = s.Scope
	}
	x := scope.NewIndex(scopes)
	set := &Set{From: from.UTC(), To: to.UTC(), subs: subs, t: newTable(from), lists: make([][]uint32, len(subs))}
	var match []int32
	err := src.HostRows(ctx, eventstore.HostRowQuery{From: from, To: to}, func(r *eventstore.HostRow) error {
		set.Hosts++
		if set.Hosts&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		match = x.Match(match[:0], r.IP, r.ASN, r.Country)
		if len(match) == 0 {
			return nil
		}
		idx, err := set.t.add(r)
		if err != nil {
			return err
		}
		set.Kept++
		for _, m := range match {
			set.lists[m] = append(set.lists[m], idx)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report: reading hosts of %s: %w", periodString(from, to), err)
	}
	return set, nil
}

// Len is the number of subscribers, and of reports.
func (s *Set) Len() int { return len(s.subs) }

// Report returns the report of the i-th subscriber given to Build.
func (s *Set) Report(i int) *Report {
	return &Report{Subscriber: s.subs[i], From: s.From, To: s.To, t: s.t, rows: s.lists[i]}
}

// All yields every report, in the order of the subscribers.
func (s *Set) All() iter.Seq[*Report] {
	return func(yield func(*Report) bool) {
		for i := range s.subs {
			if !yield(s.Report(i)) {
				return
			}
		}
	}
}

// Report is one subscriber's infected hosts of one period.
type Report struct {
	Subscriber Subscriber
	// From and To are the period, [From, To).
	From, To time.Time

	t    *table
	rows []uint32
}

// NewReport makes the report of sub over rows, for tests and for callers
// that hold a few rows: it keeps the rows in sub's scope, in their order.
func NewReport(sub Subscriber, from, to time.Time, rows []eventstore.HostRow) (*Report, error) {
	if err := checkPeriod(from, to); err != nil {
		return nil, err
	}
	r := &Report{Subscriber: sub, From: from.UTC(), To: to.UTC(), t: newTable(from)}
	for i := range rows {
		if !sub.Scope.Contains(rows[i].IP, rows[i].ASN, rows[i].Country) {
			continue
		}
		idx, err := r.t.add(&rows[i])
		if err != nil {
			return nil, fmt.Errorf("report: row %d: %w", i, err)
		}
		r.rows = append(r.rows, idx)
	}
	return r, nil
}

// Len is the number of rows: infected hosts (address and family).
func (r *Report) Len() int { return len(r.rows) }

// Rows yields the report's rows in order. The row is reused between
// iterations: copy what you keep. Times are whole seconds, coordinates
// have six decimals.
func (r *Report) Rows() iter.Seq[*eventstore.HostRow] {
	return func(yield func(*eventstore.HostRow) bool) {
		var row eventstore.HostRow
		for _, idx := range r.rows {
			r.t.get(idx, &row)
			if !yield(&row) {
				return
			}
		}
	}
}

// TLP is the report's TLP 2.0 label (see Subscriber.TLP), upper case.
func (r *Report) TLP() string { return normalTLP(r.Subscriber.TLP) }

// normalTLP maps a TLP label to TLP 2.0, upper case, without "TLP:".
func normalTLP(s string) string {
	s = strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "TLP:")))
	switch s {
	case "", "AMBER":
		return "AMBER"
	case "WHITE", "CLEAR":
		return "CLEAR"
	case "GREEN", "AMBER+STRICT", "RED":
		return s
	}
	return "AMBER" // unknown labels are treated as the restrictive default
}

func checkPeriod(from, to time.Time) error {
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return fmt.Errorf("report: period %s: want a start before an end", periodString(from, to))
	}
	if to.Sub(from) > maxPeriod {
		return fmt.Errorf("report: period %s is longer than %d days", periodString(from, to), int(maxPeriod/(24*time.Hour)))
	}
	return nil
}

// maxPeriod bounds a period so that second offsets fit the table's 32 bits.
const maxPeriod = 366 * 24 * time.Hour * 100

func periodString(from, to time.Time) string {
	return from.UTC().Format(time.RFC3339) + "/" + to.UTC().Format(time.RFC3339)
}

// Day returns the UTC day of t as a period: midnight and the midnight after.
func Day(t time.Time) (from, to time.Time) {
	from = t.UTC().Truncate(24 * time.Hour)
	return from, from.AddDate(0, 0, 1)
}

// errTooMany reports a table full beyond its 32-bit indexes.
var errTooMany = errors.New("more than 4,294,967,295 rows")

// sourceType names an address family for X-ARF and STIX.
func sourceType(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}
