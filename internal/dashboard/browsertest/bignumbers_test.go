package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/takedown-project/takedown/internal/app/apptest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/sim"
	"github.com/takedown-project/takedown/internal/testnet"
)

// conficker makes every count the dashboard's API answers Conficker-sized
// before the page sees it: a count c > 0 becomes 1,000,000 + 1,009·c
// (seven digits, the order kept), so that every chart and table is drawn
// as a takedown of millions of hosts would draw it.
const conficker = `(() => {
  const counts = new Set(["hosts", "callbacks", "totals", "total", "unknown", "today", "events", "queries", "min", "max"]);
  const big = (v) => (typeof v === "number" && v > 0 ? 1000000 + 1009 * v : v);
  const scale = (x) => {
    if (Array.isArray(x)) return x.map(scale);
    if (x && typeof x === "object") {
      for (const [k, v] of Object.entries(x)) x[k] = counts.has(k) ? (Array.isArray(v) ? v.map((e) => (typeof e === "number" ? big(e) : scale(e))) : typeof v === "number" ? big(v) : scale(v)) : scale(v);
    }
    return x;
  };
  const orig = window.fetch;
  window.fetch = async (input, init) => {
    const res = await orig(input, init);
    const url = String(input && input.url || input);
    if (!url.includes("/ui/api/") || !res.ok || !(res.headers.get("content-type") || "").includes("json")) return res;
    const body = scale(await res.json());
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
  };
})();`

// fits is a script that checks, in the page shown, every number the
// dashboard writes: the y-axis labels of the charts lie wholly inside
// their chart, the top one is the largest bar's value in full, and no
// number in a table or a stat is cut by its cell. It returns the
// problems, and how many labels and cells it looked at.
const fits = `(() => {
  const problems = [];
  let labels = 0, cells = 0, maxLabel = 0;
  const num = (s) => +s.replace(/,/g, "");
  for (const s of document.querySelectorAll("main svg[viewBox]")) {
    const vb = s.viewBox.baseVal;
    const axis = [...s.querySelectorAll("text.axis")].filter((t) => /^[\d,]+$/.test(t.textContent));
    let top = 0;
    for (const t of axis) {
      labels++;
      const b = t.getBBox();
      if (b.x < vb.x || b.x + b.width > vb.x + vb.width) problems.push("axis label " + t.textContent + " is cut: x " + b.x.toFixed(1) + ", width " + b.width.toFixed(1));
      if (!/^\d{1,3}(,\d{3})*$/.test(t.textContent)) problems.push("axis label " + JSON.stringify(t.textContent) + " is not a whole count");
      top = Math.max(top, num(t.textContent));
    }
    const bars = [...s.querySelectorAll("rect.b title")].map((x) => num(x.textContent.replace(/^.*: /, "")));
    if (axis.length && bars.length && top !== Math.max(1, ...bars)) problems.push("top axis label " + top + ", largest bar " + Math.max(...bars));
    maxLabel = Math.max(maxLabel, top);
  }
  for (const c of document.querySelectorAll("main td.num, main .stat .value, main strong[data-value]")) {
    if (!c.offsetParent && !c.closest(".sr-only")) continue;
    if (c.closest(".sr-only")) continue;
    cells++;
    if (c.scrollWidth > c.clientWidth + 1 && getComputedStyle(c).display !== "inline") problems.push((c.id || c.className || c.tagName) + " " + JSON.stringify(c.textContent) + " is cut: " + c.scrollWidth + " > " + c.clientWidth);
    const r = c.getBoundingClientRect();
    if (r.right > document.documentElement.clientWidth + 1) problems.push(JSON.stringify(c.textContent) + " runs off the page");
  }
  return JSON.stringify({ problems, labels, cells, maxLabel });
})()`

