package chstore_test

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// BenchmarkDashboard loads a day of $TAKEDOWN_BENCH_EVENTS events (300,000
// by default; a Conficker-scale day is 21 million) from a third as many
// hosts into one node, refreshes the rollup, and times the queries of the
// dashboard's overview and map: "cold" asks a rollup that keeps no
// answers, "warm" the one whose Refresh computed them.
//
//	TAKEDOWN_BENCH_EVENTS=3000000 go test -run '^$' -bench Dashboard -benchtime=3x ./internal/chstore/
func BenchmarkDashboard(b *testing.B) {
	n := 300_000
	if v := os.Getenv("TAKEDOWN_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TAKEDOWN_BENCH_EVENTS=%q: %v", v, err)
		}
	}
	ctx := b.Context()
	c := chtest.Start(b, chtest.Options{})
	cfg := chstore.Config{Addrs: c.Addrs(), Username: c.User(), Password: c.Password(), Database: "bench"}
	s, err := chstore.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := day.Add(23*time.Hour + 59*time.Minute)
	hosts := max(n/3, 1)
	families := []string{"conficker", "conficker", "conficker", "waledac", ""}
	batch := make([]event.Event, 0, 100_000)
	t0 := time.Now()
	for i := range n {
		h := uint32(i*2654435761) % uint32(hosts)
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+h*7)
		batch = append(batch, event.Event{
			Time: day.Add(time.Duration(float64(i) / float64(n) * float64(23*time.Hour))), SrcIP: netip.AddrFrom4(a),
			Protocol: event.ProtoHTTP, Transport: event.TransportTCP, DstPort: 80,
			Family: families[h%5], Case: "c1", ASN: 64500 + h%2000, ASName: "AS" + strconv.Itoa(int(h%2000)),
			CountryCode: string([]byte{'A' + byte(h%3000%26), 'A' + byte(h%3000/26%8)}), City: "c" + strconv.Itoa(int(h%3000)),
			Latitude: float64(h%180) - 90, Longitude: float64(h%360) - 180,
		})
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("%d events of %d hosts stored in %s", n, hosts, time.Since(t0).Round(time.Millisecond))
	clock := func() time.Time { return now }
	var log *slog.Logger
	if os.Getenv("TAKEDOWN_BENCH_TIMES") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	warm, err := chstore.OpenRollup(ctx, chstore.RollupConfig{Store: s, Days: 32, Now: clock, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	t0 = time.Now()
	if _, err := warm.Refresh(ctx, true); err != nil {
		b.Fatal(err)
	}
	b.Logf("refresh (build and warm) took %s", time.Since(t0).Round(time.Millisecond))
	cold, err := chstore.OpenRollup(ctx, chstore.RollupConfig{Store: s, Days: 32, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	tomorrow := day.AddDate(0, 0, 1)
	if os.Getenv("TAKEDOWN_BENCH_TIMES") != "" {
		for name, f := range map[string]func() error{
			"families": func() error { _, err := cold.Families(ctx); return err },
			"spans":    func() error { _, err := cold.Spans(ctx, now, []int{1, 7, 30}, ""); return err },
			"hours":    func() error { _, err := cold.Hours(ctx, eventstore.HourQuery{From: day}); return err },
			"asn7": func() error {
				_, err := cold.Hosts(ctx, eventstore.HostQuery{From: day, To: tomorrow, GroupBy: []eventstore.Dimension{eventstore.DimASN}, Limit: 20})
				return err
			},
			"cc": func() error {
				_, err := cold.Hosts(ctx, eventstore.HostQuery{From: day, To: tomorrow, GroupBy: []eventstore.Dimension{eventstore.DimCountry}})
				return err
			},
			"cities": func() error {
				_, err := cold.Cities(ctx, eventstore.CityQuery{From: day, To: tomorrow, Limit: 300})
				return err
			},
		} {
			t0 := time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: %s", name, time.Since(t0).Round(time.Millisecond))
		}
	}
	page := func(r *chstore.Rollup) {
		if _, err := r.Families(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Spans(ctx, now, []int{1, 7, 30}, ""); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Hours(ctx, eventstore.HourQuery{From: now.Truncate(time.Hour).Add(-47 * time.Hour)}); err != nil {
			b.Fatal(err)
		}
		for _, dim := range []eventstore.Dimension{eventstore.DimASN, eventstore.DimCountry} {
			if _, err := r.Hosts(ctx, eventstore.HostQuery{From: tomorrow.AddDate(0, 0, -7), To: tomorrow, GroupBy: []eventstore.Dimension{dim}, Limit: 20}); err != nil {
				b.Fatal(err)
			}
		}
		// The map of today.
		if _, err := r.Hosts(ctx, eventstore.HostQuery{From: day, To: tomorrow, GroupBy: []eventstore.Dimension{eventstore.DimCountry}}); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Cities(ctx, eventstore.CityQuery{From: day, To: tomorrow, Limit: 300}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		r    *chstore.Rollup
	}{{"cold", cold}, {"warm", warm}} {
		b.Run("overview+map/"+bc.name, func(b *testing.B) {
			for b.Loop() {
				page(bc.r)
			}
		})
	}
}
