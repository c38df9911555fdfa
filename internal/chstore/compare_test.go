package chstore_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/store"
)

// engine is what the comparison asks of each engine.
type engine interface {
	eventstore.Writer
	eventstore.Reader
}

// world returns the events of a random world of days from day0: IPv4 and
// IPv6 hosts, families, seized names without a family, scanners, bots
// behind NAT, many ports and protocols, networks and cities. A host keeps
// its network and city, and no two events share a time, so that what the
// DuckDB engine leaves to chance (any_value, ties of arg_max) is the same
// on every engine.
func world(seed uint64, day0 time.Time, days, n int) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 7))
	type place struct {
		asn          uint32
		cc, city     string
		lat, lon     float64
		region, name string
	}
	places := []place{
		{64500, "DE", "Berlin", 52.5, 13.4, "Berlin", "ALPHA"}, {64501, "DE", "Munich", 48.1, 11.6, "Bavaria", "BETA"},
		{64502, "FR", "Paris", 48.9, 2.35, "", "GAMMA"}, {64503, "US", "Dallas", 32.8, -96.8, "Texas", "DELTA"},
		{64504, "US", "", 0, 0, "", ""}, {0, "", "", 0, 0, "", ""},
	}
	protos := []event.Protocol{event.ProtoDNS, event.ProtoHTTP, event.ProtoHTTPS, event.ProtoSMTP, event.ProtoTCP, event.ProtoUDP}
	ports := []uint16{53, 80, 443, 25, 8080, 6667}
	span := int64(days) * int64(24*time.Hour)
	used := map[int64]bool{}
	var out []event.Event
	for range n {
		h := rng.IntN(500)
		var ip netip.Addr
		if h%13 == 0 {
			ip = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::%x", h%3, h))
		} else {
			ip = netip.AddrFrom4([4]byte{byte(10 + h%3), byte(h % 7), byte(h / 256), byte(h)})
		}
		p := places[h%len(places)]
		at := rng.Int64N(span)
		for used[at] {
			at = rng.Int64N(span)
		}
		used[at] = true
		pi := rng.IntN(len(protos))
		e := event.Event{
			Time: day0.Add(time.Duration(at)), SrcIP: ip, SrcPort: uint16(1024 + rng.IntN(60000)),
			DstIP: netip.MustParseAddr("192.0.2.53"), DstPort: ports[pi], Protocol: protos[pi],
			Transport: event.TransportTCP, Sensor: "s1",
			ASN: p.asn, ASName: p.name, CountryCode: p.cc, Region: p.region, City: p.city, Latitude: p.lat, Longitude: p.lon,
			Domain: fmt.Sprintf("d%d.example", rng.IntN(5)), Tag: fmt.Sprintf("t%d", rng.IntN(3)),
		}
		if e.Protocol == event.ProtoDNS || e.Protocol == event.ProtoUDP {
			e.Transport = event.TransportUDP
		}
		if rng.IntN(4) == 0 {
			e.DstPort = uint16(rng.IntN(100)) // the tail of ports
		}
		switch h % 5 {
		case 0:
			e.Family, e.Case, e.Zone = "waledac", "wal", fmt.Sprintf("z%d.example", h%4)
		case 1:
			e.Family = "conficker"
		case 2:
			e.Case, e.Zone = "dga", "dga.example"
		case 3:
			e.Family = []string{"kelihos", "rustock"}[rng.IntN(2)]
		}
		if rng.IntN(3) > 0 {
			e.BotID = fmt.Sprintf("b%d", h*2+rng.IntN(2)) // two bots behind some addresses
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	return out
}

// TestSameAnswers loads one random world into the DuckDB engine, one
// ClickHouse node and two ClickHouse shards, and compares every reader's
// and the rollup's answers.
func TestSameAnswers(t *testing.T) {
	ctx := t.Context()
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := day0.AddDate(0, 0, 3).Add(-time.Hour)
	clock := func() time.Time { return now }
	evs := world(1, day0, 3, 6000)
	evs = slices.DeleteFunc(evs, func(e event.Event) bool { return !e.Time.Before(now.Add(-time.Minute)) })

	db, err := dbfile.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	duck, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { duck.Close() })
	duckRollup, err := store.OpenRollup(ctx, store.RollupConfig{DB: db, Days: 5, Lag: time.Microsecond, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	engines := map[string]engine{"duckdb": duck}
	rollups := map[string]eventstore.Rollup{"duckdb": duckRollup}
	for _, layout := range []string{"node", "shards"} {
		s, r := openEngine(t, servers(t, layout), clock)
		engines[layout], rollups[layout] = s, r
	}
	for name, e := range engines {
		for b := range slices.Chunk(evs, 1000) {
			if err := e.Append(ctx, b); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if _, err := rollups[name].Refresh(ctx, true); err != nil {
			t.Fatalf("%s: refresh: %v", name, err)
		}
	}

	// same calls ask each engine and compare the answers with DuckDB's.
	same := func(what string, ask func(e engine, r eventstore.Rollup) (any, error)) {
		t.Helper()
		want, err := ask(duck, duckRollup)
		if err != nil {
			t.Fatalf("%s: duckdb: %v", what, err)
		}
		for _, name := range []string{"node", "shards"} {
			got, err := ask(engines[name], rollups[name])
			if err != nil {
				t.Errorf("%s: %s: %v", what, name, err)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s differs from duckdb:\n got %+v\nwant %+v", what, name, got, want)
			}
		}
	}

	dims := []eventstore.Dimension{eventstore.DimDay, eventstore.DimFamily, eventstore.DimASN, eventstore.DimCountry}
	ranges := [][2]time.Time{{}, {day0.Add(time.Hour), day0.AddDate(0, 0, 1).Add(3 * time.Hour)}, {day0.AddDate(0, 0, 2), time.Time{}}}
	for mask := range 1 << len(dims) {
		var by []eventstore.Dimension
		for i, d := range dims {
			if mask&(1<<i) != 0 {
				by = append(by, d)
			}
		}
		for _, rg := range ranges {
			for _, q := range []eventstore.HostQuery{
				{From: rg[0], To: rg[1], GroupBy: by},
				{From: rg[0], To: rg[1], GroupBy: by, Infected: true, Limit: 7},
				{From: rg[0], To: rg[1], GroupBy: by, Family: "waledac", Country: "DE"},
				{From: rg[0], To: rg[1], GroupBy: by, ASN: 64503, Infected: true},
			} {
				same(fmt.Sprintf("unique hosts %+v", q), func(e engine, _ eventstore.Rollup) (any, error) { return e.UniqueHosts(ctx, q) })
			}
		}
	}
	for _, rg := range ranges {
		for _, fam := range []string{"", "kelihos"} {
			q := eventstore.HourQuery{From: rg[0], To: rg[1], Family: fam}
			same(fmt.Sprintf("callbacks per hour %+v", q), func(e engine, _ eventstore.Rollup) (any, error) { return e.CallbacksPerHour(ctx, q) })
		}
		q := eventstore.HostRowQuery{From: rg[0], To: rg[1]}
		same(fmt.Sprintf("host rows %+v", q), func(e engine, _ eventstore.Rollup) (any, error) {
			var rows []eventstore.HostRow
			err := e.HostRows(ctx, q, func(r *eventstore.HostRow) error {
				c := *r
				c.DstPorts = slices.Clone(r.DstPorts)
				rows = append(rows, c)
				return nil
			})
			return rows, err
		})
		sq := eventstore.ScanQuery{From: rg[0], To: rg[1], Limit: 2500}
		same(fmt.Sprintf("scan %+v", sq), func(e engine, _ eventstore.Rollup) (any, error) {
			var out []event.Event
			err := e.Scan(ctx, sq, func(ev *event.Event) error { out = append(out, *ev); return nil })
			return out, err
		})
		same(fmt.Sprintf("sources %v", rg), func(e engine, _ eventstore.Rollup) (any, error) {
			var out []string
			err := e.Sources(ctx, rg[0], rg[1], func(s eventstore.Source) error {
				out = append(out, s.IP.String()+"/"+s.Family+"/"+s.BotID)
				return nil
			})
			slices.Sort(out)
			return out, err
		})
		for _, cq := range []eventstore.CityQuery{
			{From: rg[0], To: rg[1]}, {From: rg[0], To: rg[1], Family: eventstore.UnknownFamily}, {From: rg[0], To: rg[1], Country: "US", Limit: 1},
		} {
			same(fmt.Sprintf("hosts per city %+v", cq), func(e engine, _ eventstore.Rollup) (any, error) { return e.HostsPerCity(ctx, cq) })
		}
	}
	for _, f := range []eventstore.HostFilter{
		{ASNs: []uint32{64500, 64502}},
		{Countries: []string{"US"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParsePrefix("11.0.0.0/8")}},
		{Prefixes: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/16"), netip.MustParsePrefix("12.1.0.7/32")}},
	} {
		for _, byASN := range []bool{false, true} {
			q := eventstore.DailyHostQuery{Filter: f, ByASN: byASN}
			same(fmt.Sprintf("daily hosts %+v", q), func(e engine, _ eventstore.Rollup) (any, error) { return e.DailyHosts(ctx, q) })
		}
	}
	same("stats", func(e engine, _ eventstore.Rollup) (any, error) { return e.Stats(ctx) })

	// The rollup.
	same("rollup days", func(_ engine, r eventstore.Rollup) (any, error) { return r.RollupDays(ctx) })
	same("families", func(_ engine, r eventstore.Rollup) (any, error) { return r.Families(ctx) })
	same("spans", func(_ engine, r eventstore.Rollup) (any, error) { return r.Spans(ctx, now, []int{1, 2, 3, 30}, "") })
	same("spans of conficker", func(_ engine, r eventstore.Rollup) (any, error) { return r.Spans(ctx, now, []int{1, 3}, "conficker") })
	same("hours", func(_ engine, r eventstore.Rollup) (any, error) {
		return r.Hours(ctx, eventstore.HourQuery{From: day0.Add(5 * time.Hour), Family: "waledac"})
	})
	for mask := range 1 << len(dims) {
		var by []eventstore.Dimension
		for i, d := range dims {
			if mask&(1<<i) != 0 {
				by = append(by, d)
			}
		}
		q := eventstore.HostQuery{From: day0.AddDate(0, 0, 1), To: now, GroupBy: by, Limit: 20}
		same(fmt.Sprintf("rollup hosts %+v", q), func(_ engine, r eventstore.Rollup) (any, error) { return r.Hosts(ctx, q) })
	}
	same("rollup cities", func(_ engine, r eventstore.Rollup) (any, error) {
		return r.Cities(ctx, eventstore.CityQuery{From: day0, To: now, Family: "conficker"})
	})
	same("daily by network", func(_ engine, r eventstore.Rollup) (any, error) {
		return r.DailyByASN(ctx, day0, now, []uint32{64500, 64504, 1})
	})
	same("zones", func(_ engine, r eventstore.Rollup) (any, error) {
		return r.Zones(ctx, []string{"z1.example", "dga.example", "none.example"})
	})
	same("host list", func(_ engine, r eventstore.Rollup) (any, error) {
		return r.HostList(ctx, eventstore.HostListQuery{From: day0, To: now, Country: "DE", Limit: 30})
	})
	if t.Failed() {
		t.Logf("%d events", len(evs))
	}
}

// TestRollupStrategy: how the ClickHouse rollup takes in a change (the
// counts are the conformance suite's): the first refresh rebuilds every
// day, new events at the end of the live day are an increment, a late
// event rebuilds its day, a day without events is dropped; and a refresh
// cut off after its rows and before its bookkeeping is repaired by the
// next rollup.
func TestRollupStrategy(t *testing.T) {
	ctx := t.Context()
	day0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	now := day0.AddDate(0, 0, 2).Add(12 * time.Hour)
	fx := slices.DeleteFunc(world(2, day0, 3, 300), func(e event.Event) bool { return e.Time.After(now) })
	clock := func() time.Time { return now }
	base := servers(t, "shards")
	cfg := freshConfig(base)
	s, err := chstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := chstore.OpenRollup(ctx, chstore.RollupConfig{Store: s, Days: 5, Lag: time.Microsecond, Busy: -1, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, fx); err != nil {
		t.Fatal(err)
	}
	refresh := func(r *chstore.Rollup, step string, full bool, want eventstore.RefreshStats) {
		t.Helper()
		st, err := r.Refresh(ctx, full)
		st.Checked = 0
		if err != nil || st != want {
			t.Errorf("%s: %+v (%v), want %+v", step, st, err, want)
		}
	}
	refresh(r, "first", true, eventstore.RefreshStats{Rebuilt: 3})
	refresh(r, "nothing new", false, eventstore.RefreshStats{})
	last := fx[len(fx)-1]
	for i := range 3 {
		late := last
		late.Time = now
		now = now.Add(time.Hour)
		if err := s.Append(ctx, []event.Event{late}); err != nil {
			t.Fatal(err)
		}
		refresh(r, fmt.Sprintf("increment %d", i), false, eventstore.RefreshStats{Added: 1})
	}
	late := fx[len(fx)/2]
	late.Time = late.Time.Add(-time.Nanosecond)
	if err := s.Append(ctx, []event.Event{late}); err != nil {
		t.Fatal(err)
	}
	refresh(r, "late event", true, eventstore.RefreshStats{Rebuilt: 1})
	if _, err := s.DeleteBefore(ctx, day0.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	refresh(r, "retention", true, eventstore.RefreshStats{Dropped: 1})
	want, err := s.UniqueHosts(ctx, eventstore.HostQuery{From: day0, Infected: true, GroupBy: []eventstore.Dimension{eventstore.DimDay}})
	if err != nil {
		t.Fatal(err)
	}

	// Rows of a chunk whose bookkeeping never came (the refresh was cut
	// off): a new rollup finds them and rebuilds their day.
	for i := range base.Shards {
		conn := shardConn(t, cfg, i)
		if err := conn.Exec(ctx, "INSERT INTO rollup_hosts_local SELECT day, family, src_ip, src_ip6, asn, as_name, country, city, latitude, longitude, "+
			"events, first_ns, last_ns, toUInt32(1000) FROM rollup_hosts_local WHERE day = "+
			"toDate('"+now.Format(time.DateOnly)+"')"); err != nil {
			t.Fatal(err)
		}
	}
	r2, err := chstore.OpenRollup(ctx, chstore.RollupConfig{Store: s, Days: 5, Lag: time.Microsecond, Busy: -1, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	refresh(r2, "repair", false, eventstore.RefreshStats{Rebuilt: 1})
	got, err := r2.Hosts(ctx, eventstore.HostQuery{From: day0, To: now, GroupBy: []eventstore.Dimension{eventstore.DimDay}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i].Bots = 0
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after the repair:\n got %+v\nwant %+v", got, want)
	}
}

// shardConn opens a connection to shard i of cfg, in its database.
func shardConn(t *testing.T, cfg chstore.Config, i int) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.Shards[i]},
		Auth: clickhouse.Auth{Database: cfg.Database, Username: cfg.Username, Password: cfg.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
