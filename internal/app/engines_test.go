package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/report"
	"github.com/takedown-project/takedown/internal/scope"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// simulatedWeek is a week of callbacks that ends yesterday (so that the
// dashboard's rollup holds all of it): storegen's Waledac-like botnet,
// its hosts given three families, a case without a family (a seized
// name the classifier does not know) or neither (a scanner), a city each,
// one in ten an IPv6 address, and three destination ports. What the
// enrichment would say of an address is the same in all its events.
func simulatedWeek(t *testing.T, today time.Time) []event.Event {
	t.Helper()
	gen := storegen.Waledac{Hosts: 1200, Days: 7, CallbacksPerDay: 8, ASNs: 120, Countries: 25,
		Start: today.AddDate(0, 0, -7), Seed: 20, BatchSize: 5000}
	type who struct {
		ip                    netip.Addr
		family, caseName      string
		asn                   uint32
		asName, country, city string
		lat, lon              float64
	}
	hosts := map[netip.Addr]who{}
	var out []event.Event
	n := 0
	err := gen.Generate(func(batch []event.Event) error {
		for _, e := range batch {
			w, ok := hosts[e.SrcIP]
			if !ok {
				b := e.SrcIP.As4()
				k := int(b[0]) + int(b[1]) + int(b[2]) + int(b[3])
				w = who{ip: e.SrcIP, family: e.Family, caseName: e.Case, asn: e.ASN, asName: e.ASName, country: e.CountryCode}
				switch k % 20 {
				case 0, 1, 2, 3, 4:
					w.family = "conficker"
				case 5, 6, 7:
					w.family = "rustock"
				case 8:
					w.family = "" // a seized name, no family: unknown
				case 9:
					w.family, w.caseName = "", "" // a scanner
				}
				c := k % 3
				w.city = fmt.Sprintf("%s-town-%d", e.CountryCode, c)
				// A city's position is the same for all its hosts, as
				// the enrichment gives it.
				w.lat = float64(int(e.CountryCode[0])-'A') + 0.25*float64(c)
				w.lon = float64(int(e.CountryCode[1])-'A')*5 - 0.5*float64(c)
				if k%10 == 3 {
					w.ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, b[0], b[1], 0, 0, 0, 0, 0, 0, 0, 0, b[2], b[3]})
				}
				hosts[e.SrcIP] = w
			}
			e.SrcIP, e.Family, e.Case = w.ip, w.family, w.caseName
			e.ASN, e.ASName, e.CountryCode, e.City, e.Latitude, e.Longitude = w.asn, w.asName, w.country, w.city, w.lat, w.lon
			e.DstPort = []uint16{80, 8080, 443}[n%3]
			n++
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEnginesGiveTheSameAnswers loads the same simulated week into the
// DuckDB engine and into ClickHouse, one node and two shards, through the
// composition's own opening of each (store.engine), and compares field
// for field what the readers get: unique hosts by every grouping of day,
// family, network and country, callbacks per hour, every subscriber's
// report of every day in every format, the remediation trend of every
// subscriber, the numbers of the maps (countries per day, cities) and
// every question of the dashboard's rollup.
func TestEnginesGiveTheSameAnswers(t *testing.T) {
	t.Run("one node", func(t *testing.T) {
		cl, _ := startClickHouse(t, chtest.Options{})
		sameAnswers(t, clickHouseConfig(t, cl.Addr(0), cl.User(), cl.Password()))
	})
	t.Run("two shards", func(t *testing.T) {
		cl, _ := startClickHouse(t, chtest.Options{Shards: 2})
		sameAnswers(t, clusterConfig(t, cl.Addrs(), cl.Name(), cl.User(), cl.Password()))
	})
}

// sameAnswers compares the DuckDB engine with the ClickHouse of chCfg.
func sameAnswers(t *testing.T, chCfg config.Config) {
	ctx := context.Background()
	duckCfg, err := config.Parse("duck.yaml", []byte("data_dir: "+filepath.Join(t.TempDir(), "data")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	engines := map[string]EventStore{}
	for name, cfg := range map[string]config.Config{"duckdb": duckCfg, "clickhouse": chCfg} {
		local, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { local.Close() })
		if w := local.Store.Where().Engine; w != name {
			t.Fatalf("store.engine %s opened %s", name, w)
		}
		engines[name] = local.Store
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	week := simulatedWeek(t, today)
	for _, st := range engines {
		for i := 0; i < len(week); i += 20_000 {
			if err := st.Append(ctx, week[i:min(i+20_000, len(week))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	duck, ch := engines["duckdb"], engines["clickhouse"]
	same := func(what string, ask func(EventStore) (any, error)) {
		t.Helper()
		a, errA := ask(duck)
		b, errB := ask(ch)
		if errA != nil || errB != nil {
			t.Fatalf("%s: duckdb %v, clickhouse %v", what, errA, errB)
		}
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.MarshalIndent(a, "", " ")
			jb, _ := json.MarshalIndent(b, "", " ")
			t.Errorf("%s differs:\nduckdb     %.1500s\nclickhouse %.1500s", what, ja, jb)
		}
	}
	from, to := today.AddDate(0, 0, -7), today
	same("stats", func(st EventStore) (any, error) { return st.Stats(ctx) })
	if st, err := ch.Stats(ctx); err != nil || st.Events != int64(len(week)) {
		t.Fatalf("ClickHouse holds %d events of %d (%v)", st.Events, len(week), err)
	}
	fams, err := duck.UniqueHosts(ctx, eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimFamily}, Infected: true})
	if err != nil || len(fams) != 4 {
		t.Fatalf("the week's families: %+v %v", fams, err)
	}

	dims := []eventstore.Dimension{eventstore.DimDay, eventstore.DimFamily, eventstore.DimASN, eventstore.DimCountry}
	for mask := range 1 << len(dims) {
		var by []eventstore.Dimension
		for i, d := range dims {
			if mask&(1<<i) != 0 {
				by = append(by, d)
			}
		}
		for _, q := range []eventstore.HostQuery{
			{From: from, To: to, GroupBy: by},
			{From: from, To: to, GroupBy: by, Infected: true},
			{From: from.Add(30 * time.Hour), To: to.Add(-20 * time.Hour), GroupBy: by, Family: "conficker", Limit: 7},
			{GroupBy: by, Country: week[0].CountryCode, Infected: true},
			{GroupBy: by, ASN: week[0].ASN},
		} {
			same(fmt.Sprintf("unique hosts %+v", q), func(st EventStore) (any, error) { return st.UniqueHosts(ctx, q) })
		}
	}
	for _, q := range []eventstore.HourQuery{{}, {From: from.Add(5 * time.Hour), To: to.Add(-3 * time.Hour)}, {Family: "rustock"}} {
		same(fmt.Sprintf("callbacks per hour %+v", q), func(st EventStore) (any, error) { return st.CallbacksPerHour(ctx, q) })
	}
	for _, q := range []eventstore.CityQuery{{}, {From: from, To: to, Family: eventstore.UnknownFamily}, {Country: week[0].CountryCode}, {Limit: 10}} {
		same(fmt.Sprintf("hosts per city %+v", q), func(st EventStore) (any, error) { return st.HostsPerCity(ctx, q) })
	}
	// The CLI's map: infected hosts by country, a day at a time, per family.
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		for _, fam := range []string{"", "waledac", eventstore.UnknownFamily} {
			q := eventstore.HostQuery{From: d, To: d.AddDate(0, 0, 1), GroupBy: []eventstore.Dimension{eventstore.DimCountry}, Family: fam, Infected: true}
			same(fmt.Sprintf("map %s %s", d.Format(time.DateOnly), fam), func(st EventStore) (any, error) { return st.UniqueHosts(ctx, q) })
		}
	}

	// The subscribers: networks, address blocks (one IPv6), countries,
	// and a mix.
	v6 := netip.MustParsePrefix("2001:db8::/32")
	subs := []report.Subscriber{
		{Name: "isp-a", Org: "ISP A", Scope: scope.Scope{ASNs: []uint32{week[0].ASN, week[1].ASN}}, TLP: "AMBER"},
		{Name: "isp-b", Org: "ISP B", Scope: scope.Scope{Prefixes: []netip.Prefix{netip.PrefixFrom(week[2].SrcIP, 16).Masked(), v6}}, TLP: "GREEN"},
		{Name: "cert-c", Org: "CERT C", Scope: scope.Scope{Countries: []string{week[0].CountryCode, week[3].CountryCode}}},
		{Name: "mix", Org: "Mix", Scope: scope.Scope{ASNs: []uint32{week[4].ASN}, Countries: []string{week[5].CountryCode}, Prefixes: []netip.Prefix{v6}}, TLP: "CLEAR"},
	}
	opts := report.Options{Operator: report.Operator{Name: "Test CERT", Email: "cert@example.org"}}
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		texts := map[string]map[string][]byte{}
		for name, st := range engines {
			set, err := report.Build(ctx, st, subs, d, d.AddDate(0, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			if set.Kept < 50 {
				t.Fatalf("%s: %d hosts of %s in the subscribers' scopes: the comparison would prove little", name, set.Kept, d.Format(time.DateOnly))
			}
			texts[name] = map[string][]byte{}
			for rep := range set.All() {
				for _, f := range report.Formats() {
					wr, err := report.NewWriter(f, opts)
					if err != nil {
						t.Fatal(err)
					}
					var b bytes.Buffer
					if err := wr.Write(&b, rep); err != nil {
						t.Fatal(err)
					}
					texts[name][rep.Subscriber.Name+"."+f] = b.Bytes()
				}
			}
		}
		if len(texts["duckdb"]) != len(subs)*len(report.Formats()) {
			t.Fatalf("%d reports", len(texts["duckdb"]))
		}
		for k, a := range texts["duckdb"] {
			if b := texts["clickhouse"][k]; !bytes.Equal(a, b) {
				t.Errorf("report %s of %s differs:\nduckdb     %.2000s\nclickhouse %.2000s", k, d.Format(time.DateOnly), a, b)
			}
		}
	}
	for _, s := range subs {
		same("remediation trend of "+s.Name, func(st EventStore) (any, error) { return report.Trend(ctx, st, s.Scope, from, to) })
	}

	// The dashboard: its rollup, refreshed in full.
	rollups := map[EventStore]eventstore.Rollup{}
	for _, st := range engines {
		r, err := st.OpenRollup(ctx, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Refresh(ctx, true); err != nil {
			t.Fatal(err)
		}
		rollups[st] = r
	}
	roll := func(what string, ask func(eventstore.Rollup) (any, error)) {
		t.Helper()
		same("rollup "+what, func(st EventStore) (any, error) { return ask(rollups[st]) })
	}
	roll("days", func(r eventstore.Rollup) (any, error) { return r.RollupDays(ctx) })
	roll("families", func(r eventstore.Rollup) (any, error) { return r.Families(ctx) })
	for mask := range 1 << len(dims) {
		var by []eventstore.Dimension
		for i, d := range dims {
			if mask&(1<<i) != 0 {
				by = append(by, d)
			}
		}
		q := eventstore.HostQuery{From: from, To: to, GroupBy: by}
		roll(fmt.Sprintf("hosts %v", by), func(r eventstore.Rollup) (any, error) { return r.Hosts(ctx, q) })
	}
	roll("spans", func(r eventstore.Rollup) (any, error) { return r.Spans(ctx, to.Add(-time.Hour), []int{1, 7, 30}, "") })
	roll("spans waledac", func(r eventstore.Rollup) (any, error) {
		return r.Spans(ctx, to.Add(-time.Hour), []int{1, 3}, "waledac")
	})
	roll("hours", func(r eventstore.Rollup) (any, error) { return r.Hours(ctx, eventstore.HourQuery{From: from, To: to}) })
	roll("cities", func(r eventstore.Rollup) (any, error) {
		return r.Cities(ctx, eventstore.CityQuery{From: from, To: to, Limit: 50})
	})
	roll("daily by network", func(r eventstore.Rollup) (any, error) {
		return r.DailyByASN(ctx, from, to, []uint32{week[0].ASN, week[1].ASN, 64999})
	})
	roll("zones", func(r eventstore.Rollup) (any, error) {
		return r.Zones(ctx, []string{week[0].Zone, week[1].Zone, "none.example"})
	})
	roll("host list", func(r eventstore.Rollup) (any, error) {
		return r.HostList(ctx, eventstore.HostListQuery{From: from, To: to, Limit: 100})
	})
}
