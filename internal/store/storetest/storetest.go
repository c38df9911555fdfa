// Package storetest is the conformance suite of event store engines: the
// embedded DuckDB store runs it today, a distributed engine must pass the
// same tests tomorrow.
//
// The expected counts of the unique-host queries are written literally,
// computed by hand from the small fixture in this file.
package storetest

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/store"
)

// Backend is what an event store engine offers; *store.Store is one.
type Backend interface {
	Append(ctx context.Context, batch []event.Event) error
	UniqueHosts(ctx context.Context, q store.HostQuery) ([]store.HostCount, error)
	CallbacksPerHour(ctx context.Context, q store.HourQuery) ([]store.HourCount, error)
	Scan(ctx context.Context, q store.ScanQuery, fn func(*event.Event) error) error
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
	Retain(ctx context.Context, now time.Time, days int) (int64, error)
	Stats(ctx context.Context) (store.Stats, error)
	Close() error
}

// Run runs the suite. open must return a new, empty backend for each call
// and arrange the release of what it opened with t.Cleanup; Run closes the
// backend itself as well, so Close must be idempotent.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"ScanRangeAndLimit", testScanRange},
		{"UniqueHosts", testUniqueHosts},
		{"CallbacksPerHour", testCallbacksPerHour},
		{"Retention", testRetention},
		{"RejectBadBatch", testRejectBadBatch},
		{"Empty", testEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := open(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tt.fn(t, b)
		})
	}
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

func load(t *testing.T, b Backend, evs []event.Event) {
	t.Helper()
	if err := b.Append(t.Context(), evs); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func scanAll(t *testing.T, b Backend, q store.ScanQuery) []event.Event {
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

func testRoundTrip(t *testing.T, b Backend) {
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
	got := scanAll(t, b, store.ScanQuery{})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scan after append:\n got %+v\nwant %+v", got, want)
	}

	// An IPv4-mapped address is the IPv4 host.
	mapped := full(7)
	mapped.SrcIP = netip.MustParseAddr("::ffff:198.51.100.7")
	load(t, b, []event.Event{mapped})
	got = scanAll(t, b, store.ScanQuery{From: mapped.Time, Limit: 1})
	if len(got) != 1 || got[0].SrcIP != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("mapped address came back as %v", got)
	}
}

func testScanRange(t *testing.T, b Backend) {
	fx := Fixture()
	load(t, b, fx)
	count := func(q store.ScanQuery) int { return len(scanAll(t, b, q)) }
	for _, tc := range []struct {
		name string
		q    store.ScanQuery
		want int
	}{
		{"all", store.ScanQuery{}, 15},
		{"day 2", store.ScanQuery{From: d2, To: d3}, 5},
		{"from a nanosecond before midnight", store.ScanQuery{From: d3.Add(-time.Nanosecond)}, 5},
		{"to a nanosecond before midnight", store.ScanQuery{To: d3.Add(-time.Nanosecond)}, 10},
		{"limit", store.ScanQuery{From: d2, Limit: 3}, 3},
	} {
		if got := count(tc.q); got != tc.want {
			t.Errorf("%s: %d events, want %d", tc.name, got, tc.want)
		}
	}
	got := scanAll(t, b, store.ScanQuery{From: d2, Limit: 2})
	if !reflect.DeepEqual(got, fx[6:8]) {
		t.Errorf("first two of day 2:\n got %+v\nwant %+v", got, fx[6:8])
	}
}

