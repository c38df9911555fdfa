package api

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// ParseSpan reads a span of time as users write it: "14d", "2w", "36h",
// "90m" or any Go duration.
func ParseSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		return spanUnits(s, n, 24*time.Hour)
	}
	if n, ok := strings.CutSuffix(s, "w"); ok {
		return spanUnits(s, n, 7*24*time.Hour)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a span such as 14d, 2w or 36h", s)
	}
	return d, nil
}

func spanUnits(s, n string, unit time.Duration) (time.Duration, error) {
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 || v > 100*366 {
		return 0, fmt.Errorf("%q is not a span such as 14d, 2w or 36h", s)
	}
	return time.Duration(v) * unit, nil
}

// ParseTime reads a point in time: a date (YYYY-MM-DD, midnight UTC) or
// RFC 3339.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (2010-02-22) or an RFC 3339 time", s)
}

// checkStoreTime refuses a time the store cannot be asked about, naming
// what gave it (a parameter, the path's date): outside eventstore.MinTime..MaxTime (1678 to 2262) a query
// would fail in the driver, a 500 for the client's mistake.
func checkStoreTime(what string, t time.Time, layout string) error {
	switch {
	case t.Before(eventstore.MinTime):
		return badf("%s: %s is before %s, the earliest time the store holds", what, t.Format(layout), eventstore.MinTime.Format(time.DateOnly))
	case t.After(eventstore.MaxTime):
		return badf("%s: %s is after %s, the latest time the store holds", what, t.Format(layout), eventstore.MaxTime.Format(time.DateOnly))
	}
	return nil
}

// dimensions maps the names of ?by= to the store's dimensions.
var dimensions = map[string]eventstore.Dimension{
	"day":     eventstore.DimDay,
	"family":  eventstore.DimFamily,
	"asn":     eventstore.DimASN,
	"country": eventstore.DimCountry,
}

// ParseDimensions reads a comma-separated list such as "day,country".
func ParseDimensions(s string) ([]eventstore.Dimension, error) {
	if s == "" {
		return nil, nil
	}
	var out []eventstore.Dimension
	for _, name := range strings.Split(s, ",") {
		d, ok := dimensions[strings.TrimSpace(name)]
		if !ok {
			known := make([]string, 0, len(dimensions))
			for k := range dimensions {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("%q is not a dimension (known: %s)", name, strings.Join(known, ", "))
		}
		out = append(out, d)
	}
	return out, nil
}

// timeRange reads ?from= and ?to=; the default is the last 7 days up to now.
func timeRange(q url.Values, now time.Time) (from, to time.Time, err error) {
	to = now.UTC()
	if s := q.Get("to"); s != "" {
		if to, err = ParseTime(s); err != nil {
			return from, to, badf("parameter to: %v", err)
		}
	}
	from = to.Add(-7 * 24 * time.Hour)
	if s := q.Get("from"); s != "" {
		if from, err = ParseTime(s); err != nil {
			return from, to, badf("parameter from: %v", err)
		}
	}
	if !from.Before(to) {
		return from, to, badf("parameters from and to: from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if err := checkStoreTime("parameter from", from, time.RFC3339Nano); err != nil {
		return from, to, err
	}
	return from, to, checkStoreTime("parameter to", to, time.RFC3339Nano)
}

// HostQueryFromValues reads a unique-hosts query from URL parameters: from,
// to, by (day,family,asn,country), family, asn, country, limit and all
// (true: every source address, not only infected hosts).
func HostQueryFromValues(q url.Values, now time.Time) (eventstore.HostQuery, error) {
	var hq eventstore.HostQuery
	if err := onlyParams(q, "from", "to", "by", "family", "asn", "country", "limit", "all"); err != nil {
		return hq, err
	}
	// Infected hosts, as the dashboard and the reports count them, unless
	// all=true asks for every source address (scanners too).
	switch q.Get("all") {
	case "", "false", "0":
		hq.Infected = true
	case "true", "1":
	default:
		return hq, badf("parameter all: %q is not true or false", q.Get("all"))
	}
	var err error
	if hq.From, hq.To, err = timeRange(q, now); err != nil {
		return hq, err
	}
	if hq.GroupBy, err = ParseDimensions(q.Get("by")); err != nil {
		return hq, badf("parameter by: %v", err)
	}
	hq.Family = q.Get("family")
	if s := q.Get("asn"); s != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
		if err != nil {
			return hq, badf("parameter asn: %q is not an AS number", s)
		}
		hq.ASN = uint32(n)
	}
	if s := q.Get("country"); s != "" {
		if len(s) != 2 || strings.ToUpper(s) != s && strings.ToLower(s) != s {
			return hq, badf("parameter country: %q is not a two-letter country code", s)
		}
		hq.Country = strings.ToUpper(s)
	}
	if hq.Limit, err = intParam(q.Get("limit"), "limit"); err != nil {
		return hq, err
	}
	return hq, nil
}

// HostQueryValues is the inverse of HostQueryFromValues, for the client.
func HostQueryValues(hq eventstore.HostQuery) url.Values {
	v := url.Values{}
	v.Set("from", hq.From.UTC().Format(time.RFC3339Nano))
	v.Set("to", hq.To.UTC().Format(time.RFC3339Nano))
	if len(hq.GroupBy) > 0 {
		names := make([]string, 0, len(hq.GroupBy))
		for _, d := range hq.GroupBy {
			for name, dd := range dimensions {
				if dd == d {
					names = append(names, name)
				}
			}
		}
		v.Set("by", strings.Join(names, ","))
	}
	if hq.Family != "" {
		v.Set("family", hq.Family)
	}
	if hq.ASN != 0 {
		v.Set("asn", strconv.FormatUint(uint64(hq.ASN), 10))
	}
	if hq.Country != "" {
		v.Set("country", hq.Country)
	}
	if hq.Limit != 0 {
		v.Set("limit", strconv.Itoa(hq.Limit))
	}
	if !hq.Infected {
		v.Set("all", "true")
	}
	return v
}
