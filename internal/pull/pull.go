// Package pull is the subscribers' pull API (their "feed" in the README; not
// the RPZ feed): each network owner, with its own API key, fetches its
// daily report and follows its infected hosts' events live, and sees
// nothing outside its scope.
//
//	GET /api/v1/reports/{date}?format=csv|json|stix   one day's report
//	GET /api/v1/reports/{date}?format=event4_sinkhole|event4_sinkhole_http|event6_sinkhole|event6_sinkhole_http
//	                                                  one day's events as Shadowserver's sinkhole report of that name
//	GET /api/v1/events?since=RFC3339[&limit=N|&follow=1]  events since a time, IntelMQ JSON lines; follow keeps streaming
//	GET /api/v1/trend?from=&to=                       unique infected hosts per day, remediation
//
// Every time asked for lies within the retention (Config.Retention) up to
// the server's now: since at most 5 minutes ahead of its clock, trend's
// days within the retention, so that no parameter reaches the store with
// a time it cannot hold (1678 to 2262) and every bad one is a 400.
//
// Isolation is the rule the package is built around. The key names the
// subscriber; the subscriber's scope is applied by the server to every
// row before it is written, whatever the request says; no parameter can
// widen it. Errors are generic (a bad key does not say whether it exists,
// was revoked or is malformed; a bad date does not say whether there is
// data), and nothing in an answer depends on other networks' data except
// its duration. Every answered request is written to the audit log
// (infected-host lists are personal data), and each subscriber is rate
// limited. A followed stream authenticates its key again every Recheck
// (30 s): revoking the key ends it.
package pull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/scope"
)

// Subscriber is who a key belongs to, as the feed needs it.
type Subscriber struct {
	Name, Org string
	Scope     scope.Scope
	TLP       string
}

// Config configures the feed.
type Config struct {
	// Authenticate returns the subscriber of an API key; any error means
	// "unknown key".
	Authenticate func(ctx context.Context, key string) (Subscriber, error)
	// Audit records one answered request: the subscriber, what it read,
	// and a detail (format, rows).
	Audit func(ctx context.Context, sub Subscriber, action, object string, detail any) error
	// Report writes sub's report of day in format to w and returns the
	// rows written. It must apply sub.Scope.
	Report func(ctx context.Context, sub Subscriber, day time.Time, format string, w io.Writer) (int, error)
	// FileName, if set, names the file of a report for its
	// Content-Disposition; nil or "" is "{subscriber}-{date}.{ext}".
	FileName func(sub Subscriber, day time.Time, format string) string
	// Events calls fn with each stored event of [from, to) in time order;
	// the feed filters them by scope.
	Events func(ctx context.Context, from, to time.Time, fn func(*event.Event) error) error
	// Trend returns sub's remediation trend over [from, to) as a JSON
	// value.
	Trend func(ctx context.Context, sub Subscriber, from, to time.Time) (any, error)
	// Rate and Burst limit each subscriber's requests. Defaults: 1 per
	// second, burst 10.
	Rate  rate.Limit
	Burst int
	// Settle is how old an event must be before the live feed hands it
	// out, so that the pipeline has stored everything up to it. Default
	// 5 s.
	Settle time.Duration
	// Poll is how often a followed event stream looks for new events.
	// Default 1 s.
	Poll time.Duration
	// Recheck is how often a followed event stream authenticates its key
	// again: a revoked key (or a removed subscriber) ends it. Default 30 s.
	Recheck time.Duration
	// Retention is how far back reports and events go. Default 90 days.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Feed is the pull API's http.Handler.
type Feed struct {
	cfg Config
	mux *http.ServeMux
	log *slog.Logger

	mu     sync.Mutex
	limits map[string]*rate.Limiter

	closing   chan struct{}
	closeOnce sync.Once
}

// Close ends the followed event streams, so that a server shutting down
// does not wait for them.
func (f *Feed) Close() { f.closeOnce.Do(func() { close(f.closing) }) }

// MaxEvents bounds one answer of /api/v1/events (without follow).
const MaxEvents = 100_000

// sinceSlack is how far ahead of the server's clock since may be: a
// client's clock may be off by a little. Further is an error, not an empty
// answer: a time past 2262 is beyond what the store can even be asked.
const sinceSlack = 5 * time.Minute

// Defaults of Config fields left zero.
const (
	DefaultRate      = rate.Limit(1) // a second
	DefaultBurst     = 10
	DefaultRetention = 90 * 24 * time.Hour
)

// MaxFollow is how long a followed event stream stays open; the client
// then asks again from the last time it saw.
const MaxFollow = time.Hour

// New returns the feed handler.
func New(cfg Config) *Feed {
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Settle == 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Recheck == 0 {
		cfg.Recheck = 30 * time.Second
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &Feed{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, limits: map[string]*rate.Limiter{}, closing: make(chan struct{})}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.mux.HandleFunc("GET /api/v1/reports/{date}", f.auth(f.report))
	f.mux.HandleFunc("GET /api/v1/events", f.auth(f.events))
	f.mux.HandleFunc("GET /api/v1/trend", f.auth(f.trend))
	f.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "no such feed endpoint")
	})
	return f
}

