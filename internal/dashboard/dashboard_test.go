package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/spawn"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/users"
)

// The benchmarks on ClickHouse start its servers through package spawn,
// whose goroutine lives as long as the process, on purpose.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(spawn.Forker))
}

// fixture is a dashboard over an in-memory database with a case, its
// domains, a subscriber, events of infected hosts and three users.
type fixture struct {
	d     *Dashboard
	srv   *httptest.Server
	reg   *registry.Registry
	st    *store.Store
	roll  *store.Rollup
	users *users.Store
	ips   []string // every infected address in the events
	tr    *http.Transport
}

var fast = users.Params{Memory: 64, Time: 1, Threads: 1}

const password = "a long enough password"

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := dbfile.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{}
	if f.reg, err = registry.New(ctx, registry.Config{DB: db}); err != nil {
		t.Fatal(err)
	}
	if f.st, err = store.Open(ctx, store.Config{DB: db}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	if f.roll, err = store.OpenRollup(ctx, store.RollupConfig{DB: db, Lag: time.Microsecond}); err != nil {
		t.Fatal(err)
	}
	if f.users, err = users.Open(ctx, users.Config{DB: db, Params: fast}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name string
		role users.Role
	}{{"ada", users.Admin}, {"ana", users.Analyst}, {"vic", users.Viewer}} {
		if _, err := f.users.Add(ctx, u.name, u.role, []byte(password)); err != nil {
			t.Fatal(err)
		}
	}
	ch := registry.Change{Actor: "test"}
	if _, err := f.reg.AddCase(ctx, registry.NewCase{Name: "wal", Court: "E.D. Va.", Docket: "1", Family: "waledac",
		Notes: "C2 servers at 192.0.2.80 and 2001:db8::80"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AddOrder(ctx, "wal", registry.NewOrder{Type: registry.OrderTRO, Issued: time.Now().UTC().AddDate(0, 0, -2),
		ObjectionDeadline: time.Now().UTC().AddDate(0, 0, 12)}, ch); err != nil {
		t.Fatal(err)
	}
	names := []string{"a-wal.example", "b-wal.example", "c-wal.example"}
	if _, err := f.reg.ImportDomains(ctx, "wal", "list", []byte(strings.Join(names, "\n")), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.SetState(ctx, names[:2], registry.StateRestrained, ch); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.RecordDelegation(ctx, []registry.DelegationCheck{
		{Domain: names[0], CheckedAt: time.Now().UTC(), Verified: true, NS: []string{"ns1.sinkhole.example"}, Addrs: []string{"192.0.2.53"},
			DSState: registry.DSUnsigned},
		{Domain: names[1], CheckedAt: time.Now().UTC(), NS: []string{"ns.parking.example"}, Addrs: []string{"203.0.113.9"}, Problem: "NS points elsewhere: 203.0.113.9",
			DSState: registry.DSStale, DS: []string{staleDSRecord}},
	}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AddSubscriber(ctx, registry.NewSubscriber{Name: "isp-a", Org: "ISP A", Contacts: []string{"abuse@isp-a.example"},
		ASNs: []string{"AS64500"}, CIDRs: []string{"198.51.100.0/24"}}, ch); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var evs []event.Event
	for i := range 40 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
		asn, cc, city, lat, lon := uint32(64500), "DE", "Berlin", 52.5, 13.4
		if i%3 == 0 {
			asn, cc, city, lat, lon = 64501, "FR", "Paris", 48.9, 2.35
		}
		if i%10 == 0 {
			ip = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1))
		}
		f.ips = append(f.ips, ip.String())
		evs = append(evs, event.Event{Time: now.Add(-time.Duration(i) * time.Second), SrcIP: ip, Protocol: event.ProtoDNS,
			Domain: "x." + names[i%2], Zone: names[i%2], Case: "wal", Family: "waledac",
			ASN: asn, ASName: fmt.Sprintf("AS-%d", asn), CountryCode: cc, City: city, Latitude: lat, Longitude: lon})
	}
	if err := f.st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := f.roll.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Users: f.users, Registry: f.reg, Rollup: f.roll, APIToken: "the-api-token", Sensor: "test"}
	if mod != nil {
		mod(&cfg)
	}
	if f.d, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.d)
	t.Cleanup(f.srv.Close)
	f.tr = &http.Transport{}
	t.Cleanup(f.tr.CloseIdleConnections)
	t.Cleanup(f.d.live.close) // ends live streams before the server closes
	return f
}

