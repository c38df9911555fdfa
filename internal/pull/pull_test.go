package pull

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/scope"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

type audited struct{ sub, action, object string }

// testFeed serves two subscribers (keys "key-a", "key-b") over a fixed
// set of events from both of their networks.
func testFeed(t testing.TB) (*httptest.Server, *[]audited) {
	t.Helper()
	subs := map[string]Subscriber{
		"key-a": {Name: "isp-a", Scope: scope.Scope{ASNs: []uint32{64500}}, TLP: "AMBER"},
		"key-b": {Name: "isp-b", Scope: scope.Scope{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}},
	}
	var evs []event.Event
	for i := range 40 {
		e := event.Event{Time: now.Add(-time.Hour + time.Duration(i)*time.Minute), Protocol: event.ProtoHTTP, Family: "waledac"}
		if i%2 == 0 {
			e.SrcIP, e.ASN = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 64500
		} else {
			e.SrcIP, e.ASN = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 64501
		}
		evs = append(evs, e)
	}
	var log []audited
	f := New(Config{
		Authenticate: func(_ context.Context, key string) (Subscriber, error) {
			if s, ok := subs[key]; ok {
				return s, nil
			}
			return Subscriber{}, errors.New("unknown key isp-a revoked") // must not reach the client
		},
		Audit: func(_ context.Context, sub Subscriber, action, object string, _ any) error {
			log = append(log, audited{sub.Name, action, object})
			return nil
		},
		Report: func(_ context.Context, sub Subscriber, day time.Time, format string, w io.Writer) (int, error) {
			n := 0
			for _, e := range evs {
				if sub.Scope.Contains(e.SrcIP, e.ASN, e.CountryCode) {
					fmt.Fprintln(w, e.SrcIP)
					n++
				}
			}
			return n, nil
		},
		Events: func(_ context.Context, from, to time.Time, fn func(*event.Event) error) error {
			if outsideStore(from, to) {
				return errors.New("conversion error: the store cannot be asked about that time")
			}
			for i := range evs {
				if !evs[i].Time.Before(from) && evs[i].Time.Before(to) {
					if err := fn(&evs[i]); err != nil {
						return err
					}
				}
			}
			return nil
		},
		Trend: func(_ context.Context, _ Subscriber, from, to time.Time) (any, error) {
			if outsideStore(from, to) {
				return nil, errors.New("conversion error: the store cannot be asked about that time")
			}
			return map[string]int{"days": 1}, nil
		},
		Rate: 1000, Burst: 1000,
		Now: func() time.Time { return now },
	})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv, &log
}

// outsideStore reports times the store's TIMESTAMP_NS cannot hold, which
// it answers with an error, as the real one does.
func outsideStore(ts ...time.Time) bool {
	for _, t := range ts {
		if t.Year() < 1678 || t.Year() > 2261 {
			return true
		}
	}
	return false
}

// FuzzFeedParams: any query of the events and trend endpoints is answered
// 200 or 400, never 500: a bad parameter is the client's.
func FuzzFeedParams(f *testing.F) {
	for _, s := range [][2]string{
		{"events", "since=2026-11-27T10:00:00Z"}, {"events", "since=2026-11-27T10:00:00Z&limit=5"}, {"events", "since=3000-01-01T00:00:00Z"},
		{"events", "since=1600-01-01T00:00:00Z"}, {"events", "since=2026-11-27T12:04:59Z&follow=0"}, {"events", "since=x&limit=-1"},
		{"trend", ""}, {"trend", "from=2026-11-01&to=2026-11-20"}, {"trend", "from=9999-12-01&to=9999-12-31"}, {"trend", "to=1600-01-01"},
		{"reports/2026-11-27", "format=json"}, {"reports/9999-01-01", ""},
	} {
		f.Add(s[0], s[1])
	}
	srv, _ := testFeed(f)
	f.Fuzz(func(t *testing.T, path, query string) {
		if q, err := url.ParseQuery(query); err != nil || q.Has("follow") {
			return // a followed stream stays open
		}
		u, err := url.Parse(srv.URL + "/api/v1/" + path + "?" + query)
		if err != nil || !strings.HasPrefix(u.Path, "/api/v1/") {
			return
		}
		req, _ := http.NewRequest("GET", u.String(), nil)
		req.Header.Set("Authorization", "Bearer key-a")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
		}
	})
}

