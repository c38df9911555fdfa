// Package storetest is the conformance suite of event store engines: the
// embedded DuckDB engine (internal/store) runs it today, a distributed
// engine must pass the same tests tomorrow. It knows no engine: it takes a
// constructor of the interfaces of package eventstore.
//
// It covers what the readers of the store rely on: the events coming back
// as they went in (the subscribers' feed, exports), unique hosts and
// callbacks per hour (the API, the map and the demo's counts), host rows
// (the reports), daily hosts per network (the remediation trend), the
// daily rollup (the dashboard and its map), the sources of a day (the live
// counters after a restart), retention, and the writer's promises: a batch
// and its mark are stored together or not at all, a refused batch names
// its event, a cancelled append is never stored and reported failed.
//
// The expected counts of the unique-host queries are written literally,
// computed by hand from the small fixture in this file; those of the host
// rows from the fixture of hostrows.go; those of the rollup are computed
// in Go from the events of a random world (rollup.go).
package storetest

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// Engine is what the suite needs of an event store engine: its Writer and
// Reader, retention and Close. *store.Store is one.
type Engine interface {
	eventstore.Writer
	eventstore.Reader
	// DeleteBefore deletes the events older than t and returns how many.
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
	// Retain keeps the events of the UTC day of now and of the days whole
	// days before it, and deletes the older ones; days < 1 is an error.
	Retain(ctx context.Context, now time.Time, days int) (int64, error)
	// Close releases the engine; it is idempotent.
	Close() error
}

// Open returns a new, empty engine and the rollup of its events, and
// arranges the release of what it opened with t.Cleanup; Run closes the
// engine itself as well, so Close must be idempotent. The rollup takes the
// current time from now, keeps at least 5 days, and takes in at each
// Refresh every event more than a minute older than now.
type Open func(t *testing.T, now func() time.Time) (Engine, eventstore.Rollup)

// subject is what a test of the suite works on.
type subject struct {
	Engine
	rollup eventstore.Rollup
	clock  *clock
}

// clock is the rollup's now, which the tests move.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func (c *clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Run runs the suite, each test on an engine of its own.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *subject)
	}{
		{"RoundTrip", engineOnly(testRoundTrip)},
		{"ScanRangeAndLimit", engineOnly(testScanRange)},
		{"UniqueHosts", engineOnly(testUniqueHosts)},
		{"UniqueHostsInfected", engineOnly(testUniqueHostsInfected)},
		{"CallbacksPerHour", engineOnly(testCallbacksPerHour)},
		{"Retention", engineOnly(testRetention)},
		{"RejectBadBatch", engineOnly(testRejectBadBatch)},
		{"Empty", engineOnly(testEmpty)},
		{"AppendMarked", engineOnly(testAppendMarked)},
		{"AppendMarkedCancelled", engineOnly(testAppendMarkedCancelled)},
		{"Sources", engineOnly(testSources)},
		{"HostRows", engineOnly(testHostRows)},
		{"HostRowsOtherPorts", engineOnly(testHostRowsOtherPorts)},
		{"HostRowsSnapshot", engineOnly(testHostRowsSnapshot)},
		{"DailyHosts", engineOnly(testDailyHosts)},
		{"Rollup", testRollup},
		{"RollupEmpty", testRollupEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{}
			e, r := open(t, c.Now)
			t.Cleanup(func() {
				if err := e.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tt.fn(t, &subject{Engine: e, rollup: r, clock: c})
		})
	}
}

// engineOnly adapts a test of the engine alone.
func engineOnly(fn func(t *testing.T, b Engine)) func(t *testing.T, s *subject) {
	return func(t *testing.T, s *subject) { fn(t, s.Engine) }
}

// The fixture: three days, two families, three networks, a
// NAT address with two bots, events without bot id, one IPv6 host, and one
// event a nanosecond before midnight.
var (
	d1 = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	d2 = d1.AddDate(0, 0, 1)
	d3 = d1.AddDate(0, 0, 2)
)

const (
	asAlpha = 64500 // DE
	asBeta  = 64501 // FR
	asGamma = 64502 // DE
)