// ServeHTTP implements http.Handler.
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

type handler func(w http.ResponseWriter, r *http.Request, sub Subscriber) error

// errBad is a problem with the request; its text goes to the client.
type errBad string

func (e errBad) Error() string { return string(e) }

func (f *Feed) auth(next handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || key == "" || len(key) > 256 {
			fail(w, http.StatusUnauthorized, "missing or unknown API key")
			return
		}
		sub, err := f.cfg.Authenticate(r.Context(), key)
		if err != nil {
			f.log.Info("feed: key refused", "remote", r.RemoteAddr)
			fail(w, http.StatusUnauthorized, "missing or unknown API key")
			return
		}
		if !f.limiter(sub.Name).Allow() {
			w.Header().Set("Retry-After", strconv.Itoa(int(1/float64(f.cfg.Rate))+1))
			fail(w, http.StatusTooManyRequests, "rate limit: slow down")
			return
		}
		tw := &tracked{ResponseWriter: w}
		if err := next(tw, r, sub); err != nil {
			var bad errBad
			if errors.As(err, &bad) {
				fail(w, http.StatusBadRequest, string(bad))
				return
			}
			f.log.Error("feed", "subscriber", sub.Name, "path", r.URL.Path, "err", err)
			if !tw.sent {
				fail(w, http.StatusInternalServerError, "internal error")
			}
		}
	}
}

func (f *Feed) limiter(name string) *rate.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.limits[name]
	if !ok {
		l = rate.NewLimiter(f.cfg.Rate, f.cfg.Burst)
		f.limits[name] = l
	}
	return l
}

// formats are what the pull API serves; X-ARF is e-mail only. The
// event*_sinkhole* formats are Shadowserver's sinkhole event reports.
var formats = map[string]string{
	"csv":                  "text/csv; charset=utf-8",
	"json":                 "application/x-ndjson",
	"stix":                 "application/stix+json;version=2.1",
	"event4_sinkhole":      "text/csv; charset=utf-8",
	"event4_sinkhole_http": "text/csv; charset=utf-8",
	"event6_sinkhole":      "text/csv; charset=utf-8",
	"event6_sinkhole_http": "text/csv; charset=utf-8",
}

// formatNames lists formats for errors.
const formatNames = "csv, json, stix, event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http"

