// Package e2e runs the whole of takedown on this machine: `serve` with its
// DNS sinkhole, listeners, pipeline and store, fed by the botnet simulator
// over real sockets, and checks what the sinkhole counted against what the
// simulator did.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/app/apptest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/sim"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestGroundTruth: serve plus a simulated botnet of a few thousand bots of
// three families, with a day of history backfilled through the ingest
// endpoint (it spans two calendar days) and then ~20 s of live callbacks at compressed time. The
// sinkhole's unique hosts per family, per family and network, and per
// family and country equal the simulator's ground truth: unique IPs
// exactly, and bot ids (behind NAT) for the family that carries them.
func TestGroundTruth(t *testing.T) {
	dir := t.TempDir()
	world, err := demoworld.New()
	if err != nil {
		t.Fatal(err)
	}
	worldDB := filepath.Join(dir, demoworld.FileName)
	if err := world.WriteFile(worldDB); err != nil {
		t.Fatal(err)
	}
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t)) }
	dnsAddr, httpAddr, smtpAddr := port(), port(), port()
	cfg, err := config.Parse("e2e.yaml", []byte(fmt.Sprintf(`
data_dir: %s
sensor: e2e
api: {listen: "%s"}
dns:
  listen: ["%s"]
  rrl: {responses_per_second: -1}
transfer: {listen: []}
listen: {http: ["%s"], https: [], smtp: ["%s"], tcp: [], udp: []}
enrich: {databases: [%s]}
pipeline: {flush_ms: 100}
`, filepath.Join(dir, "data"), port(), dnsAddr, httpAddr, smtpAddr, worldDB)))
	if err != nil {
		t.Fatal(err)
	}

	const backfillDays = 1
	now := time.Now().UTC()
	var waledac []string
	for i := range 40 {
		waledac = append(waledac, fmt.Sprintf("seized-%02d.example.com", i))
	}
	// The DGA case seizes 25 of each day's names, from the history's
	// first day to well past what 20 s at this speed can reach.
	var dga []string
	for d := -backfillDays - 1; d <= 4; d++ {
		dga = append(dga, sim.DGANames(now.AddDate(0, 0, d), sim.DGANamesPerDay)[:25]...)
	}
	apptest.Seize(t, cfg, "wal", sim.Waledac, waledac)
	apptest.Seize(t, cfg, "dga", sim.Conficker, apptest.Dedupe(dga))

	client := apptest.Serve(t, cfg, "e2e")

	s, err := sim.New(sim.Config{
		Targets:  sim.Targets{DNS: dnsAddr, HTTP: httpAddr, SMTP: smtpAddr},
		Bots:     3000,
		Families: []sim.Share{{Family: sim.Waledac, Share: 0.6}, {Family: sim.Conficker, Share: 0.2}, {Family: sim.Rustock, Share: 0.2}},
		NATShare: 0.15,
		Speed:    1500,
		Domains:  map[string][]string{sim.Waledac: waledac, sim.Conficker: dga},
		World:    world,
		Seed:     7,
		Start:    now,
		Duration: 20 * time.Second,
		// A callback that times out makes the truth inexact (the
		// sinkhole may have recorded it): on a machine loaded by other
		// work a callback has taken more than the default 2 s.
		Timeout: 15 * time.Second,
		// A failed callback makes the truth inexact: say which, and why.
		Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Backfill(ctx, backfillDays*24*time.Hour, func(ctx context.Context, batch []event.Event) error {
		_, err := client.Ingest(ctx, sim.SensorID, batch)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	truth := s.Truth()
	if truth.Callbacks < 10_000 {
		t.Fatalf("only %d callbacks in the truth", truth.Callbacks)
	}
	// Wait for the store to hold everything the sinks recorded.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pipeline.Backlog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store still %d events behind", st.Pipeline.Backlog)
		}
		time.Sleep(100 * time.Millisecond)
	}

	from, to := now.AddDate(0, 0, -backfillDays-1), time.Now().Add(time.Hour)
	hosts := func(dims ...eventstore.Dimension) map[string]eventstore.HostCount {
		rows, err := client.UniqueHosts(ctx, eventstore.HostQuery{From: from, To: to, GroupBy: dims})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]eventstore.HostCount{}
		for _, r := range rows {
			out[fmt.Sprintf("%s/%d/%s", r.Family, r.ASN, r.Country)] = r
		}
		return out
	}
	compare := func(what string, got map[string]eventstore.HostCount, want map[string]sim.Counts) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: the sinkhole counted %d groups, the simulator made %d", what, len(got), len(want))
		}
		bad := 0
		for k, w := range want {
			g := got[k]
			if g.IPs != w.IPs || (w.Bots > 0 && g.Bots != w.Bots) {
				if bad++; bad <= 5 {
					t.Errorf("%s %s: sinkhole %d IPs %d bots, truth %d IPs %d bots", what, k, g.IPs, g.Bots, w.IPs, w.Bots)
				}
			}
		}
	}
	byFamily, byASN, byCountry := map[string]sim.Counts{}, map[string]sim.Counts{}, map[string]sim.Counts{}
	for fam, c := range truth.Families {
		byFamily[fmt.Sprintf("%s/0/", fam)] = c.Counts
		for _, n := range c.ByASN {
			byASN[fmt.Sprintf("%s/%d/", fam, n.ASN)] = n.Counts
		}
		for _, n := range c.ByCountry {
			byCountry[fmt.Sprintf("%s/0/%s", fam, n.Country)] = n.Counts
		}
	}
	compare("family", hosts(eventstore.DimFamily), byFamily)
	compare("family×asn", hosts(eventstore.DimFamily, eventstore.DimASN), byASN)
	compare("family×country", hosts(eventstore.DimFamily, eventstore.DimCountry), byCountry)
	// Backfilled days before today carry the simulated time in the store
	// too (live callbacks carry the sinkhole's clock): day by day, the same.
	today := now.Truncate(24 * time.Hour).Format(time.DateOnly)
	byDay := map[string]sim.Counts{}
	for fam, c := range truth.Families {
		for _, d := range c.ByDay {
			if d.Day < today {
				byDay[fmt.Sprintf("%s/0/%s", fam, d.Day)] = d.Counts
			}
		}
	}
	rows, err := client.UniqueHosts(ctx, eventstore.HostQuery{From: from, To: now.Truncate(24 * time.Hour), GroupBy: []eventstore.Dimension{eventstore.DimFamily, eventstore.DimDay}})
	if err != nil {
		t.Fatal(err)
	}
	gotDays := map[string]eventstore.HostCount{}
	for _, r := range rows {
		gotDays[fmt.Sprintf("%s/0/%s", r.Family, r.Day.Format(time.DateOnly))] = r
	}
	compare("family×day", gotDays, byDay)
	if truth.Errors != 0 {
		t.Errorf("%d callbacks failed; the truth is exact only without errors", truth.Errors)
	}
	for _, fam := range []string{sim.Waledac, sim.Conficker, sim.Rustock} {
		if truth.Families[fam].IPs == 0 {
			t.Errorf("no %s bot reached the sinkhole: %+v", fam, truth.Families[fam].Counts)
		}
	}
	if w := truth.Families[sim.Waledac]; w.Bots <= w.IPs {
		t.Errorf("waledac: %d bot ids on %d IPs; NAT should put several bots behind some addresses", w.Bots, w.IPs)
	}
	t.Logf("truth: %d callbacks; %s", truth.Callbacks, summary(truth))
}

func summary(tr *sim.Truth) string {
	var parts []string
	for fam, c := range tr.Families {
		parts = append(parts, fmt.Sprintf("%s %d IPs %d bots", fam, c.IPs, c.Bots))
	}
	return strings.Join(parts, ", ")
}

// tlog writes log lines to the test's log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