func ev(at time.Time, ip, family, bot string, asn uint32) event.Event {
	names := map[uint32]string{asAlpha: "ALPHA", asBeta: "BETA", asGamma: "GAMMA"}
	cc := "DE"
	if asn == asBeta {
		cc = "FR"
	}
	name := names[asn]
	return event.Event{
		Time:        at,
		Protocol:    event.ProtoHTTP,
		Transport:   event.TransportTCP,
		SrcIP:       netip.MustParseAddr(ip),
		DstIP:       netip.MustParseAddr("192.0.2.53"),
		DstPort:     80,
		Family:      family,
		BotID:       bot,
		ASN:         asn,
		ASName:      name,
		CountryCode: cc,
	}
}

func hm(day time.Time, h, m int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// Fixture returns the 15 events of the hand-computed fixture, numbered 1 to
// 15 in the comments, in time order.
func Fixture() []event.Event {
	return []event.Event{
		ev(hm(d1, 10, 0), "10.0.0.1", "waledac", "a1", asAlpha),              // 1
		ev(hm(d1, 10, 30), "10.0.0.1", "waledac", "a1", asAlpha),             // 2
		ev(hm(d1, 11, 0), "10.0.0.2", "waledac", "a2", asAlpha),              // 3
		ev(hm(d1, 11, 15), "10.0.0.2", "waledac", "a3", asAlpha),             // 4: NAT, second bot
		ev(hm(d1, 12, 0), "10.1.0.1", "kelihos", "", asBeta),                 // 5
		ev(hm(d1, 12, 5), "10.2.0.1", "waledac", "b1", asGamma),              // 6
		ev(hm(d2, 9, 0), "10.0.0.1", "waledac", "a1", asAlpha),               // 7
		ev(hm(d2, 9, 10), "10.1.0.1", "kelihos", "", asBeta),                 // 8
		ev(hm(d2, 9, 20), "10.1.0.2", "kelihos", "k1", asBeta),               // 9
		ev(hm(d2, 9, 40), "10.2.0.1", "waledac", "b1", asGamma),              // 10
		ev(d3.Add(-time.Nanosecond), "2001:db8::1", "kelihos", "k2", asBeta), // 11
		ev(d3, "10.0.0.2", "waledac", "a2", asAlpha),                         // 12: midnight sharp
		ev(hm(d3, 5, 0), "10.0.0.2", "waledac", "a3", asAlpha),               // 13
		ev(hm(d3, 5, 30), "10.3.0.1", "waledac", "", asGamma),                // 14
		ev(hm(d3, 6, 0), "10.1.0.1", "kelihos", "", asBeta),                  // 15
	}
}

func load(t *testing.T, b Engine, evs []event.Event) {
	t.Helper()
	if err := b.Append(t.Context(), evs); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func scanAll(t *testing.T, b Engine, q eventstore.ScanQuery) []event.Event {
	t.Helper()
	var got []event.Event
	err := b.Scan(t.Context(), q, func(e *event.Event) error {
		got = append(got, *e)
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return got
}

// full returns an event with every field set.
func full(i int) event.Event {
	return event.Event{
		Time:            time.Date(2024, 5, 1, 12, 0, i, 123456789, time.UTC),
		Sensor:          "sink-ams-1",
		Protocol:        event.ProtoHTTPS,
		Transport:       event.TransportTCP,
		SrcIP:           netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}),
		SrcPort:         uint16(40000 + i),
		DstIP:           netip.MustParseAddr("2001:db8:53::1"),
		DstPort:         443,
		Domain:          "c2.bad.example",
		Zone:            "bad.example",
		Case:            "case-2024-17",
		Family:          "waledac",
		Tag:             "v2/beta",
		BotID:           "bot-" + string(rune('a'+i)),
		HTTPMethod:      "POST",
		HTTPPath:        "/index.php?a=1&b=ü",
		HTTPUserAgent:   "Mozilla/4.0 (compatible; MSIE 7.0)",
		TLSVersion:      "1.3",
		TLSCipher:       "TLS_AES_128_GCM_SHA256",
		TLSFingerprint:  "t13d1516h2_8daaf6152771_02713d6af862",
		DNSQType:        "TYPE65534",
		DNSRcode:        "NOERROR",
		DNSDO:           true,
		DNSClientSubnet: "198.51.100.0/24",
		Malformed:       true,
		Bytes:           int64(1000 + i),
		PayloadSHA256:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		PayloadHead:     []byte{0, 1, 2, 0xff, 'a', byte(i)},
		ASN:             4294967295 - uint32(i),
		ASName:          "EXAMPLE-AS Example Networks, Inc.",
		CountryCode:     "NL",
		Region:          "North Holland",
		City:            "Amsterdam",
		Latitude:        52.374,
		Longitude:       -4.8897,
		HTTPReferer:     "http://c2.bad.example/",
		HTTPForwardedBy: "203.0.113.9",
		HTTPContentType: "application/x-www-form-urlencoded",
		TLSALPN:         "h2,http/1.1",
		SMTPHelo:        "bot.example",
		SMTPFrom:        "x@bad.example",
		SMTPRcptDomains: "example.net,example.org",
		SMTPRcptCount:   uint32(3 + i),
		SMTPSubject:     "Ünïcødé subject",
		SMTPMessageID:   "<1@bad.example>",
		Error:           "body too large",
	}
}

func testRoundTrip(t *testing.T, b Engine) {
	want := []event.Event{full(0), full(1), full(2)}
	want[1].SrcIP = netip.MustParseAddr("2001:db8:ffff:1:2:3:4:5")
	want[2] = event.Event{ // only what is required
		Time:  time.Date(2024, 5, 1, 12, 0, 9, 1, time.UTC),
		SrcIP: netip.MustParseAddr("::1"),
	}
	// The caller's location is not kept: times come back in UTC.
	in := append([]event.Event(nil), want...)
	in[0].Time = in[0].Time.In(time.FixedZone("CEST", 2*3600))
	load(t, b, in)
	got := scanAll(t, b, eventstore.ScanQuery{})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scan after append:\n got %+v\nwant %+v", got, want)
	}

	// An IPv4-mapped address is the IPv4 host.
	mapped := full(7)
	mapped.SrcIP = netip.MustParseAddr("::ffff:198.51.100.7")
	load(t, b, []event.Event{mapped})
	got = scanAll(t, b, eventstore.ScanQuery{From: mapped.Time, Limit: 1})
	if len(got) != 1 || got[0].SrcIP != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("mapped address came back as %v", got)
	}
}