// client is a browser of one user: its cookie jar and CSRF token.
type client struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func (f *fixture) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: f.srv.URL, http: &http.Client{Jar: jar, Transport: f.tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (f *fixture) login(t *testing.T, name string) *client {
	t.Helper()
	c := f.client(t)
	resp, body := c.do("POST", "/ui/api/login", map[string]string{"name": name, "password": password}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: %s %s", name, resp.Status, body)
	}
	var s sessionView
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	c.csrf = s.CSRF
	return c
}

// do sends a request as a browser of the same origin would, with the CSRF
// token unless headers say otherwise.
func (c *client) do(method, path string, body any, headers map[string]string) (*http.Response, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if method != "GET" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", c.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set(CSRFHeader, c.csrf)
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestLogin(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t)
	for _, cred := range []map[string]string{{"name": "vic", "password": "wrong password!"}, {"name": "nobody", "password": password}} {
		resp, body := c.do("POST", "/ui/api/login", cred, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "wrong user name or password") {
			t.Errorf("login %v: %s %s", cred, resp.Status, body)
		}
	}
	resp, _ := c.do("POST", "/ui/api/login", map[string]string{"name": "vic", "password": password}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s", resp.Status)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || ck[0].Name != "takedown_session" || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure || ck[0].Path != "/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure on plain HTTP", ck)
	}
	if resp, _ := c.do("GET", "/ui/api/session", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("session after login: %s", resp.Status)
	}
	// The page: after login the dashboard, before it the login page.
	if resp, body := c.do("GET", "/ui/", nil, nil); resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("app.js")) {
		t.Errorf("GET /ui/: %s", resp.Status)
	}
	if resp, _ := c.do("POST", "/ui/api/logout", nil, map[string]string{CSRFHeader: "wrong"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %s, want 403", resp.Status)
	}
	if resp, _ := c.do("GET", "/ui/api/session", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("session after the refused logout: %s", resp.Status)
	}
	c.csrf = users.CSRFToken(ck[0].Value)
	if resp, _ := c.do("POST", "/ui/api/logout", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("logout: %s", resp.Status)
	}
	if resp, _ := c.do("GET", "/ui/api/session", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("session after logout: %s, want 401", resp.Status)
	}
	resp, _ = c.do("GET", "/ui/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Errorf("GET /ui/ logged out: %s to %q, want 303 to /ui/login", resp.Status, resp.Header.Get("Location"))
	}
	// The stolen cookie of the ended session is worthless.
	req, _ := http.NewRequest("GET", f.srv.URL+"/ui/api/overview", nil)
	req.AddCookie(ck[0])
	resp, err := (&http.Client{Transport: f.tr}).Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old cookie: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
}

func TestSecureCookie(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SecureCookie = true })
	resp, _ := f.client(t).do("POST", "/ui/api/login", map[string]string{"name": "vic", "password": password}, nil)
	ck := resp.Cookies()
	if len(ck) != 1 || ck[0].Name != "__Host-takedown_session" || !ck[0].Secure || !ck[0].HttpOnly {
		t.Errorf("cookie %+v: want __Host-, Secure, HttpOnly", ck)
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LoginRate = 1 })
	c := f.client(t)
	var codes []int
	for range 7 {
		resp, _ := c.do("POST", "/ui/api/login", map[string]string{"name": "vic", "password": "not the password"}, nil)
		codes = append(codes, resp.StatusCode)
	}
	// Five tries at once (the burst), then no more, even the right password.
	if codes[4] != http.StatusUnauthorized || codes[5] != http.StatusTooManyRequests {
		t.Errorf("codes %v: want 5 × 401 then 429", codes)
	}
	if resp, _ := c.do("POST", "/ui/api/login", map[string]string{"name": "vic", "password": password}, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password while limited: %s", resp.Status)
	}
	// The lock is the attacker's address's: vic logs in from another.
	other := f.clientFrom(t, "127.0.0.2")
	if resp, body := other.do("POST", "/ui/api/login", map[string]string{"name": "vic", "password": password}, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("vic from another address while 127.0.0.1 is locked out: %s %s", resp.Status, body)
	}
	// The attacker's address may try other names, but not every name.
	codes = nil
	for i := range 20 {
		resp, _ := c.do("POST", "/ui/api/login", map[string]string{"name": fmt.Sprintf("user%d", i), "password": "not the password"}, nil)
		codes = append(codes, resp.StatusCode)
	}
	// 20 tries in all from the address at once: 8 taken by vic, 12 left.
	if codes[11] != http.StatusUnauthorized || codes[12] != http.StatusTooManyRequests || codes[19] != http.StatusTooManyRequests {
		t.Errorf("other names from the locked address: %v; want 12 × 401 then 429", codes)
	}
	if resp, _ := other.do("POST", "/ui/api/login", map[string]string{"name": "ana", "password": password}, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("ana from another address: %s", resp.Status)
	}
}