func get(t *testing.T, srv *httptest.Server, key, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.ReplaceAll(string(b), `\"`, `"`)
}

// TestFeedScope: each key sees its own hosts, in the report and in the
// events, and every answer is audited.
func TestFeedScope(t *testing.T) {
	srv, log := testFeed(t)
	for key, prefix := range map[string]string{"key-a": "192.0.2.", "key-b": "198.51.100."} {
		code, body := get(t, srv, key, "/api/v1/reports/2026-11-27?format=csv")
		if code != 200 || strings.Count(body, prefix) != 20 || strings.Count(body, "\n") != 20 {
			t.Errorf("%s report: %d\n%s", key, code, body)
		}
		code, body = get(t, srv, key, "/api/v1/events?since=2026-11-27T10:00:00Z")
		lines := strings.Split(strings.TrimSpace(body), "\n")
		if code != 200 || len(lines) != 20 {
			t.Fatalf("%s events: %d, %d lines\n%s", key, code, len(lines), body)
		}
		for _, l := range lines {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil || !strings.HasPrefix(fmt.Sprint(e["source.ip"]), prefix) {
				t.Errorf("%s got an event outside its scope: %s", key, l)
			}
		}
	}
	// A limit cuts between times; the client resumes from the last one.
	_, body := get(t, srv, "key-a", "/api/v1/events?since=2026-11-27T10:00:00Z&limit=5")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	var last map[string]any
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	_, rest := get(t, srv, "key-a", "/api/v1/events?since="+fmt.Sprint(last["time.source"]))
	if n := len(lines) + len(strings.Split(strings.TrimSpace(rest), "\n")); len(lines) != 5 || n != 20 {
		t.Errorf("paging: %d then %d lines", len(lines), n-len(lines))
	}
	if len(*log) != 6 || (*log)[0].action != "feed.report" && (*log)[0].action != "feed.events" {
		t.Errorf("audit log: %+v", *log)
	}
}

// TestFeedBadInput: bad keys, dates, formats and parameters get clear 4xx
// answers that name nothing but the caller's own input.
func TestFeedBadInput(t *testing.T) {
	srv, log := testFeed(t)
	for _, tc := range []struct {
		key, path string
		status    int
		want      string
	}{
		{"", "/api/v1/reports/2026-11-27", 401, "missing or unknown API key"},
		{"key-zz", "/api/v1/reports/2026-11-27", 401, "missing or unknown API key"},
		{"key-a key-b", "/api/v1/reports/2026-11-27", 401, "missing or unknown API key"},
		{strings.Repeat("k", 300), "/api/v1/reports/2026-11-27", 401, "missing or unknown API key"},
		{"key-a", "/api/v1/reports/27.11.2026", 400, `date "27.11.2026" is not YYYY-MM-DD`},
		{"key-a", "/api/v1/reports/2026-12-01", 400, "not within the last 90 days"},
		{"key-a", "/api/v1/reports/2026-11-27?format=xml", 400, `format "xml" is not one of csv, json, stix`},
		{"key-a", "/api/v1/reports/2026-11-27?asn=64501", 400, `unknown parameter "asn"`},
		{"key-a", "/api/v1/events?since=yesterday", 400, `since "yesterday" is not an RFC 3339 time`},
		{"key-a", "/api/v1/events?since=2026-11-27T00:00:00Z&limit=0", 400, `limit "0" is not from 1 to 100000`},
		{"key-a", "/api/v1/events?since=2026-11-27T00:00:00Z&cidr=0.0.0.0/0", 400, `unknown parameter "cidr"`},
		{"key-a", "/api/v1/trend?from=2026-11-20&to=2026-11-10", 400, "from must be before to"},
		{"key-a", "/api/v1/events?since=3000-01-01T00:00:00Z", 400, "since 3000-01-01T00:00:00Z is in the future (server time 2026-11-27T12:00:00Z)"},
		{"key-a", "/api/v1/events?since=2026-11-27T12:06:00Z", 400, "since 2026-11-27T12:06:00Z is in the future"},
		{"key-a", "/api/v1/events?since=1600-01-01T00:00:00Z", 400, "since is more than 90 days ago"},
		{"key-a", "/api/v1/trend?from=9999-12-01&to=9999-12-31", 400, "from and to must be within the last 90 days, from 2026-08-29 to 2026-11-28"},
		{"key-a", "/api/v1/trend?from=1600-01-01&to=1600-02-01", 400, "from and to must be within the last 90 days"},
		{"key-a", "/api/v1/trend?from=2026-08-28&to=2026-09-01", 400, "from and to must be within the last 90 days"},
		{"key-a", "/api/v1/nope", 404, "no such feed endpoint"},
	} {
		code, body := get(t, srv, tc.key, tc.path)
		if code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%q %s: %d %s; want %d %q", tc.key, tc.path, code, body, tc.status, tc.want)
		}
		for _, leak := range []string{"isp-", "198.51", "192.0.2", "revoked", "64501"} {
			if strings.Contains(body, leak) && !strings.Contains(tc.path, leak) {
				t.Errorf("%s: the answer leaks %q: %s", tc.path, leak, body)
			}
		}
	}
	if len(*log) != 0 {
		t.Errorf("refused requests were audited as reads: %+v", *log)
	}
}

