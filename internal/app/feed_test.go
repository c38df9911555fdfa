package app

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/scope"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestFeedIsolation: random subscribers with random scopes (networks,
// address blocks, countries of the demo world) over random infected
// hosts, all through the running serve: each subscriber's report and event
// feed, fetched with its own key, hold every host of its scope and no
// other; every read is in the audit log.
func TestFeedIsolation(t *testing.T) {
	dir := t.TempDir()
	world, err := demoworld.New()
	if err != nil {
		t.Fatal(err)
	}
	worldDB := filepath.Join(dir, demoworld.FileName)
	if err := world.WriteFile(worldDB); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"]}
transfer: {listen: []}
listen: {http: [], https: [], smtp: [], tcp: [], udp: []}
enrich: {databases: [%s]}
pipeline: {flush_ms: 50}
reports: {feed_per_minute: 6000, feed_burst: 1000}
`, filepath.Join(dir, "data"), testnet.FreePort(t), testnet.FreePort(t), worldDB)))
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "wal", "waledac", "seized.example")

	// Subscribers: random mixes of the world's networks, /16–/24 blocks of
	// 127/8 and countries.
	r := rand.New(rand.NewPCG(7, 11))
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	type sub struct {
		name, key string
		scope     scope.Scope
	}
	var subs []sub
	for i := range 12 {
		var asns, cidrs, ccs []string
		for range r.IntN(3) {
			asns = append(asns, fmt.Sprint(world.Networks[r.IntN(len(world.Networks))].ASN))
		}
		for range r.IntN(3) {
			bits := 16 + r.IntN(9)
			p, _ := netip.AddrFrom4([4]byte{127, byte(r.IntN(4)), byte(r.IntN(256)), 0}).Prefix(bits)
			cidrs = append(cidrs, p.String())
		}
		if r.IntN(3) == 0 || len(asns)+len(cidrs) == 0 {
			ccs = append(ccs, world.Countries[r.IntN(len(world.Countries))].Code)
		}
		name := fmt.Sprintf("isp-%02d", i)
		s, err := local.Registry.AddSubscriber(ctx, registry.NewSubscriber{
			Name: name, Org: name, Contacts: []string{"abuse@" + name + ".example"}, ASNs: asns, CIDRs: cidrs, Countries: ccs,
		}, registry.Change{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		key, _, err := local.Registry.AddAPIKey(ctx, name, registry.Change{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub{name, key, s.Scope})
	}
	local.Close()
	stop := serveInProcess(t, cfg)
	defer stop()

	// Infected hosts: 3,000 callbacks from 1,500 demo-world addresses,
	// yesterday, sent in as a sensor would.
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	var evs []event.Event
	for i := range 3000 {
		evs = append(evs, event.Event{
			Time: day.Add(time.Duration(i) * 28 * time.Second), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: world.Addr(uint64(r.IntN(1500))), SrcPort: 40000, Domain: "seized.example", HTTPMethod: "POST", HTTPPath: "/x.htm",
		})
	}
	tok, _ := ReadToken(cfg.API.TokenFile)
	admin := api.NewClient(cfg.API.Listen, tok, "test")
	if _, err := admin.Ingest(ctx, "sensor-1", evs); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the events stored", func() bool {
		st, err := admin.Status(ctx)
		return err == nil && st.Store.Events == int64(len(evs))
	})

	get := func(key, path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+cfg.API.Listen+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	covered := 0
	for _, s := range subs {
		want := map[string]bool{}
		for _, e := range evs {
			n, _ := world.NetworkOf(e.SrcIP)
			if s.scope.Contains(e.SrcIP, n.ASN, n.CountryCode) {
				want[e.SrcIP.String()] = true
			}
		}
		covered += len(want)
		code, body := get(s.key, "/api/v1/reports/"+day.Format(time.DateOnly)+"?format=csv")
		if code != 200 {
			t.Fatalf("%s report: %d %s", s.name, code, body)
		}
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil || len(rows) == 0 || rows[0][2] != "src_ip" {
			t.Fatalf("%s report: %v\n%s", s.name, err, body)
		}
		got := map[string]bool{}
		for _, row := range rows[1:] {
			got[row[2]] = true
		}
		checkSame(t, s.name+" report", got, want)

		// Shadowserver's sinkhole HTTP event report: a row per callback.
		path := "/api/v1/reports/" + day.Format(time.DateOnly) + "?format=event4_sinkhole_http"
		req, _ := http.NewRequest("GET", "http://"+cfg.API.Listen+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantName := `attachment; filename="` + day.Format(time.DateOnly) + "-event4_sinkhole_http-" + s.name + `.csv"`
		if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != wantName {
			t.Fatalf("%s sinkhole report: %d %q %s", s.name, resp.StatusCode, resp.Header.Get("Content-Disposition"), b)
		}
		rows, err = csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(rows) == 0 || !slices.Equal(rows[0][:3], []string{"timestamp", "protocol", "src_ip"}) {
			t.Fatalf("%s sinkhole report: %v\n%s", s.name, err, b)
		}
		got = map[string]bool{}
		callbacks := 0
		for _, row := range rows[1:] {
			got[row[2]] = true
			callbacks++
		}
		checkSame(t, s.name+" sinkhole report", got, want)
		if n := countIn(evs, want); callbacks != n {
			t.Errorf("%s sinkhole report: %d rows, want %d callbacks", s.name, callbacks, n)
		}

		code, body = get(s.key, "/api/v1/events?since="+day.Add(-time.Second).Format(time.RFC3339))
		if code != 200 {
			t.Fatalf("%s events: %d %s", s.name, code, body)
		}
		got = map[string]bool{}
		for l := range strings.Lines(body) {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%s events: %v: %q", s.name, err, l)
			}
			got[fmt.Sprint(e["source.ip"])] = true
		}
		checkSame(t, s.name+" events", got, want)
	}
	if covered == 0 {
		t.Fatal("the random scopes covered no host: the test proves nothing")
	}
	// Every read is audited, under the subscriber's name.
	entries, err := admin.Audit(ctx, registry.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	reads := map[string]int{}
	for _, e := range entries {
		if strings.HasPrefix(e.Action, "feed.") {
			reads[e.Actor]++
		}
	}
	for _, s := range subs {
		if reads["subscriber:"+s.name] != 3 {
			t.Errorf("%s: %d feed reads audited, want 3", s.name, reads["subscriber:"+s.name])
		}
	}
}

func checkSame(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	var extra, missing []string
	for ip := range got {
		if !want[ip] {
			extra = append(extra, ip)
		}
	}
	for ip := range want {
		if !got[ip] {
			missing = append(missing, ip)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	if len(extra) > 0 {
		t.Errorf("%s: %d hosts OUTSIDE the scope, e.g. %v", what, len(extra), extra[:min(5, len(extra))])
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d hosts of the scope missing, e.g. %v", what, len(missing), missing[:min(5, len(missing))])
	}
}

// countIn counts the events from the addresses of in.
func countIn(evs []event.Event, in map[string]bool) int {
	n := 0
	for _, e := range evs {
		if in[e.SrcIP.String()] {
			n++
		}
	}
	return n
}