// clientFrom is a browser whose connections come from the loopback
// address src.
func (f *fixture) clientFrom(t *testing.T, src string) *client {
	c := f.client(t)
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	c.http.Transport = tr
	return c
}

// TestLoginLimiterBounded: a flood of addresses keeps the table bounded;
// an attacker who keeps trying stays locked through it.
func TestLoginLimiterBounded(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	l := newLoginLimiter(10, func() time.Time { return now })
	for range loginBurst {
		l.allow("192.0.2.1", "admin")
	}
	if l.allow("192.0.2.1", "admin") {
		t.Fatal("the sixth try at once was allowed")
	}
	for i := range 50_000 {
		now = now.Add(time.Microsecond)
		l.allow(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), "admin")
		if len(l.byKey) > maxLoginKeys {
			t.Fatalf("%d keys after %d addresses", len(l.byKey), i+1)
		}
		if i%1000 == 0 && l.allow("192.0.2.1", "admin") {
			t.Fatalf("the attacker's address was let in after %d other addresses", i+1)
		}
	}
	if !l.allow("198.51.100.7", "admin") {
		t.Error("a new address was refused")
	}
	// Five wrong passwords an hour ago are forgiven.
	now = now.Add(time.Hour)
	if !l.allow("192.0.2.1", "admin") {
		t.Error("192.0.2.1 is still locked an hour later")
	}
}

func TestCSRF(t *testing.T) {
	f := newFixture(t, nil)
	c := f.login(t, "ana")
	body := map[string]any{"names": []string{"a-wal.example"}, "to": "sinkholed", "reason": "test"}
	for _, tc := range []struct {
		what    string
		headers map[string]string
	}{
		{"no token", map[string]string{CSRFHeader: ""}},
		{"wrong token", map[string]string{CSRFHeader: "x" + c.csrf[1:]}},
		{"another session's token", map[string]string{CSRFHeader: f.login(t, "ada").csrf}},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}},
		{"other origin", map[string]string{"Sec-Fetch-Site": "", "Origin": "http://evil.example"}},
	} {
		resp, b := c.do("POST", "/ui/api/domains/state", body, tc.headers)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s %s, want 403", tc.what, resp.Status, b)
		}
	}
	d, _ := f.reg.GetDomain(t.Context(), "a-wal.example")
	if d.State != registry.StateRestrained {
		t.Fatalf("refused requests changed the state: %s", d.State)
	}
	resp, b := c.do("POST", "/ui/api/domains/state", body, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("state change: %s %s", resp.Status, b)
	}
	d, _ = f.reg.GetDomain(t.Context(), "a-wal.example")
	if d.State != registry.StateSinkholed || d.History[len(d.History)-1].Actor != "ui:ana" || d.History[len(d.History)-1].Reason != "test" {
		t.Errorf("after the change: %s, history %+v", d.State, d.History)
	}
	// The lifecycle is the registry's: no going back.
	body["to"] = "listed"
	if resp, b := c.do("POST", "/ui/api/domains/state", body, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("illegal transition: %s %s, want 409", resp.Status, b)
	}
}

