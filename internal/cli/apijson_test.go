package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/quarantine"
)

// apiKey is what every key of the API's JSON looks like: snake_case; the
// subscribers' feed writes IntelMQ's dotted names (source.ip).
var apiKey = regexp.MustCompile(`^[a-z][a-z0-9]*([_.][a-z0-9]+)*$`)

// getRoutes returns the GET patterns registered in a source file of the
// repository, so that a route added later is walked too.
func getRoutes(t *testing.T, file string, re *regexp.Regexp) []string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range re.FindAllSubmatch(src, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// walkKeys calls fn with each object key of v and its path.
func walkKeys(path string, v any, fn func(path, key string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			fn(path, k)
			walkKeys(path+"."+k, x, fn)
		}
	case []any:
		for i, x := range v {
			walkKeys(fmt.Sprintf("%s[%d]", path, i), x, fn)
		}
	}
}

// TestAPIJSONKeys walks every GET route of the admin API, of the
// dashboard's API and of the subscribers' feed on a serve with data in
// every table, and fails on a key that is not snake_case (a Go field name
// such as "IPs" or "Day") and on a zero time written out. A route that
// answers with no key at all fails too, unless listed with the reason it
// is not JSON: a walk over empty answers would check nothing.
func TestAPIJSONKeys(t *testing.T) {
	cfgPath, addr, day, _ := reportSetup(t)
	d := day.Format(time.DateOnly)
	dir := t.TempDir()
	list := filepath.Join(dir, "list.csv")
	os.WriteFile(list, []byte(domainList), 0o600)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600)
	mustRun(t, cfgPath, "cases", "add", "waledac-2010", "--court", "E.D. Va.", "--docket", "1:10-cv-00156", "--family", "waledac")
	mustRun(t, cfgPath, "cases", "add-order", "waledac-2010", "--type", "tro", "--issued", d, "--expires", day.AddDate(0, 0, 7).Format(time.DateOnly))
	mustRun(t, cfgPath, "domains", "import", "--case", "waledac-2010", list)
	mustRun(t, cfgPath, "domains", "set-state", "--state", "restrained", "--case", "waledac-2010")
	mustRun(t, cfgPath, "users", "add", "ana", "--role", "admin", "--password-file", pw)
	key := strings.TrimSpace(mustRun(t, cfgPath, "subscribers", "key", "add", "isp-a"))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = app.Effective(cfg)
	q, err := quarantine.Open(cfg.Pipeline.QuarantineDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Add(quarantine.NewEntry(quarantine.KindUndecodable, "not an event", "test", []byte("junk"), time.Now())); err != nil {
		t.Fatal(err)
	}
	// The case signs, so that /v1/dnssec/keys and /ds answer with a key.
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	signed := strings.Replace(string(text), "  rrl: {responses_per_second: -1}\n", "  rrl: {responses_per_second: -1}\n  dnssec: {cases: [waledac-2010]}\n", 1)
	if signed == string(text) {
		t.Fatal("the test config has no dns.rrl line to put dns.dnssec after")
	}
	if err := os.WriteFile(cfgPath, []byte(signed), 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, cfgPath, addr)
	mustRun(t, cfgPath, "report", "send", "--date", d)
	token, err := app.ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}

	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Timeout: 30 * time.Second, Jar: jar}
	get := func(path string, hd map[string]string) (int, string, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		for k, v := range hd {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	resp, err := hc.Post("http://"+addr+"/ui/api/login", "application/json",
		strings.NewReader(`{"name":"ana","password":"correct horse battery staple"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()

	// Values for the path's parameters, and the query each route needs to
	// answer with data.
	params := strings.NewReplacer("{case}", "waledac-2010", "{date}", d, "{cc}", "DE", "{asn}", "64500")
	query := map[string]string{
		"GET /v1/domains/{name}":           "/v1/domains/bad.example.com",
		"GET /v1/subscribers/{name}":       "/v1/subscribers/isp-a",
		"GET /v1/stats/unique-hosts":       "/v1/stats/unique-hosts?by=day,family,asn,country&from=" + d,
		"GET /v1/stats/callbacks-per-hour": "/v1/stats/callbacks-per-hour?from=" + d,
		"GET /v1/trend":                    "/v1/trend?subscriber=isp-a&from=" + d,
		"GET /ui/api/hosts":                "/ui/api/hosts?asn=64500",
		"GET /api/v1/events":               "/api/v1/events?since=" + d + "T00:00:00Z",
	}
	notJSON := map[string]string{
		"GET /metrics":        "Prometheus's text format",
		"GET /ui/api/map.svg": "an SVG image",
		"GET /ui/api/live":    "an event stream that does not end",
		// A report file, in its own format (STIX's keys are the
		// standard's, extension ids among them); the report tests
		// check each format against its schema or its reader.
		"GET /v1/reports/{date}":     "a report file",
		"GET /api/v1/reports/{date}": "a report file",
	}
	admin := getRoutes(t, "../api/server.go", regexp.MustCompile(`HandleFunc\("(GET /v1/[^"]*)"`))
	dash := getRoutes(t, "../dashboard/auth.go", regexp.MustCompile(`pattern: "(GET /ui/api/[^"]*)"`))
	feed := getRoutes(t, "../pull/pull.go", regexp.MustCompile(`HandleFunc\("(GET /api/v1/[^"]*)"`))
	if len(admin) < 15 || len(dash) < 10 || len(feed) < 3 {
		t.Fatalf("routes found: %d admin, %d dashboard, %d feed", len(admin), len(dash), len(feed))
	}
	walked := 0
	for _, group := range []struct {
		routes []string
		hd     map[string]string
	}{
		{admin, map[string]string{"Authorization": "Bearer " + token}},
		{dash, nil}, // the session's cookie
		{feed, map[string]string{"Authorization": "Bearer " + key}},
	} {
		for _, rt := range group.routes {
			if _, skip := notJSON[rt]; skip {
				continue
			}
			path, ok := query[rt]
			if !ok {
				path = params.Replace(strings.TrimPrefix(rt, "GET "))
			}
			code, ctype, body := get(path, group.hd)
			if code != 200 {
				t.Errorf("%s: GET %s: %d %.300s", rt, path, code, body)
				continue
			}
			var docs []any
			if strings.Contains(ctype, "ndjson") {
				for line := range strings.Lines(string(body)) {
					var v any
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Errorf("%s: a line is not JSON: %v", rt, err)
					}
					docs = append(docs, v)
				}
			} else {
				var v any
				if err := json.Unmarshal(body, &v); err != nil {
					t.Errorf("%s: GET %s answered %s, not JSON: %v", rt, path, ctype, err)
					continue
				}
				docs = append(docs, v)
			}
			keys := 0
			for _, v := range docs {
				walkKeys("$", v, func(p, k string) {
					keys++
					if !apiKey.MatchString(k) {
						t.Errorf("%s: key %q at %s is not snake_case", rt, k, p)
					}
				})
			}
			if strings.Contains(string(body), `"0001-01-01T00:00:00Z"`) {
				t.Errorf("%s: a zero time written out: %.300s", rt, body)
			}
			if keys == 0 {
				t.Errorf("%s: GET %s answered no key to check: %.200s", rt, path, body)
			}
			walked++
		}
	}
	t.Logf("%d routes walked", walked)
}
