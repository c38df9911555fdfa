package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/store"
)

const token = "test-token"

func newServer(t *testing.T) (*httptest.Server, *registry.Registry) {
	t.Helper()
	ctx := context.Background()
	db, err := dbfile.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(api.New(api.Config{Registry: reg, Events: st, Token: token}))
	t.Cleanup(srv.Close)
	return srv, reg
}

func do(t *testing.T, srv *httptest.Server, method, path, body string, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.ReplaceAll(string(b), `\"`, `"`)
}

func TestAPIBadInput(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, registry.Change{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		want                     string
	}{
		{"no token", "GET", "/v1/cases", "", false, 401, "bearer token"},
		{"health needs no token", "GET", "/healthz", "", false, 200, "ok"},
		{"unknown endpoint", "GET", "/v1/nope", "", true, 404, "/v1/nope"},
		{"unknown field", "POST", "/v1/cases", `{"name":"c2","court":"x","docket":"y","judge":"z"}`, true, 400, `"judge"`},
		{"empty body", "POST", "/v1/cases", ``, true, 400, "empty"},
		{"wrong type", "POST", "/v1/cases", `{"name":1,"court":"x","docket":"y"}`, true, 400, `request body: field "name": want a string, not a number`},
		{"not an object", "POST", "/v1/domains/state", `["a.example"]`, true, 400, "request body: want a JSON object, not an array"},
		{"bad time", "POST", "/v1/cases/c1/orders", `{"type":"tro","issued":"2026-01-01"}`, true, 400, `request body: time "2026-01-01" is not RFC 3339`},
		{"bad order type", "POST", "/v1/cases/c1/orders", `{"type":"edict","issued":"2026-01-01T00:00:00Z"}`, true, 400, `order type "edict"`},
		{"order of no case", "POST", "/v1/cases/zz/orders", `{"type":"tro","issued":"2026-01-01T00:00:00Z"}`, true, 404, `case "zz": not found`},
		{"trailing data", "POST", "/v1/cases", `{"name":"c2","court":"x","docket":"y"} {}`, true, 400, "after the JSON"},
		{"duplicate case", "POST", "/v1/cases", `{"name":"c1","court":"x","docket":"y"}`, true, 409, "c1"},
		{"missing case", "GET", "/v1/cases/zz", "", true, 404, "zz"},
		{"bad limit", "GET", "/v1/domains?limit=lots", "", true, 400, `"lots"`},
		{"unknown param", "GET", "/v1/domains?colour=red", "", true, 400, `"colour"`},
		{"bad within", "GET", "/v1/deadlines?within=soon", "", true, 400, `"soon"`},
		{"bad by", "GET", "/v1/stats/unique-hosts?by=planet", "", true, 400, `"planet"`},
		{"bad from", "GET", "/v1/stats/unique-hosts?from=yesterday", "", true, 400, `"yesterday"`},
		{"from after to", "GET", "/v1/stats/unique-hosts?from=2010-03-01&to=2010-02-01", "", true, 400, "not before"},
		{"to after the store's times", "GET", "/v1/stats/unique-hosts?from=2010-01-01&to=3000-01-01", "", true, 400, "parameter to: 3000-01-01T00:00:00Z is after 2262-01-01, the latest time the store holds"},
		{"from before the store's times", "GET", "/v1/stats/unique-hosts?from=1000-01-01T00:00:00Z", "", true, 400, "parameter from: 1000-01-01T00:00:00Z is before 1678-01-01, the earliest time the store holds"},
		{"default from before the store's times", "GET", "/v1/stats/unique-hosts?to=1678-01-02", "", true, 400, "parameter from: 1677-12-26T00:00:00Z is before 1678-01-01"},
		{"callbacks after the store's times", "GET", "/v1/stats/callbacks-per-hour?from=2262-06-01&to=2262-07-01", "", true, 400, "parameter from: 2262-06-01T00:00:00Z is after 2262-01-01"},
		{"store's times", "GET", "/v1/stats/callbacks-per-hour?from=1678-01-01&to=2262-01-01", "", true, 200, "[]"},
		{"bad asn", "GET", "/v1/stats/unique-hosts?asn=ASx", "", true, 400, `"ASx"`},
		{"bad country", "GET", "/v1/stats/unique-hosts?country=ZZZ", "", true, 400, `"ZZZ"`},
		{"no names", "POST", "/v1/domains/state", `{"state":"restrained"}`, true, 400, "names"},
		{"bad import", "POST", "/v1/cases/c1/domains?file=l.txt", "good.example.com\nbad..com\n", true, 422, "l.txt"},
		{"verify", "GET", "/v1/audit/verify", "", true, 200, `"head": {`},
		{"bad head", "GET", "/v1/audit/verify?head=1:abc", "", true, 400, `parameter head: audit head "1:abc": hash "abc" is not 64 hex digits`},
		{"head without seq", "GET", "/v1/audit/verify?head=abc", "", true, 400, `parameter head: audit head "abc" is not SEQ:HASH`},
		{"pinned head missing", "GET", "/v1/audit/verify?head=2:" + strings.Repeat("0", 64), "", true, 200, `"error": "audit entry 2: missing: the pinned head is entry 2 but the log ends at entry 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, srv, tc.method, tc.path, tc.body, tc.auth)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s: %d %s; want %d containing %q", tc.method, tc.path, status, body, tc.status, tc.want)
			}
		})
	}
	// Nothing of the rejected requests was stored.
	ds, err := reg.ListDomains(ctx, registry.DomainFilter{})
	if err != nil || len(ds) != 0 {
		t.Errorf("rejected import stored %d domains (%v)", len(ds), err)
	}
	cs, _ := reg.ListCases(ctx)
	if len(cs) != 1 {
		t.Errorf("%d cases after rejected adds, want 1", len(cs))
	}
}

// TestImportProblemsBounded: a refused import of a long list answers its
// first MaxProblems problems and their total, and the client hands both on.
func TestImportProblemsBounded(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, registry.Change{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	list := strings.Repeat("bad..example\n", 5000)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/cases/c1/domains?file=big.txt", strings.NewReader(list))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb struct {
		Error    string
		File     string
		Total    int
		Problems []registry.LineError
	}
	if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || resp.StatusCode != 422 {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	if eb.File != "big.txt" || eb.Total != 5000 || len(eb.Problems) != api.MaxProblems || eb.Problems[0].Line != 1 ||
		eb.Problems[api.MaxProblems-1].Line != api.MaxProblems || !strings.HasPrefix(eb.Error, "importing big.txt: 5000 problems, nothing imported: big.txt:1: ") {
		t.Errorf("file %q, total %d, %d problems, error %.200q", eb.File, eb.Total, len(eb.Problems), eb.Error)
	}
	_, err = api.NewClient(srv.URL, token, "t").ImportDomains(ctx, "c1", "big.txt", []byte(list), registry.Change{Actor: "t"})
	var ie *registry.ImportError
	if !errors.As(err, &ie) || ie.Count() != 5000 || len(ie.Problems) != api.MaxProblems || !strings.Contains(err.Error(), "5000 problems") {
		t.Errorf("client: %v", err)
	}
}

func TestClientErrorsMatchLocal(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	c := api.NewClient(srv.URL, token, "tester")
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	ch := registry.Change{Actor: "tester"}
	if _, err := c.AddCase(ctx, registry.NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, ch); err != nil {
		t.Fatal(err)
	}
	_, remoteErr := c.AddCase(ctx, registry.NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, ch)
	_, localErr := reg.AddCase(ctx, registry.NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, ch)
	if !errors.Is(remoteErr, registry.ErrExists) || remoteErr.Error() != localErr.Error() {
		t.Errorf("remote %v, local %v", remoteErr, localErr)
	}
	_, remoteErr = c.ImportDomains(ctx, "c1", "f.txt", []byte("ok.example.com\n-bad-.com\n"), ch)
	_, localErr = reg.ImportDomains(ctx, "c1", "f.txt", []byte("ok.example.com\n-bad-.com\n"), ch)
	var ie *registry.ImportError
	if !errors.As(remoteErr, &ie) || ie.Problems[0].Line != 2 || remoteErr.Error() != localErr.Error() {
		t.Errorf("remote %v, local %v", remoteErr, localErr)
	}
	if _, err := c.GetDomain(ctx, "nothing.example.com"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("missing domain: %v", err)
	}
	bad := api.NewClient(srv.URL, "wrong", "x")
	if _, err := bad.ListCases(ctx); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	if err := api.NewClient("127.0.0.1:1", token, "x").Ping(ctx); !errors.Is(err, api.ErrUnreachable) {
		t.Errorf("ping of nothing: %v", err)
	}
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{"14d": 14 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := api.ParseSpan(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "-3d", "soon", "1y"} {
		if _, err := api.ParseSpan(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