func testScanRange(t *testing.T, b Engine) {
	fx := Fixture()
	load(t, b, fx)
	count := func(q eventstore.ScanQuery) int { return len(scanAll(t, b, q)) }
	for _, tc := range []struct {
		name string
		q    eventstore.ScanQuery
		want int
	}{
		{"all", eventstore.ScanQuery{}, 15},
		{"day 2", eventstore.ScanQuery{From: d2, To: d3}, 5},
		{"from a nanosecond before midnight", eventstore.ScanQuery{From: d3.Add(-time.Nanosecond)}, 5},
		{"to a nanosecond before midnight", eventstore.ScanQuery{To: d3.Add(-time.Nanosecond)}, 10},
		{"limit", eventstore.ScanQuery{From: d2, Limit: 3}, 3},
	} {
		if got := count(tc.q); got != tc.want {
			t.Errorf("%s: %d events, want %d", tc.name, got, tc.want)
		}
	}
	got := scanAll(t, b, eventstore.ScanQuery{From: d2, Limit: 2})
	if !reflect.DeepEqual(got, fx[6:8]) {
		t.Errorf("first two of day 2:\n got %+v\nwant %+v", got, fx[6:8])
	}
	// fn's error stops the scan and comes back as it is.
	stop := errors.New("stop")
	calls := 0
	err := b.Scan(t.Context(), eventstore.ScanQuery{}, func(*event.Event) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("scan with a failing fn: %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func testUniqueHosts(t *testing.T, b Engine) {
	load(t, b, Fixture())
	type hc = eventstore.HostCount
	for _, tc := range []struct {
		name string
		q    eventstore.HostQuery
		want []hc
	}{
		{"totals", eventstore.HostQuery{}, []hc{{IPs: 7, Bots: 6, Events: 15}}},
		{"by family", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimFamily}}, []hc{
			{Family: "waledac", IPs: 4, Bots: 4, Events: 10},
			{Family: "kelihos", IPs: 3, Bots: 2, Events: 5},
		}},
		{"by day", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimDay}}, []hc{
			{Day: d2, IPs: 5, Bots: 4, Events: 5},
			{Day: d1, IPs: 4, Bots: 4, Events: 6},
			{Day: d3, IPs: 3, Bots: 2, Events: 4},
		}},
		{"by asn, ties by asn", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimASN}}, []hc{
			{ASN: asBeta, ASName: "BETA", IPs: 3, Bots: 2, Events: 5},
			{ASN: asAlpha, ASName: "ALPHA", IPs: 2, Bots: 3, Events: 7},
			{ASN: asGamma, ASName: "GAMMA", IPs: 2, Bots: 1, Events: 3},
		}},
		{"by country", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimCountry}}, []hc{
			{Country: "DE", IPs: 4, Bots: 4, Events: 10},
			{Country: "FR", IPs: 3, Bots: 2, Events: 5},
		}},
		{"waledac by country and day", eventstore.HostQuery{
			GroupBy: []eventstore.Dimension{eventstore.DimCountry, eventstore.DimDay}, Family: "waledac",
		}, []hc{
			{Day: d1, Country: "DE", IPs: 3, Bots: 4, Events: 5},
			{Day: d2, Country: "DE", IPs: 2, Bots: 2, Events: 2},
			{Day: d3, Country: "DE", IPs: 2, Bots: 2, Events: 3},
		}},
		{"day 2 half-open", eventstore.HostQuery{From: d2, To: d3}, []hc{{IPs: 5, Bots: 4, Events: 5}}},
		{"asn filter by day", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimDay}, ASN: asBeta}, []hc{
			{Day: d2, IPs: 3, Bots: 2, Events: 3},
			{Day: d1, IPs: 1, Bots: 0, Events: 1},
			{Day: d3, IPs: 1, Bots: 0, Events: 1},
		}},
		{"country filter", eventstore.HostQuery{Country: "FR"}, []hc{{IPs: 3, Bots: 2, Events: 5}}},
		{"limit", eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimASN}, Limit: 1}, []hc{
			{ASN: asBeta, ASName: "BETA", IPs: 3, Bots: 2, Events: 5},
		}},
		{"all dimensions, day 3", eventstore.HostQuery{
			From: d3, GroupBy: []eventstore.Dimension{eventstore.DimDay, eventstore.DimFamily, eventstore.DimASN, eventstore.DimCountry},
		}, []hc{
			{Day: d3, Family: "kelihos", ASN: asBeta, ASName: "BETA", Country: "FR", IPs: 1, Bots: 0, Events: 1},
			{Day: d3, Family: "waledac", ASN: asAlpha, ASName: "ALPHA", Country: "DE", IPs: 1, Bots: 2, Events: 2},
			{Day: d3, Family: "waledac", ASN: asGamma, ASName: "GAMMA", Country: "DE", IPs: 1, Bots: 0, Events: 1},
		}},
	} {
		got, err := b.UniqueHosts(t.Context(), tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
	if _, err := b.UniqueHosts(t.Context(), eventstore.HostQuery{GroupBy: []eventstore.Dimension{"city"}}); err == nil {
		t.Error("unknown dimension: no error")
	}
}

func testCallbacksPerHour(t *testing.T, b Engine) {
	load(t, b, Fixture())
	h := func(hour int) time.Time { return d1.Add(time.Duration(hour) * time.Hour) }
	for _, tc := range []struct {
		name string
		q    eventstore.HourQuery
		want []eventstore.HourCount
	}{
		{"day 1", eventstore.HourQuery{From: d1, To: d2}, []eventstore.HourCount{
			{Hour: h(10), Events: 2, IPs: 1},
			{Hour: h(11), Events: 2, IPs: 1},
			{Hour: h(12), Events: 2, IPs: 2},
		}},
		{"day 1 waledac", eventstore.HourQuery{From: d1, To: d2, Family: "waledac"}, []eventstore.HourCount{
			{Hour: h(10), Events: 2, IPs: 1},
			{Hour: h(11), Events: 2, IPs: 1},
			{Hour: h(12), Events: 1, IPs: 1},
		}},
		{"kelihos from day 2", eventstore.HourQuery{From: d2, Family: "kelihos"}, []eventstore.HourCount{
			{Hour: h(24 + 9), Events: 2, IPs: 2},
			{Hour: h(24 + 23), Events: 1, IPs: 1},
			{Hour: h(48 + 6), Events: 1, IPs: 1},
		}},
	} {
		got, err := b.CallbacksPerHour(t.Context(), tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func testRetention(t *testing.T, b Engine) {
	fx := Fixture()
	load(t, b, fx)
	ctx := t.Context()
	stats := func(want eventstore.Stats) {
		t.Helper()
		got, err := b.Stats(ctx)
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stats: got %+v, want %+v", got, want)
		}
	}
	stats(eventstore.Stats{Events: 15, Oldest: fx[0].Time, Newest: fx[14].Time})

	if _, err := b.Retain(ctx, hm(d3, 15, 0), 0); err == nil {
		t.Error("retain 0 days: no error")
	}
	// Keep day 3 and one day before it: day 1 goes.
	n, err := b.Retain(ctx, hm(d3, 15, 0), 1)
	if err != nil || n != 6 {
		t.Errorf("retain 1 day: deleted %d (%v), want 6", n, err)
	}
	stats(eventstore.Stats{Events: 9, Oldest: fx[6].Time, Newest: fx[14].Time})
	got, err := b.UniqueHosts(ctx, eventstore.HostQuery{})
	if want := []eventstore.HostCount{{IPs: 7, Bots: 6, Events: 9}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("unique hosts after retention: %+v (%v), want %+v", got, err, want)
	}

	// Midnight of day 3 is kept, the nanosecond before it goes.
	n, err = b.DeleteBefore(ctx, d3)
	if err != nil || n != 5 {
		t.Errorf("delete before day 3: deleted %d (%v), want 5", n, err)
	}
	stats(eventstore.Stats{Events: 4, Oldest: d3, Newest: fx[14].Time})
	n, err = b.DeleteBefore(ctx, d3)
	if err != nil || n != 0 {
		t.Errorf("delete again: deleted %d (%v), want 0", n, err)
	}
	// Newer events still go in.
	load(t, b, fx[:1])
	stats(eventstore.Stats{Events: 5, Oldest: fx[0].Time, Newest: fx[14].Time})
}

func testRejectBadBatch(t *testing.T, b Engine) {
	fx := Fixture()
	load(t, b, fx[:5])
	before := scanAll(t, b, eventstore.ScanQuery{})
	for _, tc := range []struct {
		name   string
		spoil  func(e *event.Event)
		bad    int
		reason string
	}{
		{"no source ip", func(e *event.Event) { e.SrcIP = netip.Addr{} }, 3, "event 3: invalid source ip"},
		{"no time", func(e *event.Event) { e.Time = time.Time{} }, 0, "event 0: missing time"},
		{"bad protocol", func(e *event.Event) { e.Protocol = "gopher" }, 9, `event 9: invalid protocol "gopher"`},
		{"bad country", func(e *event.Event) { e.CountryCode = "de" }, 2, `event 2: invalid country code "de"`},
		{"time out of range", func(e *event.Event) { e.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, 1, "event 1: time"},
	} {
		batch := append([]event.Event(nil), fx[5:]...)
		tc.spoil(&batch[tc.bad])
		err := b.Append(t.Context(), batch)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.reason)
		}
		// The pipeline sets the event aside by this index.
		var ee *eventstore.EventError
		if !errors.As(err, &ee) || ee.Index != tc.bad {
			t.Errorf("%s: error %q is not an EventError of event %d", tc.name, err, tc.bad)
		}
	}
	if after := scanAll(t, b, eventstore.ScanQuery{}); !reflect.DeepEqual(after, before) {
		t.Errorf("store changed by refused batches: %d events, want %d", len(after), len(before))
	}
	// A good batch still goes in afterwards.
	load(t, b, fx[5:])
	if st, err := b.Stats(t.Context()); err != nil || st.Events != 15 {
		t.Errorf("after a good batch: %+v (%v), want 15 events", st, err)
	}
}

func testEmpty(t *testing.T, b Engine) {
	ctx := t.Context()
	if err := b.Append(ctx, nil); err != nil {
		t.Errorf("append nothing: %v", err)
	}
	st, err := b.Stats(ctx)
	if err != nil || st != (eventstore.Stats{}) {
		t.Errorf("stats of empty store: %+v (%v)", st, err)
	}
	got, err := b.UniqueHosts(ctx, eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimDay}})
	if err != nil || len(got) != 0 {
		t.Errorf("unique hosts by day of empty store: %+v (%v)", got, err)
	}
	got, err = b.UniqueHosts(ctx, eventstore.HostQuery{})
	if want := []eventstore.HostCount{{}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("totals of empty store: %+v (%v), want %+v", got, err, want)
	}
	hours, err := b.CallbacksPerHour(ctx, eventstore.HourQuery{})
	if err != nil || len(hours) != 0 {
		t.Errorf("hours of empty store: %+v (%v)", hours, err)
	}
}

