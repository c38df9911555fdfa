package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
)

func FuzzDeliveryKey(f *testing.F) {
	for _, s := range []string{"isp-a/2026-11-26/csv", "isp-a/2026-11-26/xarf-0123456789abcdef", " isp-a/2026-11-26/csv ",
		"isp-a/csv", "isp-a/2026-13-01/csv", "/2026-11-26/csv", "isp-a/2026-11-26/", "a/b/c/d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		sub, day, format, err := api.ParseDeliveryKey(key)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("%q: error %v is not ErrInvalid", key, err)
			}
			return
		}
		if got := sub + "/" + day.Format(time.DateOnly) + "/" + format; got != strings.TrimSpace(key) {
			t.Fatalf("%q parsed as %q", key, got)
		}
	})
}

// okReports answers every call.
type okReports struct{}

// outsideStore reports a time the store would refuse with an error.
func outsideStore(ts ...time.Time) bool {
	for _, t := range ts {
		if t.Before(eventstore.MinTime) || t.After(eventstore.MaxTime) {
			return true
		}
	}
	return false
}

func (okReports) Report(ctx context.Context, q api.ReportQuery, ch registry.Change, open func(api.ReportFile) (io.Writer, error)) (api.ReportFile, error) {
	if outsideStore(q.Day) {
		return api.ReportFile{}, errors.New("the handler let a day through that the store cannot be asked about")
	}
	f := api.ReportFile{Subscriber: q.Subscriber, Day: q.Day, Format: "csv", ContentType: "text/csv", Name: "f.csv"}
	_, err := open(f)
	return f, err
}
func (okReports) SendReports(context.Context, time.Time, api.SendRequest, registry.Change) (api.SendResult, error) {
	return api.SendResult{}, nil
}
func (okReports) Deliveries(context.Context, api.DeliveryFilter) ([]api.Delivery, error) {
	return nil, nil
}
func (okReports) MarkSent(context.Context, string, string, registry.Change) (api.Delivery, error) {
	return api.Delivery{}, nil
}
func (okReports) Resend(context.Context, string, registry.Change) (api.SendResult, error) {
	return api.SendResult{}, nil
}
func (okReports) Trend(ctx context.Context, q api.TrendQuery) (api.Trend, error) {
	if !q.From.Before(q.To) || (q.Subscriber == "") == (q.ASN == 0) || outsideStore(q.From, q.To) {
		return api.Trend{}, errors.New("the handler let a bad query through")
	}
	return api.Trend{}, nil
}

// FuzzReportParams: the report endpoints answer any path and query with
// 200 or a 4xx, never a 5xx: every bad parameter is the client's.
func FuzzReportParams(f *testing.F) {
	for _, s := range [][2]string{
		{"/v1/reports/2026-11-26", "subscriber=isp-a&format=csv"}, {"/v1/reports/2026-13-01", "subscriber=isp-a"},
		{"/v1/reports/x", ""}, {"/v1/trend", "asn=AS64500&from=2026-01-01&to=2026-02-01"}, {"/v1/trend", "subscriber=isp-a&asn=1"},
		{"/v1/trend", "asn=0"}, {"/v1/trend", "subscriber=a&to=2000-01-01"}, {"/v1/deliveries", "status=sent,failed&from=2026-11-01&limit=3"},
		{"/v1/deliveries", "limit=-1"}, {"/v1/deliveries", "status=,,"},
		{"/v1/reports/1600-01-01", "subscriber=isp-a"}, {"/v1/reports/0000-01-01", "subscriber=isp-a"},
		{"/v1/trend", "asn=1&from=1670-01-01&to=1671-01-01"}, {"/v1/trend", "asn=1&from=2261-12-01&to=2262-02-01"},
		{"/v1/trend", "asn=1&to=1678-01-02"}, {"/v1/deliveries", "from=0001-01-01&to=9999-12-31"},
	} {
		f.Add(s[0], s[1])
	}
	h := api.New(api.Config{Reports: okReports{}, Token: token, Now: func() time.Time { return time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC) }})
	f.Fuzz(func(t *testing.T, path, query string) {
		if _, err := url.ParseQuery(query); err != nil {
			return
		}
		if !strings.HasPrefix(path, "/v1/reports/") && path != "/v1/trend" && path != "/v1/deliveries" {
			return
		}
		u, err := url.Parse("http://x" + path + "?" + query)
		if err != nil {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "http://x/", nil)
		req.URL = u
		req.RequestURI = u.RequestURI()
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("GET %s?%s: %d %s", path, query, w.Code, w.Body)
		}
	})
}