func testUniqueHosts(t *testing.T, b Backend) {
	load(t, b, Fixture())
	type hc = store.HostCount
	for _, tc := range []struct {
		name string
		q    store.HostQuery
		want []hc
	}{
		{"totals", store.HostQuery{}, []hc{{IPs: 7, Bots: 6, Events: 15}}},
		{"by family", store.HostQuery{GroupBy: []store.Dimension{store.DimFamily}}, []hc{
			{Family: "waledac", IPs: 4, Bots: 4, Events: 10},
			{Family: "kelihos", IPs: 3, Bots: 2, Events: 5},
		}},
		{"by day", store.HostQuery{GroupBy: []store.Dimension{store.DimDay}}, []hc{
			{Day: d2, IPs: 5, Bots: 4, Events: 5},
			{Day: d1, IPs: 4, Bots: 4, Events: 6},
			{Day: d3, IPs: 3, Bots: 2, Events: 4},
		}},
		{"by asn, ties by asn", store.HostQuery{GroupBy: []store.Dimension{store.DimASN}}, []hc{
			{ASN: asBeta, ASName: "BETA", IPs: 3, Bots: 2, Events: 5},
			{ASN: asAlpha, ASName: "ALPHA", IPs: 2, Bots: 3, Events: 7},
			{ASN: asGamma, ASName: "GAMMA", IPs: 2, Bots: 1, Events: 3},
		}},
		{"by country", store.HostQuery{GroupBy: []store.Dimension{store.DimCountry}}, []hc{
			{Country: "DE", IPs: 4, Bots: 4, Events: 10},
			{Country: "FR", IPs: 3, Bots: 2, Events: 5},
		}},
		{"waledac by country and day", store.HostQuery{
			GroupBy: []store.Dimension{store.DimCountry, store.DimDay}, Family: "waledac",
		}, []hc{
			{Day: d1, Country: "DE", IPs: 3, Bots: 4, Events: 5},
			{Day: d2, Country: "DE", IPs: 2, Bots: 2, Events: 2},
			{Day: d3, Country: "DE", IPs: 2, Bots: 2, Events: 3},
		}},
		{"day 2 half-open", store.HostQuery{From: d2, To: d3}, []hc{{IPs: 5, Bots: 4, Events: 5}}},
		{"asn filter by day", store.HostQuery{GroupBy: []store.Dimension{store.DimDay}, ASN: asBeta}, []hc{
			{Day: d2, IPs: 3, Bots: 2, Events: 3},
			{Day: d1, IPs: 1, Bots: 0, Events: 1},
			{Day: d3, IPs: 1, Bots: 0, Events: 1},
		}},
		{"country filter", store.HostQuery{Country: "FR"}, []hc{{IPs: 3, Bots: 2, Events: 5}}},
		{"limit", store.HostQuery{GroupBy: []store.Dimension{store.DimASN}, Limit: 1}, []hc{
			{ASN: asBeta, ASName: "BETA", IPs: 3, Bots: 2, Events: 5},
		}},
		{"all dimensions, day 3", store.HostQuery{
			From: d3, GroupBy: []store.Dimension{store.DimDay, store.DimFamily, store.DimASN, store.DimCountry},
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
	if _, err := b.UniqueHosts(t.Context(), store.HostQuery{GroupBy: []store.Dimension{"city"}}); err == nil {
		t.Error("unknown dimension: no error")
	}
}

func testCallbacksPerHour(t *testing.T, b Backend) {
	load(t, b, Fixture())
	h := func(hour int) time.Time { return d1.Add(time.Duration(hour) * time.Hour) }
	for _, tc := range []struct {
		name string
		q    store.HourQuery
		want []store.HourCount
	}{
		{"day 1", store.HourQuery{From: d1, To: d2}, []store.HourCount{
			{Hour: h(10), Events: 2, IPs: 1},
			{Hour: h(11), Events: 2, IPs: 1},
			{Hour: h(12), Events: 2, IPs: 2},
		}},
		{"day 1 waledac", store.HourQuery{From: d1, To: d2, Family: "waledac"}, []store.HourCount{
			{Hour: h(10), Events: 2, IPs: 1},
			{Hour: h(11), Events: 2, IPs: 1},
			{Hour: h(12), Events: 1, IPs: 1},
		}},
		{"kelihos from day 2", store.HourQuery{From: d2, Family: "kelihos"}, []store.HourCount{
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

func testRetention(t *testing.T, b Backend) {
	fx := Fixture()
	load(t, b, fx)
	ctx := t.Context()
	stats := func(want store.Stats) {
		t.Helper()
		got, err := b.Stats(ctx)
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stats: got %+v, want %+v", got, want)
		}
	}
	stats(store.Stats{Events: 15, Oldest: fx[0].Time, Newest: fx[14].Time})

	if _, err := b.Retain(ctx, hm(d3, 15, 0), 0); err == nil {
		t.Error("retain 0 days: no error")
	}
	// Keep day 3 and one day before it: day 1 goes.
	n, err := b.Retain(ctx, hm(d3, 15, 0), 1)
	if err != nil || n != 6 {
		t.Errorf("retain 1 day: deleted %d (%v), want 6", n, err)
	}
	stats(store.Stats{Events: 9, Oldest: fx[6].Time, Newest: fx[14].Time})
	got, err := b.UniqueHosts(ctx, store.HostQuery{})
	if want := []store.HostCount{{IPs: 7, Bots: 6, Events: 9}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("unique hosts after retention: %+v (%v), want %+v", got, err, want)
	}

	// Midnight of day 3 is kept, the nanosecond before it goes.
	n, err = b.DeleteBefore(ctx, d3)
	if err != nil || n != 5 {
		t.Errorf("delete before day 3: deleted %d (%v), want 5", n, err)
	}
	stats(store.Stats{Events: 4, Oldest: d3, Newest: fx[14].Time})
	n, err = b.DeleteBefore(ctx, d3)
	if err != nil || n != 0 {
		t.Errorf("delete again: deleted %d (%v), want 0", n, err)
	}
	// Newer events still go in.
	load(t, b, fx[:1])
	stats(store.Stats{Events: 5, Oldest: fx[0].Time, Newest: fx[14].Time})
}

func testRejectBadBatch(t *testing.T, b Backend) {
	fx := Fixture()
	load(t, b, fx[:5])
	before := scanAll(t, b, store.ScanQuery{})
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
	}
	if after := scanAll(t, b, store.ScanQuery{}); !reflect.DeepEqual(after, before) {
		t.Errorf("store changed by refused batches: %d events, want %d", len(after), len(before))
	}
	// A good batch still goes in afterwards.
	load(t, b, fx[5:])
	if st, err := b.Stats(t.Context()); err != nil || st.Events != 15 {
		t.Errorf("after a good batch: %+v (%v), want 15 events", st, err)
	}
}

func testEmpty(t *testing.T, b Backend) {
	ctx := t.Context()
	if err := b.Append(ctx, nil); err != nil {
		t.Errorf("append nothing: %v", err)
	}
	st, err := b.Stats(ctx)
	if err != nil || st != (store.Stats{}) {
		t.Errorf("stats of empty store: %+v (%v)", st, err)
	}
	got, err := b.UniqueHosts(ctx, store.HostQuery{GroupBy: []store.Dimension{store.DimDay}})
	if err != nil || len(got) != 0 {
		t.Errorf("unique hosts by day of empty store: %+v (%v)", got, err)
	}
	got, err = b.UniqueHosts(ctx, store.HostQuery{})
	if want := []store.HostCount{{}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("totals of empty store: %+v (%v), want %+v", got, err, want)
	}
	hours, err := b.CallbacksPerHour(ctx, store.HourQuery{})
	if err != nil || len(hours) != 0 {
		t.Errorf("hours of empty store: %+v (%v)", hours, err)
	}
}
