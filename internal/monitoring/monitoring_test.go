package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/takedown-project/takedown/internal/app/apptest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/testnet"
)

var (
	rulesFile     = filepath.Join("..", "..", "deploy", "prometheus", "takedown-rules.yml")
	rulesTestFile = filepath.Join("..", "..", "deploy", "prometheus", "takedown-rules.test.yml")
	scrapeFile    = filepath.Join("..", "..", "deploy", "prometheus", "prometheus.yml")
	dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "takedown.json")
)

// promtool runs Debian's promtool (package prometheus) with args and
// returns its output; it fails the test when promtool fails, unless
// wantFail.
func promtool(t *testing.T, wantFail bool, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on the PATH: apt-get install prometheus (.ci/run does): %v", err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if (err != nil) != wantFail {
		t.Fatalf("promtool %s: %v (want failure: %v)\n%s", strings.Join(args, " "), err, wantFail, out)
	}
	return string(out)
}

// TestRules: the alerting rules and the example scrape configuration pass
// promtool's checks, the rules its unit tests, and the unit tests notice a
// rule that changes.
func TestRules(t *testing.T) {
	t.Parallel()
	promtool(t, false, "check", "config", scrapeFile)
	promtool(t, false, "check", "rules", rulesFile)
	promtool(t, false, "test", "rules", rulesTestFile)

	// The same tests against rules with a longer wait for TakedownDown
	// must fail, naming the alert.
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	changed := bytes.Replace(rules, []byte("== 0\n        for: 2m"), []byte("== 0\n        for: 10m"), 1)
	if bytes.Equal(changed, rules) {
		t.Fatal("TakedownDown's for: 2m not found in " + rulesFile)
	}
	for name, b := range map[string][]byte{"takedown-rules.yml": changed, "takedown-rules.test.yml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out := promtool(t, true, "test", "rules", filepath.Join(dir, "takedown-rules.test.yml")); !strings.Contains(out, "alertname: TakedownDown") {
		t.Errorf("promtool's failure does not name TakedownDown:\n%s", out)
	}
}

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// readDashboard parses the dashboard strictly and returns it with its
// queries, Grafana's variables replaced by values Prometheus accepts.
func readDashboard(t *testing.T) (dashboard, []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, vars.Replace(tg.Expr))
		}
	}
	return d, exprs
}

// TestDashboard: the dashboard is one that Grafana can import, every
// panel queries the chosen Prometheus, and every query is valid PromQL
// (promtool checks them as recording rules).
func TestDashboard(t *testing.T) {
	t.Parallel()
	d, exprs := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed to import and link the dashboard", d.Title, d.UID)
	}
	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
	}
	if !slices.Contains(names, "datasource") || !slices.Contains(names, "instance") {
		t.Errorf("variables %v, want datasource and instance", names)
	}
	ids := map[int]string{}
	for _, p := range d.Panels {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W < 1 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("panel %q: gridPos %+v is outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: query %q with refId %q", p.Title, tg.Expr, tg.RefID)
			}
		}
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(e) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := promtool(t, false, "check", "rules", path); !strings.Contains(out, fmt.Sprintf("%d rules found", len(exprs))) {
		t.Errorf("promtool did not check the %d queries:\n%s", len(exprs), out)
	}
}

// metricName finds the metric names in a PromQL expression: the names
// takedown, its Go runtime and its process export (up is Prometheus's own).
var metricName = regexp.MustCompile(`\b(?:takedown|go|process)_[a-z0-9_]+\b`)

// rulesExprs returns the expr of every rule in the rules file.
func rulesExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	// promtool has checked the file's structure; the names are in the
	// exprs, and no annotation names a metric.
	var out []string
	for _, m := range regexp.MustCompile(`(?ms)^\s+expr: (\|\n.*?|[^\n]*)\n\s+(?:for|labels):`).FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// roleOnly are the metric families that a single serve, as this test
// starts it, does not export: those of a sensor's uplink and of a
// central's or collector's stream consumer (TestFleetMetricsExported
// checks them), and of the reports' mail delivery, whose series appear
// once a report goes out (TestDeliverMetricsExported).
var roleOnly = []string{"takedown_uplink_", "takedown_collect_", "takedown_deliver_"}

// TestMetricsExported starts a serve with its sinks, calls each, and
// scrapes metrics.listen: every metric the dashboard queries must be
// there, and every one the rules read, but those of roleOnly.
func TestMetricsExported(t *testing.T) {
	t.Parallel()
	ports := make([]int, 4)
	for i := range ports {
		ports[i] = testnet.FreePort(t)
	}
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"], a: [192.0.2.1]}
transfer: {listen: []}
listen: {http: ["127.0.0.1:%d"], https: [], smtp: ["127.0.0.1:%d"]}
`, filepath.Join(dir, "data"), ports[0], ports[1], ports[2], ports[3])))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Seize(t, cfg, "waledac", "waledac", []string{"seized.example"})
	apptest.Serve(t, cfg, "test")

	// A DNS query, an HTTP request and an SMTP greeting make the labelled
	// series appear.
	m := new(dns.Msg)
	m.SetQuestion("www.seized.example.", dns.TypeA)
	c := &dns.Client{Timeout: 2 * time.Second}
	if _, _, err := c.Exchange(m, cfg.DNS.Listen[0]); err != nil {
		t.Fatalf("DNS query: %v", err)
	}
	resp, err := http.Get("http://" + cfg.Listen.HTTP[0] + "/gate.php")
	if err != nil {
		t.Fatalf("HTTP request: %v", err)
	}
	resp.Body.Close()
	conn, err := net.DialTimeout("tcp", cfg.Listen.SMTP[0], 2*time.Second)
	if err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 512)); err != nil {
		t.Fatalf("SMTP greeting: %v", err)
	}
	conn.Close()

	exported := map[string]bool{}
	testnet.WaitFor(t, "the DNS query and the HTTP request counted on metrics.listen", func() bool {
		exported = scrape(t, cfg.Metrics.Listen)
		return exported["takedown_dnssink_queries_total"] && exported["takedown_httpsink_requests_total"]
	})

	_, dashExprs := readDashboard(t)
	if n := checkNames(t, dashboardFile, dashExprs, exported, func(string) bool { return true }); n == 0 {
		t.Errorf("no metric names found in the %d queries of %s", len(dashExprs), dashboardFile)
	}
	ruleExprs := rulesExprs(t)
	if len(ruleExprs) < 10 {
		t.Fatalf("%d exprs read from %s", len(ruleExprs), rulesFile)
	}
	if n := checkNames(t, rulesFile, ruleExprs, exported, func(name string) bool {
		return !slices.ContainsFunc(roleOnly, func(p string) bool { return strings.HasPrefix(name, p) })
	}); n < 10 {
		t.Errorf("only %d metric names found in the rules", n)
	}
}

// checkNames reports each metric name of exprs that is not exported and
// that want selects, and returns how many names it checked.
func checkNames(t *testing.T, file string, exprs []string, exported map[string]bool, want func(name string) bool) int {
	t.Helper()
	n := 0
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			if !want(name) {
				continue
			}
			n++
			if !exported[name] {
				t.Errorf("%s reads %s, which is not exported", file, name)
			}
		}
	}
	return n
}

// scrape returns the metric names that GET /metrics at addr exports,
// with the _bucket, _sum and _count series of histograms and summaries.
func scrape(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on metrics.listen: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue
		}
		out[name] = true
		switch f.GetType().String() {
		case "HISTOGRAM", "SUMMARY":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
	}
	return out
}