// example requests of every route.
var examples = map[string]struct {
	method, path string
	body         any
}{
	"POST /ui/api/login":         {"POST", "/ui/api/login", map[string]string{"name": "x", "password": "y"}},
	"POST /ui/api/logout":        {"POST", "/ui/api/logout", nil},
	"GET /ui/api/session":        {"GET", "/ui/api/session", nil},
	"GET /ui/api/overview":       {"GET", "/ui/api/overview", nil},
	"GET /ui/api/map":            {"GET", "/ui/api/map", nil},
	"GET /ui/api/map.svg":        {"GET", "/ui/api/map.svg", nil},
	"GET /ui/api/countries/{cc}": {"GET", "/ui/api/countries/DE", nil},
	"GET /ui/api/networks":       {"GET", "/ui/api/networks", nil},
	"GET /ui/api/networks/{asn}": {"GET", "/ui/api/networks/64500", nil},
	"GET /ui/api/hosts":          {"GET", "/ui/api/hosts?asn=64500", nil},
	"GET /ui/api/cases":          {"GET", "/ui/api/cases", nil},
	"GET /ui/api/domains":        {"GET", "/ui/api/domains", nil},
	"POST /ui/api/domains/state": {"POST", "/ui/api/domains/state", map[string]any{"names": []string{"c-wal.example"}, "to": "released"}},
	"GET /ui/api/live":           {"GET", "/ui/api/live", nil},
	"GET /ui/api/users":          {"GET", "/ui/api/users", nil},
	"POST /ui/api/users":         {"POST", "/ui/api/users", map[string]string{"name": "newbie", "role": "viewer", "password": password}},
	"PATCH /ui/api/users/{name}": {"PATCH", "/ui/api/users/vic", map[string]any{"disabled": false}},
}