func TestFeedRateLimit(t *testing.T) {
	srv, _ := testFeed(t)
	f := srv.Config.Handler.(*Feed)
	f.cfg.Rate, f.cfg.Burst = 0.001, 3
	codes := map[int]int{}
	for range 6 {
		code, _ := get(t, srv, "key-a", "/api/v1/trend")
		codes[code]++
	}
	if codes[200] != 3 || codes[429] != 3 {
		t.Errorf("answers %v; want 3 × 200 then 429", codes)
	}
	if code, _ := get(t, srv, "key-b", "/api/v1/trend"); code != 200 {
		t.Errorf("one subscriber's limit held back another: %d", code)
	}
}

// TestFeedFollow: with follow=1 the answer stays open and carries the
// subscriber's new events as they settle, and no one else's.
func TestFeedFollow(t *testing.T) {
	var mu sync.Mutex
	var evs []event.Event
	add := func(ip string, asn uint32) {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, event.Event{Time: time.Now().UTC(), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr(ip), ASN: asn})
	}
	var revoked atomic.Bool
	f := New(Config{
		Authenticate: func(_ context.Context, key string) (Subscriber, error) {
			if revoked.Load() {
				return Subscriber{}, errors.New("revoked")
			}
			return Subscriber{Name: "isp-a", Scope: scope.Scope{ASNs: []uint32{64500}}}, nil
		},
		Audit: func(context.Context, Subscriber, string, string, any) error { return nil },
		Events: func(_ context.Context, from, to time.Time, fn func(*event.Event) error) error {
			mu.Lock()
			cp := slices.Clone(evs)
			mu.Unlock()
			for i := range cp {
				if !cp[i].Time.Before(from) && cp[i].Time.Before(to) {
					if err := fn(&cp[i]); err != nil {
						return err
					}
				}
			}
			return nil
		},
		Settle: 20 * time.Millisecond, Poll: 20 * time.Millisecond, Recheck: 50 * time.Millisecond,
	})
	srv := httptest.NewServer(f)
	defer srv.Close()
	add("192.0.2.1", 64500)
	time.Sleep(30 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/events?follow=1&since="+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), nil)
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		var e map[string]any
		json.Unmarshal(lines.Bytes(), &e)
		return fmt.Sprint(e["source.ip"])
	}
	if ip := next(); ip != "192.0.2.1" {
		t.Fatalf("first event from %s", ip)
	}
	// New events arrive on the open answer; another network's do not.
	add("198.51.100.9", 64501)
	add("192.0.2.2", 64500)
	if ip := next(); ip != "192.0.2.2" {
		t.Fatalf("followed event from %s", ip)
	}
	add("192.0.2.3", 64500)
	if ip := next(); ip != "192.0.2.3" {
		t.Fatalf("followed event from %s", ip)
	}
	// The key is revoked: the stream ends (within the context's 10 s).
	revoked.Store(true)
	for lines.Scan() {
	}
	if err := lines.Err(); err != nil {
		t.Errorf("the stream did not end when its key was revoked: %v", err)
	}
}