func (f *Feed) report(w http.ResponseWriter, r *http.Request, sub Subscriber) error {
	if err := onlyParams(r, "format"); err != nil {
		return err
	}
	day, err := time.Parse(time.DateOnly, r.PathValue("date"))
	if err != nil {
		return errBad(fmt.Sprintf("date %q is not YYYY-MM-DD", clip(r.PathValue("date"))))
	}
	today := f.cfg.Now().UTC().Truncate(24 * time.Hour)
	if day.After(today) || day.Before(today.Add(-f.cfg.Retention)) {
		return errBad(fmt.Sprintf("date %s is not within the last %d days", day.Format(time.DateOnly), int(f.cfg.Retention.Hours()/24)))
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	ctype, ok := formats[format]
	if !ok {
		return errBad(fmt.Sprintf("format %q is not one of %s", clip(format), formatNames))
	}
	w.Header().Set("Content-Type", ctype)
	name := ""
	if f.cfg.FileName != nil {
		name = f.cfg.FileName(sub, day, format)
	}
	if name == "" {
		ext := map[string]string{"json": "jsonl", "stix": "json"}[format]
		if ext == "" {
			ext = "csv"
		}
		name = sub.Name + "-" + day.Format(time.DateOnly) + "." + ext
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	if sub.TLP != "" {
		w.Header().Set("X-TLP", sub.TLP)
	}
	n, err := f.cfg.Report(r.Context(), sub, day, format, w)
	if err != nil {
		return err
	}
	return f.cfg.Audit(r.Context(), sub, "feed.report", day.Format(time.DateOnly), map[string]any{"format": format, "rows": n})
}

func (f *Feed) events(w http.ResponseWriter, r *http.Request, sub Subscriber) error {
	if err := onlyParams(r, "since", "limit", "follow"); err != nil {
		return err
	}
	q := r.URL.Query()
	now := f.cfg.Now().UTC()
	since, err := time.Parse(time.RFC3339Nano, q.Get("since"))
	if err != nil {
		return errBad(fmt.Sprintf("since %q is not an RFC 3339 time such as 2026-11-26T00:00:00Z", clip(q.Get("since"))))
	}
	if since.Before(now.Add(-f.cfg.Retention)) {
		return errBad(fmt.Sprintf("since is more than %d days ago", int(f.cfg.Retention.Hours()/24)))
	}
	if since.After(now.Add(sinceSlack)) {
		return errBad(fmt.Sprintf("since %s is in the future (server time %s)", since.Format(time.RFC3339), now.Format(time.RFC3339)))
	}
	limit := MaxEvents
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxEvents {
			return errBad(fmt.Sprintf("limit %q is not from 1 to %d", clip(s), MaxEvents))
		}
		limit = n
	}
	follow := false
	switch q.Get("follow") {
	case "", "0", "false":
	case "1", "true":
		follow = true
	default:
		return errBad(fmt.Sprintf("follow %q is not 1 or 0", clip(q.Get("follow"))))
	}
	// Hand out only settled events, so that a client that comes back
	// with the last time it saw misses nothing the pipeline still held.
	until := now.Add(-f.cfg.Settle)
	w.Header().Set("Content-Type", "application/x-ndjson")
	jw := event.NewJSONWriter(w)
	var n int
	last := since
	errLimit := errors.New("limit")
	write := func(e *event.Event) error {
		if !sub.Scope.Contains(e.SrcIP, e.ASN, e.CountryCode) {
			return nil
		}
		if n == limit && e.Time.After(last) {
			return errLimit // stop between two times, never inside one
		}
		n++
		last = e.Time
		return jw.Write(e)
	}
	err = f.cfg.Events(r.Context(), since.Add(time.Nanosecond), until, write)
	if err != nil && !errors.Is(err, errLimit) {
		return err
	}
	if err := jw.Flush(); err != nil {
		return err
	}
	if !follow || errors.Is(err, errLimit) {
		return f.cfg.Audit(r.Context(), sub, "feed.events", since.Format(time.RFC3339Nano), map[string]any{"events": n, "until": last.Format(time.RFC3339Nano)})
	}
	// follow=1: the answer stays open and carries each newly settled
	// event as it comes, for at most MaxFollow. The read is audited once,
	// when it starts.
	if err := f.cfg.Audit(r.Context(), sub, "feed.events", since.Format(time.RFC3339Nano), map[string]any{"events": n, "follow": true}); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return err
	}
	end := time.Now().Add(MaxFollow)
	checked := time.Now()
	for time.Now().Before(end) {
		select {
		case <-r.Context().Done():
			return nil
		case <-f.closing:
			return nil
		case <-time.After(f.cfg.Poll):
		}
		if time.Since(checked) >= f.cfg.Recheck {
			key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if _, err := f.cfg.Authenticate(r.Context(), key); err != nil {
				return nil // revoked: no more events on this key
			}
			checked = time.Now()
		}
		upper := f.cfg.Now().UTC().Add(-f.cfg.Settle)
		n, limit = 0, MaxEvents
		err := f.cfg.Events(r.Context(), until, upper, write)
		switch {
		case errors.Is(err, errLimit):
			until = last.Add(time.Nanosecond) // the rest in the next round
		case err != nil:
			return err
		default:
			until = upper
		}
		if err := jw.Flush(); err != nil {
			return nil // the client went away
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
	return nil
}

func (f *Feed) trend(w http.ResponseWriter, r *http.Request, sub Subscriber) error {
	if err := onlyParams(r, "from", "to"); err != nil {
		return err
	}
	today := f.cfg.Now().UTC().Truncate(24 * time.Hour)
	from, to := today.Add(-30*24*time.Hour), today.Add(24*time.Hour)
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := r.URL.Query().Get(p.name); s != "" {
			d, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return errBad(fmt.Sprintf("%s %q is not YYYY-MM-DD", p.name, clip(s)))
			}
			*p.dst = d
		}
	}
	if !from.Before(to) || to.Sub(from) > f.cfg.Retention+24*time.Hour {
		return errBad(fmt.Sprintf("from must be before to, at most %d days apart", int(f.cfg.Retention.Hours()/24)))
	}
	if oldest, newest := today.Add(-f.cfg.Retention), today.Add(24*time.Hour); from.Before(oldest) || to.After(newest) {
		return errBad(fmt.Sprintf("from and to must be within the last %d days, from %s to %s (to is the day after the last)",
			int(f.cfg.Retention.Hours()/24), oldest.Format(time.DateOnly), newest.Format(time.DateOnly)))
	}
	t, err := f.cfg.Trend(r.Context(), sub, from, to)
	if err != nil {
		return err
	}
	if err := f.cfg.Audit(r.Context(), sub, "feed.trend", from.Format(time.DateOnly)+"/"+to.Format(time.DateOnly), nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// onlyParams refuses unknown query parameters, so that a typo is not
// silently ignored (and no parameter exists that could widen a scope).
func onlyParams(r *http.Request, known ...string) error {
	for k := range r.URL.Query() {
		if !slices.Contains(known, k) {
			return errBad(fmt.Sprintf("unknown parameter %q; this endpoint takes %s", clip(k), strings.Join(known, ", ")))
		}
	}
	return nil
}

// clip keeps an echoed value short and printable.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// tracked remembers whether the answer has begun, so that a failure
// half-way is not answered with a second status line.
type tracked struct {
	http.ResponseWriter
	sent bool
}

func (t *tracked) WriteHeader(code int) {
	t.sent = true
	t.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's Flush.
func (t *tracked) Unwrap() http.ResponseWriter { return t.ResponseWriter }

func (t *tracked) Write(p []byte) (int, error) {
	t.sent = true
	return t.ResponseWriter.Write(p)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