// ipRE finds IPv4 addresses and IPv6 addresses of two groups or more.
var ipRE = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|\b[0-9a-fA-F]{1,4}:[0-9a-fA-F:]*:[0-9a-fA-F]{1,4}\b`)

// TestRoles: every route, for each role and without a session. A viewer
// gets 403 on what holds addresses and on every change, and no answer
// that it gets holds an IP address.
func TestRoles(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LoginRate = 100_000 })
	if len(examples) != len(f.d.routes) {
		t.Fatalf("%d examples for %d routes: add the new route's", len(examples), len(f.d.routes))
	}
	anon := f.client(t)
	for _, role := range []string{"", "vic", "ana", "ada"} {
		for _, rt := range f.d.routes {
			if rt.pattern == "POST /ui/api/logout" || rt.pattern == "GET /ui/api/live" {
				continue // below
			}
			ex, ok := examples[rt.pattern]
			if !ok {
				t.Fatalf("no example of %s", rt.pattern)
			}
			c := anon
			if role != "" {
				c = f.login(t, role) // a fresh session: a change of user ends the others
			}
			resp, body := c.do(ex.method, ex.path, ex.body, nil)
			got := resp.StatusCode
			var want string
			switch {
			case rt.need == anyone:
				want = "any"
			case role == "":
				want = "401"
			case role == "vic" && rt.need != viewer:
				want = "403"
			case role == "ana" && rt.need == admin:
				want = "403"
			default:
				want = "2xx"
			}
			switch want {
			case "401", "403":
				if fmt.Sprint(got) != want {
					t.Errorf("%s as %q: %d %s, want %s", rt.pattern, role, got, body, want)
				}
			case "2xx":
				// A change may be refused for what it asks (a domain
				// released already), never for who asks.
				if got/100 != 2 && !(rt.change && got == http.StatusConflict) {
					t.Errorf("%s as %q: %d %s, want success", rt.pattern, role, got, body)
				}
			}
			if role == "vic" {
				if rt.addresses || rt.change && rt.need != anyone {
					if got != http.StatusForbidden {
						t.Errorf("viewer: %s: %d, want 403", rt.pattern, got)
					}
				}
				if m := ipRE.Find(body); m != nil {
					t.Errorf("viewer: %s: the answer holds the address %s", rt.pattern, m)
				}
			}
			if role == "ana" && rt.addresses && !bytes.Contains(body, []byte(`"198.51.100.`)) {
				t.Errorf("analyst: %s: no address in %s", rt.pattern, body)
			}
		}
	}
	// The analyst's reading of addresses is in the audit log.
	es, err := f.reg.Audit(t.Context(), registry.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var reads int
	for _, e := range es {
		if e.Action == "dashboard.hosts" && e.Actor == "ui:ana" && e.Object == "asn:64500" {
			reads++
		}
	}
	if reads == 0 {
		t.Error("no audit entry of the analyst's host list")
	}
	// Viewer and analyst answers differ where addresses are involved.
	for _, tc := range []struct{ user, path, want string }{
		{"ana", "/ui/api/domains", "192.0.2.53"},
		{"ana", "/ui/api/networks/64500", "198.51.100.0/24"},
		{"ana", "/ui/api/networks/64500", "abuse@isp-a.example"},
		{"ana", "/ui/api/cases", "192.0.2.80 and 2001:db8::80"},
	} {
		_, body := f.login(t, tc.user).do("GET", tc.path, nil, nil)
		if !bytes.Contains(body, []byte(tc.want)) {
			t.Errorf("%s %s: no %s in %s", tc.user, tc.path, tc.want, body)
		}
		_, body = f.login(t, "vic").do("GET", tc.path, nil, nil)
		if bytes.Contains(body, []byte(tc.want)) {
			t.Errorf("viewer %s: %s in %s", tc.path, tc.want, body)
		}
	}
	// The API token manages users, and nothing else.
	for _, tc := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/ui/api/users", map[string]string{"name": "cli-made", "role": "viewer", "password": password}, 201},
		{"GET", "/ui/api/users", nil, 200},
		{"GET", "/ui/api/overview", nil, 401},
		{"GET", "/ui/api/hosts?asn=64500", nil, 401},
	} {
		c := f.client(t)
		resp, body := c.do(tc.method, tc.path, tc.body, map[string]string{"Authorization": "Bearer the-api-token", "Origin": "", "Sec-Fetch-Site": ""})
		if resp.StatusCode != tc.want {
			t.Errorf("API token: %s %s: %s %s, want %d", tc.method, tc.path, resp.Status, body, tc.want)
		}
	}
	// It names who acts, as on the JSON API; a bad name changes nothing.
	h := map[string]string{"Authorization": "Bearer the-api-token", "Origin": "", "Sec-Fetch-Site": "", ActorHeader: strings.Repeat("a", 201)}
	resp, body := f.client(t).do("POST", "/ui/api/users", map[string]string{"name": "bad-actor", "role": "viewer", "password": password}, h)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "X-Takedown-Actor: actor") || !strings.Contains(string(body), "201 bytes long") {
		t.Errorf("bad actor: %s %s", resp.Status, body)
	}
	h[ActorHeader] = "alice"
	if resp, body := f.client(t).do("PATCH", "/ui/api/users/cli-made", map[string]string{"role": "analyst"}, h); resp.StatusCode != 200 {
		t.Fatalf("PATCH with an actor: %s %s", resp.Status, body)
	}
	ua, _ := f.reg.Audit(context.Background(), registry.AuditFilter{Object: "user:cli-made"})
	if len(ua) != 2 || ua[0].Actor != "api" || ua[1].Actor != "alice" || ua[1].Action != "user.update" {
		t.Errorf("audit of user:cli-made: %+v", ua)
	}
	if _, err := f.users.Get(context.Background(), "bad-actor"); err == nil {
		t.Error("a call with a bad actor added its user")
	}
}