// testUniqueHostsInfected: Infected leaves out the events with neither a
// family nor a case (a scanner), which the rollup and reports never count.
func testUniqueHostsInfected(t *testing.T, b Engine) {
	t0 := time.Date(2010, 2, 25, 10, 0, 0, 0, time.UTC)
	load(t, b, []event.Event{
		{Time: t0, SrcIP: netip.MustParseAddr("192.0.2.1"), Protocol: event.ProtoHTTP, Family: "waledac"},
		{Time: t0, SrcIP: netip.MustParseAddr("192.0.2.2"), Protocol: event.ProtoDNS, Case: "c1", Domain: "x.seized.example"},
		{Time: t0, SrcIP: netip.MustParseAddr("192.0.2.3"), Protocol: event.ProtoTCP}, // a scanner
	})
	for _, c := range []struct {
		infected bool
		ips      int64
	}{{false, 3}, {true, 2}} {
		rows, err := b.UniqueHosts(t.Context(), eventstore.HostQuery{Infected: c.infected})
		if err != nil || len(rows) != 1 || rows[0].IPs != c.ips {
			t.Errorf("Infected %v: %+v %v, want %d addresses", c.infected, rows, err, c.ips)
		}
	}
}

// testSources: each distinct (address, family, bot id) of a range once,
// IPv6 included.
func testSources(t *testing.T, b Engine) {
	t0 := time.Date(2010, 2, 25, 10, 0, 0, 0, time.UTC)
	ev := func(at time.Time, ip, family, bot string) event.Event {
		return event.Event{Time: at, SrcIP: netip.MustParseAddr(ip), Protocol: event.ProtoHTTP, Family: family, BotID: bot}
	}
	load(t, b, []event.Event{
		ev(t0, "192.0.2.1", "waledac", "a"), ev(t0.Add(time.Hour), "192.0.2.1", "waledac", "a"),
		ev(t0, "192.0.2.1", "waledac", "b"), ev(t0, "192.0.2.2", "", ""), ev(t0, "2001:db8::7", "conficker", ""),
		ev(t0.Add(-time.Hour), "192.0.2.9", "waledac", ""), // before the range
	})
	var got []string
	err := b.Sources(t.Context(), t0, t0.Add(24*time.Hour), func(src eventstore.Source) error {
		got = append(got, src.IP.String()+" "+src.Family+" "+src.BotID)
		return nil
	})
	slices.Sort(got)
	if want := []string{"192.0.2.1 waledac a", "192.0.2.1 waledac b", "192.0.2.2  ", "2001:db8::7 conficker "}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Sources = %q, %v; want %q", got, err, want)
	}
	// fn's error stops it and comes back as it is.
	stop := errors.New("stop")
	if err := b.Sources(t.Context(), t0, t0.Add(24*time.Hour), func(eventstore.Source) error { return stop }); err != stop {
		t.Errorf("Sources with a failing fn: %v, want %v", err, stop)
	}
}
