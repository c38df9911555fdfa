package report

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/scope"
)

// DailySource counts infected hosts per day; every eventstore.Reader is
// one.
type DailySource interface {
	DailyHosts(ctx context.Context, q eventstore.DailyHostQuery) ([]eventstore.DailyHosts, error)
}

// Remediation is how the infected hosts of a scope went down over a
// period: the measure of a takedown's success in a network.
//
// Its JSON (the subscribers' feed, /api/v1/trend) has the keys of the
// admin API's trend (api.Trend): the whole scope is "total".
type Remediation struct {
	// From is the first day, To the day after the last.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Scope is the whole scope: a host in two of its networks counts once.
	Scope Series `json:"total"`
	// ByASN are the scope's networks that had infected hosts in the
	// period, most hosts on the first day first, then by ASN.
	ByASN []Series `json:"by_asn"`
}

// Series is the unique infected hosts (addresses) per day of a scope or a
// network, and what they say about remediation.
type Series struct {
	// ASN and ASName name the network; 0 for the whole scope.
	ASN    uint32 `json:"asn,omitempty"`
	ASName string `json:"as_name,omitempty"`
	// Hosts has one count per day of the period, from its first day;
	// days without hosts are 0.
	Hosts []int64 `json:"hosts"`
	// Remaining7 and Remaining30 are the hosts of the 7th and 30th day
	// after the first as a share of the first day's: 0.4 is 40 % still
	// infected. -1 when the period is too short or the first day had none.
	Remaining7  float64 `json:"remaining_7d"`
	Remaining30 float64 `json:"remaining_30d"`
	// HalvedAfter is the number of days after the first until the first
	// day with at most half the first day's hosts; -1 if that did not
	// happen in the period.
	HalvedAfter int `json:"halved_after_days"`
	// HalfLife is the time in days in which the hosts halve, from a
	// least-squares fit of ln(hosts) against the day over the days with
	// hosts: an estimate of HalvedAfter before it is reached, and a rate
	// to compare networks by. -1 when fewer than two days had hosts or
	// the fit is not falling.
	HalfLife float64 `json:"half_life_days"`
}

// Trend returns the remediation of the hosts of sc over the UTC days from
// from to the day before to (to is rounded up to a whole day), per network
// too. The counts are of distinct addresses, as in the reports: a host
// that changes address every day counts every day, which a day-over-day
// ratio mostly cancels.
func Trend(ctx context.Context, src DailySource, sc scope.Scope, from, to time.Time) (*Remediation, error) {
	from = from.UTC().Truncate(24 * time.Hour)
	if t := to.UTC().Truncate(24 * time.Hour); t.Before(to.UTC()) {
		to = t.AddDate(0, 0, 1)
	} else {
		to = t
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("report: trend: period %s: want a start before an end", periodString(from, to))
	}
	days := int(to.Sub(from) / (24 * time.Hour))
	if days > 366*10 {
		return nil, fmt.Errorf("report: trend: period %s is longer than ten years", periodString(from, to))
	}
	rem := &Remediation{From: from, To: to, Scope: Series{Hosts: make([]int64, days)}}
	if !sc.Empty() {
		counts, err := src.DailyHosts(ctx, eventstore.DailyHostQuery{From: from, To: to, ByASN: true,
			Filter: eventstore.HostFilter{ASNs: sc.ASNs, Prefixes: sc.Prefixes, Countries: sc.Countries}})
		if err != nil {
			return nil, fmt.Errorf("report: trend of %s: %w", sc, err)
		}
		byASN := map[uint32]*Series{}
		for _, d := range counts {
			i := int(d.Day.Sub(from) / (24 * time.Hour))
			if i < 0 || i >= days {
				continue
			}
			rem.Scope.Hosts[i] = d.IPs
			for _, a := range d.ByASN {
				s := byASN[a.ASN]
				if s == nil {
					s = &Series{ASN: a.ASN, ASName: a.ASName, Hosts: make([]int64, days)}
					byASN[a.ASN] = s
				}
				s.Hosts[i] = a.IPs
				if s.ASName == "" {
					s.ASName = a.ASName
				}
			}
		}
		for _, s := range byASN {
			rem.ByASN = append(rem.ByASN, *s)
		}
		slices.SortFunc(rem.ByASN, func(a, b Series) int {
			if c := cmp.Compare(b.Hosts[0], a.Hosts[0]); c != 0 {
				return c
			}
			return cmp.Compare(a.ASN, b.ASN)
		})
	}
	rem.Scope.measure()
	for i := range rem.ByASN {
		rem.ByASN[i].measure()
	}
	return rem, nil
}

// measure fills in the figures of s from s.Hosts.
func (s *Series) measure() {
	s.Remaining7, s.Remaining30, s.HalvedAfter, s.HalfLife = -1, -1, -1, -1
	if len(s.Hosts) == 0 {
		return
	}
	first := s.Hosts[0]
	if first > 0 {
		if len(s.Hosts) > 7 {
			s.Remaining7 = float64(s.Hosts[7]) / float64(first)
		}
		if len(s.Hosts) > 30 {
			s.Remaining30 = float64(s.Hosts[30]) / float64(first)
		}
		for i := 1; i < len(s.Hosts); i++ {
			if 2*s.Hosts[i] <= first {
				s.HalvedAfter = i
				break
			}
		}
	}
	// Least squares of ln(hosts) = a + b·day over the days with hosts.
	var n, sx, sy, sxx, sxy float64
	for i, h := range s.Hosts {
		if h <= 0 {
			continue
		}
		x, y := float64(i), math.Log(float64(h))
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	if n < 2 {
		return
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return
	}
	if b := (n*sxy - sx*sy) / den; b < 0 {
		s.HalfLife = math.Ln2 / -b
	}
}