func TestLive(t *testing.T) {
	f := newFixture(t, nil)
	c := f.login(t, "vic")
	req, _ := http.NewRequest("GET", f.srv.URL+"/ui/api/live", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req = req.WithContext(ctx)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("live: %s %s", resp.Status, ct)
	}
	lines := make(chan string, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Run refreshes the rollup at once and tells the streams.
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.d.Run(runCtx) }()
	deadline := time.After(10 * time.Second)
	var got update
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			if data, ok := strings.CutPrefix(l, "data: "); ok {
				if err := json.Unmarshal([]byte(data), &got); err != nil {
					t.Fatal(err)
				}
				break wait
			}
		case <-deadline:
			t.Fatal("no update in 10 s")
		}
	}
	if got.Today != 40 || got.Seq == 0 || got.AsOf.IsZero() {
		t.Errorf("update %+v: want today's 40 hosts", got)
	}
	stop()
	<-done // Run's end closes the streams
	wg.Wait()
}

// openLive opens c's live stream and returns a channel closed when the
// stream ends.
func openLive(t *testing.T, f *fixture, c *client) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/ui/api/live", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("live: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "retry: 2000" {
		t.Fatalf("live began with %q, %v", sc.Text(), sc.Err())
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		for sc.Scan() {
		}
	}()
	return ended
}

// TestLiveEndsWithSession: a live stream ends with its session: at its
// logout, at a change of its user, and when the session expires; the
// user's other sessions keep theirs.
func TestLiveEndsWithSession(t *testing.T) {
	f := newFixture(t, nil)
	f.d.streamCheck = 50 * time.Millisecond
	ends := func(what string, ended <-chan struct{}) {
		t.Helper()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: the live stream still runs 5 s later", what)
		}
	}
	runs := func(what string, ended <-chan struct{}) {
		t.Helper()
		select {
		case <-ended:
			t.Errorf("%s: the live stream ended", what)
		default:
		}
	}

	vic1, vic2 := f.login(t, "vic"), f.login(t, "vic")
	s1, s2 := openLive(t, f, vic1), openLive(t, f, vic2)
	if resp, body := vic1.do("POST", "/ui/api/logout", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("logout: %s %s", resp.Status, body)
	}
	ends("logout", s1)
	runs("the other session of the user who logged out", s2)

	// An admin changes vic's role: vic's sessions, and streams, end.
	ada := f.login(t, "ada")
	sa := openLive(t, f, ada)
	if resp, body := ada.do("PATCH", "/ui/api/users/vic", map[string]string{"role": "analyst"}, nil); resp.StatusCode != 200 {
		t.Fatalf("change of role: %s %s", resp.Status, body)
	}
	ends("change of role", s2)
	runs("the admin's own", sa)

	// A session that ends without a request (expired, purged) ends its
	// stream at the next check.
	ana := f.login(t, "ana")
	sn := openLive(t, f, ana)
	var token string
	for _, ck := range ana.http.Jar.Cookies(mustURL(t, f.srv.URL)) {
		token = ck.Value
	}
	if err := f.users.EndSession(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	ends("expiry", sn)
	runs("the admin's own", sa)
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPages(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t)
	for _, tc := range []struct {
		path, ctype string
		code        int
	}{
		{"/ui/login", "text/html", 200},
		{"/ui/assets/style.css", "text/css", 200},
		{"/ui/assets/js/app.js", "text/javascript", 200},
		{"/ui/assets/%2e%2e/dashboard.go", "", 404},
		{"/ui/assets/js", "", 404},
		{"/ui/assets/nothing.js", "", 404},
		{"/ui/nothing", "application/json", 404},
		{"/ui", "", 302},
	} {
		resp, _ := c.do("GET", tc.path, nil, nil)
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("GET %s: %s %s, want %d %s", tc.path, resp.Status, resp.Header.Get("Content-Type"), tc.code, tc.ctype)
		}
	}
}

