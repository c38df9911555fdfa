// Package browsertest drives the web dashboard in a real browser (Debian's
// chromium, through the DevTools protocol with chromedp) against a serve
// fed by the botnet simulator, all on loopback.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/app/apptest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/sim"
	"github.com/takedown-project/takedown/internal/testnet"
	"github.com/takedown-project/takedown/internal/users"
	"github.com/takedown-project/takedown/internal/worldmap"
)

const password = "browser test password"

// artifacts is where the screenshots go: $TAKEDOWN_ARTIFACTS, else a
// temporary directory.
func artifacts(t *testing.T) string {
	dir := os.Getenv("TAKEDOWN_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless chromium; the test fails (not skips) without it.
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (Debian package chromium; .ci/run installs it)")
	}
	actx, cancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1100),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
	)
	t.Cleanup(cancel)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	logConsole(t, bctx)
	return bctx
}

// logConsole logs what the page's scripts print and throw.
func logConsole(t *testing.T, ctx context.Context) {
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := ""
			if d.Exception != nil {
				desc = d.Exception.Description
			}
			t.Logf("page exception: %s %s at %s:%d", d.Text, desc, d.URL, d.LineNumber+1)
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value))
			}
			t.Logf("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// capture records the bodies of the responses a tab receives and the
// messages of its event streams.
type capture struct {
	mu     sync.Mutex
	bodies map[string]string // URL → body (the last)
	mimes  map[string]string
	events []string
	reqs   map[network.RequestID]string
	wg     sync.WaitGroup
}

func listen(ctx context.Context) (*capture, error) {
	c := &capture{bodies: map[string]string{}, mimes: map[string]string{}, reqs: map[network.RequestID]string{}}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventResponseReceived:
			c.mu.Lock()
			c.reqs[ev.RequestID] = ev.Response.URL
			c.mimes[ev.Response.URL] = ev.Response.MimeType
			c.mu.Unlock()
		case *network.EventEventSourceMessageReceived:
			c.mu.Lock()
			c.events = append(c.events, ev.Data)
			c.mu.Unlock()
		case *network.EventLoadingFinished:
			c.mu.Lock()
			url, ok := c.reqs[ev.RequestID]
			c.mu.Unlock()
			if !ok {
				return
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: ev.RequestID})
				if err == nil {
					c.mu.Lock()
					c.bodies[url] = string(res.Body)
					c.mu.Unlock()
				}
			}()
		}
	})
	return c, err
}