// TestDashboardConfickerSized draws every view with seven-digit counts
// (the API's answers scaled in the page, see conficker) and checks that
// every axis label and table number shows in full.
func TestDashboardConfickerSized(t *testing.T) {
	dir := t.TempDir()
	world, err := demoworld.New()
	if err != nil {
		t.Fatal(err)
	}
	worldDB := filepath.Join(dir, demoworld.FileName)
	if err := world.WriteFile(worldDB); err != nil {
		t.Fatal(err)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t))
	cfg, err := config.Parse("big.yaml", []byte(fmt.Sprintf(`
data_dir: %s
sensor: browser-test
api: {listen: "%s"}
dns: {listen: [], rrl: {responses_per_second: -1}}
transfer: {listen: []}
listen: {http: [], https: [], smtp: [], tcp: [], udp: []}
enrich: {databases: [%s]}
pipeline: {flush_ms: 100}
dashboard: {refresh_ms: 300}
`, filepath.Join(dir, "data"), apiAddr, worldDB)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	waledac, dga := seizedNames(now, 20, -2, 1)
	seed(t, cfg, map[string][]string{sim.Waledac: waledac, sim.Conficker: apptest.Dedupe(dga)})
	client := apptest.Serve(t, cfg, "browser-test")
	base := "http://" + apiAddr

	// Two days of history, up to now, through the ingest endpoint (the
	// targets are not called).
	unused := "127.0.0.1:9"
	s, err := sim.New(sim.Config{
		Targets: sim.Targets{DNS: unused, HTTP: unused, SMTP: unused},
		Bots:    600, Seed: 7, Start: now, World: world,
		Families: []sim.Share{{Family: sim.Waledac, Share: 0.7}, {Family: sim.Conficker, Share: 0.2}, {Family: sim.Rustock, Share: 0.1}},
		Domains:  map[string][]string{sim.Waledac: waledac, sim.Conficker: dga},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.Backfill(ctx, 47*time.Hour, func(ctx context.Context, b []event.Event) error {
		_, err := client.Ingest(ctx, sim.SensorID, b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the pipeline to store the history", func() bool {
		st, err := client.Status(ctx)
		return err == nil && st.Pipeline.Backlog == 0 && st.Pipeline.Stored > 0
	})

	bctx := browser(t, ctx)
	out := artifacts(t)
	if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: conficker}); err != nil {
		t.Fatal(err)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, time.Minute)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do("login",
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("name"), "ana"),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit")),
		// The history counted (and scaled): the dashboard's data is newer
		// than the ingest.
		chromedp.WaitVisible(chromedp.CSS(`#total-today[data-value]:not([data-value=""]):not([data-value="0"])`)),
	)
	type result struct {
		Problems []string `json:"problems"`
		Labels   int      `json:"labels"`
		Cells    int      `json:"cells"`
		MaxLabel int64    `json:"maxLabel"`
	}
	check := func(hash, ready string, wantLabels int) {
		t.Helper()
		if hash != "" {
			do("view "+hash, chromedp.Navigate(base+"/ui/#"+hash), chromedp.WaitVisible(chromedp.CSS(ready)))
		}
		if png, err := chromedp.Run(bctx, chromedp.FullScreenshot(90)); err == nil {
			os.WriteFile(filepath.Join(out, "big-"+strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(hash)+".png"), png, 0o644)
		}
		js, err := chromedp.Run(bctx, chromedp.Evaluate[string](fits))
		if err != nil {
			t.Fatalf("%s: %v", hash, err)
		}
		var r result
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Problems {
			t.Errorf("%s: %s", hash, p)
		}
		if r.Labels < wantLabels || r.Cells == 0 || (wantLabels > 0 && r.MaxLabel < 1_000_000) {
			t.Errorf("%s: %d axis labels (largest %d), %d numbers checked: the page did not draw Conficker-sized counts", hash, r.Labels, r.MaxLabel, r.Cells)
		}
		t.Logf("%s: %d axis labels (largest %s), %d numbers in full", hash, r.Labels, strconv.FormatInt(r.MaxLabel, 10), r.Cells)
	}
	check("/overview", "#ov-hours svg text.axis", 3)
	check("/networks", "#networks-table tbody tr", 0)
	asn, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#networks-table tbody td").textContent.replace("AS", "")`))
	if err != nil {
		t.Fatal(err)
	}
	check("/networks?asn="+asn, "#net-trend-table", 3)
	check("/map", "#map-countries-table tbody tr", 0)
	// A country's networks and its infected hosts, for the analyst.
	do("a country", chromedp.Click(chromedp.CSS(`#map-countries-table tbody tr:first-child button`)),
		chromedp.WaitVisible(chromedp.CSS("#country-networks")), chromedp.Click(chromedp.CSS("#country-hosts")),
		chromedp.WaitVisible(chromedp.CSS("#hosts-table tbody tr")))
	check("", "#hosts-table tbody tr", 0)
}

// seizedNames are n Waledac names and 25 DGA names of each day from
// fromDay to toDay around now.
func seizedNames(now time.Time, n, fromDay, toDay int) (waledac, dga []string) {
	for i := range n {
		waledac = append(waledac, fmt.Sprintf("seized-%02d.example.com", i))
	}
	for d := fromDay; d <= toDay; d++ {
		dga = append(dga, sim.DGANames(now.AddDate(0, 0, d), sim.DGANamesPerDay)[:25]...)
	}
	return waledac, dga
}