// TestNumbers: the overview and the map say what the rollup says, and the
// map's colours are worldmap's.
// staleDSRecord is the registrant's DS record that b-wal.example still has.
const staleDSRecord = "2371 13 2 1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7C2F1A3D3B4C5D6E7F8091A2B"

func TestNumbers(t *testing.T) {
	f := newFixture(t, nil)
	c := f.login(t, "vic")
	_, body := c.do("GET", "/ui/api/overview", nil, nil)
	var ov overviewData
	if err := json.Unmarshal(body, &ov); err != nil {
		t.Fatal(err)
	}
	if len(ov.Totals) != 3 || ov.Totals[0] != 40 || ov.Totals[2] != 40 || len(ov.PerFamily) != 1 || ov.PerFamily[0].Family != "waledac" {
		t.Errorf("overview: totals %v, families %+v", ov.Totals, ov.PerFamily)
	}
	if len(ov.TopNetworks) != 2 || ov.TopNetworks[0].ASN != 64500 || ov.TopNetworks[0].Hosts+ov.TopNetworks[1].Hosts != 40 {
		t.Errorf("top networks %+v", ov.TopNetworks)
	}
	var sum int64
	for _, h := range ov.Hours {
		sum += h.Events
		if h.Callbacks != h.Events {
			t.Errorf("hour %s: callbacks %d, events %d: the old key is to say the same for one version", h.Hour, h.Callbacks, h.Events)
		}
	}
	if sum != 40 {
		t.Errorf("events %d, want 40", sum)
	}
	_, body = c.do("GET", "/ui/api/map?family=waledac", nil, nil)
	var m mapData
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Total != 40 || m.Coloured != 2 || len(m.Countries) != 2 || m.Countries[0].Code != "DE" || m.Countries[0].Hosts != 26 {
		t.Errorf("map: total %d coloured %d countries %+v", m.Total, m.Coloured, m.Countries)
	}
	if n := strings.Count(m.SVG, `class="country c`); n != 2 {
		t.Errorf("%d coloured countries in the SVG, want 2", n)
	}
	if !strings.Contains(m.SVG, `data-cc="DE" data-hosts="26"`) || len(m.Cities) != 2 || m.Cities[0].City != "Berlin" || m.Cities[0].R != 16 {
		t.Errorf("map: cities %+v", m.Cities)
	}
	if resp, b := c.do("GET", "/ui/api/map?day=1999-01-01", nil, nil); resp.StatusCode != 400 {
		t.Errorf("a day out of the window: %s %s", resp.Status, b)
	}
	_, body = c.do("GET", "/ui/api/domains", nil, nil)
	var dd domainsData
	if err := json.Unmarshal(body, &dd); err != nil {
		t.Fatal(err)
	}
	if len(dd.Domains) != 3 || dd.Domains[0].Queries != 20 || dd.Domains[0].LastQuery.IsZero() || !dd.Domains[0].Delegation.Verified ||
		dd.Domains[1].Delegation.Problem != "NS points elsewhere: [address]" || dd.Domains[2].Delegation != nil {
		t.Errorf("domains %+v", dd.Domains)
	}
	if d0, d1 := dd.Domains[0].Delegation, dd.Domains[1].Delegation; d0.DSState != registry.DSUnsigned || d1.DSState != registry.DSStale ||
		len(d1.DS) != 1 || d1.DS[0] != staleDSRecord {
		t.Errorf("domains' DS: %+v, %+v", d0, d1)
	}
	_, body = c.do("GET", "/ui/api/cases", nil, nil)
	var cd casesData
	if err := json.Unmarshal(body, &cd); err != nil {
		t.Fatal(err)
	}
	if len(cd.StaleDS) != 1 || cd.StaleDS[0] != (staleDS{Name: "b-wal.example", Case: "wal"}) {
		t.Errorf("cases: stale DS %+v", cd.StaleDS)
	}
}