// seize adds a case of the family with the names, restrained, and the
// dashboard's users.
func seed(t *testing.T, cfg config.Config, cases map[string][]string) {
	t.Helper()
	ctx := context.Background()
	local, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ch := registry.Change{Actor: "browser-test"}
	for fam, names := range cases {
		name := fam[:3]
		if _, err := local.Registry.AddCase(ctx, registry.NewCase{Name: name, Court: "E.D. Va.", Docket: "1:10-cv-156", Family: fam}, ch); err != nil {
			t.Fatal(err)
		}
		if _, err := local.Registry.AddOrder(ctx, name, registry.NewOrder{Type: registry.OrderTRO, Reference: "Dkt. 12",
			Issued: time.Now().UTC().AddDate(0, 0, -3), ObjectionDeadline: time.Now().UTC().AddDate(0, 0, 11)}, ch); err != nil {
			t.Fatal(err)
		}
		if _, err := local.Registry.ImportDomains(ctx, name, "list", []byte(strings.Join(names, "\n")), ch); err != nil {
			t.Fatal(err)
		}
		if _, err := local.Registry.SetState(ctx, names, registry.StateRestrained, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := local.Registry.RecordDelegation(ctx, []registry.DelegationCheck{{Domain: cases[sim.Waledac][0], CheckedAt: time.Now().UTC(),
		Verified: true, NS: []string{"ns1.sinkhole.invalid"}, Addrs: []string{"127.0.0.1"},
		DSState: registry.DSStale, DS: []string{"2371 13 2 1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7C2F1A3D3B4C5D6E7F8091A2B"}}}, ch); err != nil {
		t.Fatal(err)
	}
	us, err := users.Open(ctx, users.Config{DB: local.DB, Params: users.Params{Memory: 1024, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for name, role := range map[string]users.Role{"ana": users.Analyst, "vic": users.Viewer} {
		if _, err := us.Add(ctx, name, role, []byte(password)); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	ipv4RE = regexp.MustCompile(`\b(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\b`)
	ipv6RE = regexp.MustCompile(`(?i)\b[0-9a-f]{0,4}(:[0-9a-f]{0,4})*::[0-9a-f:]*\b|\b[0-9a-f]{1,4}(:[0-9a-f]{1,4}){4,7}\b`)
)

// TestDashboard: serve with the simulator calling in, and the dashboard in
// chromium: the login, the overview counting up live, the map equal to the
// API's numbers, an analyst's list of infected addresses, and a viewer who
// never receives an IP address, in a page or in anything the page fetched.
func TestDashboard(t *testing.T) {
	start := time.Now()
	out := artifacts(t)
	t.Logf("screenshots in %s", out)
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
	dnsAddr, httpAddr, smtpAddr, apiAddr := port(), port(), port(), port()
	cfg, err := config.Parse("browser.yaml", []byte(fmt.Sprintf(`
data_dir: %s
sensor: browser-test
api: {listen: "%s"}
dns:
  listen: ["%s"]
  rrl: {responses_per_second: -1}
transfer: {listen: []}
listen: {http: ["%s"], https: [], smtp: ["%s"], tcp: [], udp: []}
enrich: {databases: [%s]}
pipeline: {flush_ms: 100}
dashboard: {refresh_ms: 300}
`, filepath.Join(dir, "data"), apiAddr, dnsAddr, httpAddr, smtpAddr, worldDB)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	waledac, dga := seizedNames(now, 30, -1, 2)
	seed(t, cfg, map[string][]string{sim.Waledac: waledac, sim.Conficker: apptest.Dedupe(dga)})

	client := apptest.Serve(t, cfg, "browser-test")
	base := "http://" + apiAddr

	s, err := sim.New(sim.Config{
		Targets: sim.Targets{DNS: dnsAddr, HTTP: httpAddr, SMTP: smtpAddr},
		Bots:    1500, Speed: 2000, Duration: 10 * time.Second, Seed: 11, Start: now, World: world,
		Families: []sim.Share{{Family: sim.Waledac, Share: 0.7}, {Family: sim.Conficker, Share: 0.2}, {Family: sim.Rustock, Share: 0.1}},
		Domains:  map[string][]string{sim.Waledac: waledac, sim.Conficker: dga},
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	shot := func(ctx context.Context, name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
			t.Error(err)
		}
	}
	run := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			shot(ctx, "failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	// waitJS polls a JavaScript condition in the page.
	waitJS := func(ctx context.Context, what, js string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				shot(ctx, "failed")
				t.Fatalf("timed out after %s waiting for %s", within, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	eval := func(ctx context.Context, what, js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			shot(ctx, "failed")
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	html := func(ctx context.Context, what string, sel chromedp.CSS) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.OuterHTML(sel))
		if err != nil {
			shot(ctx, "failed")
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	login := func(ctx context.Context, name string) {
		t.Helper()
		run(ctx, "login as "+name,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("login")),
			chromedp.SendKeys(chromedp.ID("name"), name),
			chromedp.SendKeys(chromedp.ID("password"), password),
			chromedp.Click(chromedp.ID("submit")),
			chromedp.WaitVisible(chromedp.CSS(`#total-today[data-value]:not([data-value=""])`)),
		)
	}

	// 1. The analyst logs in; a wrong password first.
	run(bctx, "wrong password",
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("name"), "ana"),
		chromedp.SendKeys(chromedp.ID("password"), "not the password"),
		chromedp.Click(chromedp.ID("submit")),
	)
	waitJS(bctx, "the login error", `document.getElementById("error").textContent.includes("wrong user name or password")`, 30*time.Second)
	login(bctx, "ana")

	// 2. Live: the bots call in and today's count goes up without a
	// reload of the page.
	before := eval(bctx, "today's count", `window.__sameDocument = true; document.getElementById("total-today").dataset.value`)
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(context.Background()) }()
	waitJS(bctx, "today's count to change while bots call in",
		fmt.Sprintf(`document.getElementById("total-today").dataset.value !== %q && window.__sameDocument === true`, before), 60*time.Second)
	waitJS(bctx, "the live indicator", `document.getElementById("live").classList.contains("on")`, 30*time.Second)
	shot(bctx, "overview-live")
	if err := <-simDone; err != nil {
		t.Fatal(err)
	}
	// Everything stored, and the dashboard's data newer than that.
	testnet.WaitFor(t, "the pipeline to store everything", func() bool {
		st, err := client.Status(ctx)
		return err == nil && st.Pipeline.Backlog == 0 && st.Pipeline.Recorded == st.Pipeline.Stored+st.Pipeline.Dropped
	})
	drained := time.Now().UTC()
	waitJS(bctx, "the overview to show data stored after the simulation",
		fmt.Sprintf(`new Date(document.getElementById("ov-asof").dataset.asof).getTime() > %d`, drained.UnixMilli()), 120*time.Second)
	after := eval(bctx, "today's count", `document.getElementById("total-today").dataset.value`)
	truth := s.Truth()
	if truth.Callbacks < 1000 {
		t.Fatalf("only %d callbacks", truth.Callbacks)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	tot, err := client.UniqueHosts(ctx, eventstore.HostQuery{From: today, To: today.AddDate(0, 0, 1), GroupBy: []eventstore.Dimension{eventstore.DimFamily}})
	if err != nil {
		t.Fatal(err)
	}
	var infectedFamilies int64
	for _, r := range tot {
		if r.Family != "" {
			infectedFamilies += r.IPs
		}
	}
	// A host of two families counts once in the total: at most the sum.
	if got, _ := strconv.ParseInt(after, 10, 64); got == 0 || got > infectedFamilies {
		t.Errorf("overview: %d hosts today; the API counts %d over the families", got, infectedFamilies)
	}

	// 3. The map of waledac equals the API's numbers.
	run(bctx, "map", chromedp.Navigate(base+"/ui/#/map?family=waledac"))
	waitJS(bctx, "the map", `!!document.querySelector("#map svg path.country") && !!document.getElementById("map-total")`, 60*time.Second)
	waitJS(bctx, "the map's data newer than the simulation",
		fmt.Sprintf(`new Date(document.getElementById("map-summary").dataset.asof).getTime() > %d`, drained.UnixMilli()), 60*time.Second)
	var page struct {
		Day      string `json:"day"`
		Total    int64  `json:"total"`
		Coloured int    `json:"coloured"`
		Paths    int    `json:"paths"`
		Listed   int    `json:"listed"`
		Rows     int    `json:"rows"`
		Circles  int    `json:"circles"`
		Legend   int    `json:"legend"`
	}
	js := eval(bctx, "map numbers", `JSON.stringify({
		day: document.getElementById("map-summary").dataset.day,
		total: +document.getElementById("map-total").dataset.value,
		coloured: +document.getElementById("map-coloured").dataset.value,
		paths: document.querySelectorAll("#map svg path.country:not(.none)").length,
		listed: +document.getElementById("map-countries").dataset.value,
		rows: document.querySelectorAll("#map-countries-table tbody tr").length,
		circles: document.querySelectorAll("#map svg circle.city").length,
		legend: document.querySelectorAll("#map svg rect.legend").length,
	})`)
	if err := json.Unmarshal([]byte(js), &page); err != nil {
		t.Fatal(err)
	}
	day, err := time.Parse(time.DateOnly, page.Day)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := client.UniqueHosts(ctx, eventstore.HostQuery{From: day, To: day.AddDate(0, 0, 1), Family: sim.Waledac, GroupBy: []eventstore.Dimension{eventstore.DimCountry}})
	if err != nil {
		t.Fatal(err)
	}
	shaped := map[string]bool{}
	for _, c := range worldmap.Countries() {
		shaped[c.Code] = c.Code != "AQ"
	}
	var apiTotal int64
	apiCountries, apiShaped := 0, 0
	for _, r := range rows {
		apiTotal += r.IPs
		if r.Country != "" {
			apiCountries++
		}
		if shaped[r.Country] {
			apiShaped++
		}
	}
	t.Logf("map of %s: %d hosts in %d countries, %d coloured; API: %d hosts in %d countries, %d with a shape",
		page.Day, page.Total, page.Listed, page.Paths, apiTotal, apiCountries, apiShaped)
	if page.Total != apiTotal || page.Listed != apiCountries || page.Rows != apiCountries || page.Paths != apiShaped || page.Coloured != apiShaped {
		t.Errorf("map %+v; the API has %d hosts in %d countries, %d on the map", page, apiTotal, apiCountries, apiShaped)
	}
	if apiShaped < 10 || page.Circles == 0 || page.Legend == 0 {
		t.Errorf("map %+v: want many countries, cities and a legend", page)
	}
	shot(bctx, "map")

	// 4. The analyst clicks the biggest country and lists its hosts.
	run(bctx, "country", chromedp.Click(chromedp.CSS(`#map-countries-table tbody tr:first-child button`)),
		chromedp.WaitVisible(chromedp.ID("country-hosts")), chromedp.Click(chromedp.ID("country-hosts")),
		chromedp.WaitVisible(chromedp.ID("hosts-table")))
	analystHTML := html(bctx, "hosts", "#hosts-table")
	known := ipv4RE.FindAllString(analystHTML, -1)
	if len(known) == 0 {
		t.Fatal("the analyst's host list shows no address")
	}
	shot(bctx, "map-country-hosts")

	// 5. A viewer, in a browser context of its own, goes everywhere; no
	// IP address reaches it.
	vctx, cancelV := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	defer cancelV()
	capt, err := listen(vctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(vctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	login(vctx, "vic")
	visit := func(hash, ready, name string) string {
		t.Helper()
		run(vctx, "view "+hash, chromedp.Navigate(base+"/ui/#"+hash))
		waitJS(vctx, "view "+hash, `!!document.querySelector(`+strconv.Quote(ready)+`)`, 60*time.Second)
		shot(vctx, name)
		return html(vctx, "html of "+hash, "html")
	}
	pages := map[string]string{
		"overview": visit("/overview", "#ov-nets-table tbody tr", "viewer-overview"),
		"map":      visit("/map", "#map svg path.country", "viewer-map"),
		"networks": visit("/networks", "#networks-table tbody tr", "viewer-networks"),
		"cases":    visit("/cases", "#deadlines-table", "viewer-cases"),
		"domains":  visit("/domains", "#domains-table tbody tr", "viewer-domains"),
	}
	// The registrant's DS record of the first Waledac domain is still at
	// the parent: the cases page warns, the domains page says so.
	if !strings.Contains(pages["cases"], "Stale DS records at the parent of 1 domain(s)") || !strings.Contains(pages["cases"], waledac[0]) {
		t.Error("the cases page does not warn of the stale DS record")
	}
	if !strings.Contains(pages["domains"], "stale DS: validating resolvers SERVFAIL") || !strings.Contains(pages["domains"], "DS 2371 13 2 1F987CC6") {
		t.Error("the domains page does not show the stale DS record")
	}
	run(vctx, "a country", chromedp.Navigate(base+"/ui/#/map"), chromedp.WaitVisible(chromedp.ID("map-countries-table")),
		chromedp.Click(chromedp.CSS(`#map-countries-table tbody tr:first-child button`)),
		chromedp.WaitVisible(chromedp.ID("country-networks")))
	if n := eval(vctx, "no host list for viewers", `String(document.querySelectorAll("#country-hosts").length)`); n != "0" {
		t.Error("the viewer is offered the list of infected hosts")
	}
	first := eval(vctx, "a network", `document.querySelector("#country-networks tbody td").textContent.replace("AS", "")`)
	pages["network"] = visit("/networks?asn="+first, "#net-trend-table", "viewer-network")
	// The viewer's fetches of the host list are refused, whatever the page.
	status, err := chromedp.Run(vctx, chromedp.Evaluate[int](`fetch("/ui/api/hosts?country=DE").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 403 {
		t.Errorf("viewer's fetch of the host list: %d %v, want 403", status, err)
	}
	capt.wg.Wait()
	capt.mu.Lock()
	defer capt.mu.Unlock()
	check := func(where, text string, generic bool) {
		t.Helper()
		for _, ip := range known {
			if strings.Contains(text, ip) {
				t.Errorf("viewer: %s holds the infected address %s", where, ip)
				return
			}
		}
		if generic {
			if m := ipv4RE.FindString(text); m != "" {
				t.Errorf("viewer: %s holds the address %s", where, m)
			}
			if m := ipv6RE.FindString(text); m != "" && strings.Count(m, ":") >= 2 {
				t.Errorf("viewer: %s holds the IPv6 address %s", where, m)
			}
		}
	}
	for name, html := range pages {
		check("the page "+name, html, true)
	}
	var jsonSeen, sse int
	for url, body := range capt.bodies {
		mime := capt.mimes[url]
		generic := strings.Contains(mime, "json") || strings.Contains(mime, "html")
		if strings.Contains(url, "/ui/api/") {
			jsonSeen++
		}
		check(url, body, generic)
	}
	for _, ev := range capt.events {
		sse++
		check("a live event", ev, true)
	}
	if jsonSeen < 8 {
		t.Errorf("captured only %d answers of /ui/api/: %v", jsonSeen, keys(capt.bodies))
	}
	t.Logf("viewer: %d pages, %d answers (%d of the API), %d live events checked; %d known addresses; %d callbacks simulated; %s in all",
		len(pages), len(capt.bodies), jsonSeen, sse, len(known), truth.Callbacks, time.Since(start).Round(time.Millisecond))
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