// TestDevDir: the pages come from a directory, as edited.
func TestDevDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("web")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "login.html"), []byte("<p>edited</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.DevDir = dir })
	if _, body := f.client(t).do("GET", "/ui/login", nil, nil); string(body) != "<p>edited</p>" {
		t.Errorf("login page %q, want the edited file", body)
	}
}

// TestUserErrors: the callers' mistakes on the users' endpoints are 4xx
// answers that say what is wrong, each class with its status, through a
// session and with the API token alike; none is a 500. Several adds of one
// new name at once give one 201 and 409s.
func TestUserErrors(t *testing.T) {
	f := newFixture(t, nil)
	admin := f.login(t, "ada")
	bearer := f.client(t)
	token := map[string]string{"Authorization": "Bearer the-api-token"}
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		want               string
	}{
		{"unknown user", "PATCH", "/ui/api/users/nobody", map[string]any{"role": "viewer"}, 404, "user nobody: not found"},
		{"duplicate", "POST", "/ui/api/users", map[string]any{"name": "ana", "role": "viewer", "password": password}, 409, "user ana: already exists"},
		{"bad role", "POST", "/ui/api/users", map[string]any{"name": "eve", "role": "root", "password": password}, 400, `role "root": want admin, analyst or viewer`},
		{"bad role of a change", "PATCH", "/ui/api/users/ana", map[string]any{"role": "root"}, 400, `role "root"`},
		{"bad name", "POST", "/ui/api/users", map[string]any{"name": "Eve!", "role": "viewer", "password": password}, 400, `user name "Eve!"`},
		{"short password", "POST", "/ui/api/users", map[string]any{"name": "eve", "role": "viewer", "password": "short"}, 400, "password: shorter than 10 characters"},
		{"unknown field", "POST", "/ui/api/users", map[string]any{"name": "eve", "role": "viewer", "password": password, "admin": true}, 400, `"admin"`},
		{"not an object", "POST", "/ui/api/users", "eve", 400, "request body: want a JSON object, not a string"},
		{"wrong type", "PATCH", "/ui/api/users/ana", map[string]any{"disabled": "yes"}, 400, `request body: field "disabled": want true or false, not a string`},
	} {
		for who, cl := range map[string]*client{"session": admin, "token": bearer} {
			var hd map[string]string
			if who == "token" {
				hd = token
			}
			resp, body := cl.do(c.method, c.path, c.body, hd)
			var e struct{ Error string }
			json.Unmarshal(body, &e)
			if resp.StatusCode != c.status || !strings.Contains(e.Error, c.want) {
				t.Errorf("%s (%s): %s %s; want %d with %q", c.name, who, resp.Status, body, c.status, c.want)
			}
		}
	}
	codes := make(chan int, 6)
	var wg sync.WaitGroup
	for range cap(codes) {
		wg.Go(func() {
			resp, _ := bearer.do("POST", "/ui/api/users", map[string]any{"name": "zoe", "role": "viewer", "password": password}, token)
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[201] != 1 || got[409] != cap(codes)-1 {
		t.Errorf("adding zoe six times at once: %v; want one 201 and five 409", got)
	}
}
