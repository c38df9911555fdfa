package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
)

// reportServer is an API server whose reports are app's, over a database
// in memory holding yesterday's callbacks of two networks and two
// subscribers, isp-a (AS64500) and isp-b (AS64501); no mail relay.
func reportServer(t *testing.T) (srv *httptest.Server, day time.Time) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Parse("t.yaml", []byte("data_dir: "+t.TempDir()+"\noperator: Test CERT\n"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	reg, st := local.Registry, local.Store
	day = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	var evs []event.Event
	for i := range 40 {
		asn, ip := uint32(64500), netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 10)})
		if i%2 == 1 {
			asn, ip = 64501, netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 7)})
		}
		evs = append(evs, event.Event{
			Time: day.Add(time.Duration(i) * time.Hour / 2), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: ip, SrcPort: 40000, DstPort: 80, Domain: "seized.example", Case: "wal", Family: "waledac",
			ASN: asn, CountryCode: "DE",
		})
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, s := range []registry.NewSubscriber{
		{Name: "isp-a", Org: "ISP A", Contacts: []string{"abuse@a.example"}, ASNs: []string{"AS64500"}, Formats: []string{"csv", "xarf"}},
		{Name: "isp-b", Org: "ISP B", Contacts: []string{"abuse@b.example"}, ASNs: []string{"AS64501"}},
	} {
		if _, err := reg.AddSubscriber(ctx, s, registry.Change{Actor: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	reps := app.LocalReports(cfg, local, slog.New(slog.DiscardHandler))
	srv = httptest.NewServer(api.New(api.Config{Registry: reg, Events: st, Reports: reps, Token: token}))
	t.Cleanup(srv.Close)
	return srv, day
}

// TestReportEndpointsBadInput: every bad date, format, subscriber, key and
// period is a 4xx that names it; without a relay the mail endpoints say
// so.
func TestReportEndpointsBadInput(t *testing.T) {
	srv, day := reportServer(t)
	d := day.Format(time.DateOnly)
	tomorrow := day.AddDate(0, 0, 2).Format(time.DateOnly)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"bad date", "GET", "/v1/reports/2026-13-01?subscriber=isp-a", "", 400, `date "2026-13-01" is not a day`},
		{"not a date", "GET", "/v1/reports/yesterday?subscriber=isp-a", "", 400, `date "yesterday"`},
		{"future date", "GET", "/v1/reports/" + tomorrow + "?subscriber=isp-a", "", 400, tomorrow + " is in the future"},
		{"no subscriber", "GET", "/v1/reports/" + d, "", 400, "parameter subscriber: missing"},
		{"unknown subscriber", "GET", "/v1/reports/" + d + "?subscriber=nobody", "", 404, `subscriber "nobody": not found`},
		{"bad subscriber name", "GET", "/v1/reports/" + d + "?subscriber=ISP%20A", "", 400, `"ISP A"`},
		{"bad format", "GET", "/v1/reports/" + d + "?subscriber=isp-a&format=pdf", "", 400, `format "pdf" is not one of csv, json, xarf, stix, event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http`},
		{"unknown parameter", "GET", "/v1/reports/" + d + "?subscriber=isp-a&fmt=csv", "", 400, `unknown parameter "fmt"`},
		{"send bad date", "POST", "/v1/reports/26-11-2026/send", `{}`, 400, `date "26-11-2026"`},
		{"send unknown field", "POST", "/v1/reports/" + d + "/send", `{"subscriber":["isp-a"]}`, 400, `"subscriber"`},
		{"send without relay", "POST", "/v1/reports/" + d + "/send", `{}`, 409, "no mail relay is configured"},
		{"deliveries bad status", "GET", "/v1/deliveries?status=sent,lost", "", 400, `status "lost" is not one of`},
		{"deliveries bad date", "GET", "/v1/deliveries?from=2026-02-30", "", 400, `parameter from: "2026-02-30"`},
		{"deliveries without relay", "GET", "/v1/deliveries", "", 409, "no mail relay"},
		{"mark-sent bad key", "POST", "/v1/deliveries/mark-sent", `{"key":"isp-a/csv"}`, 400, `delivery key "isp-a/csv" is not SUBSCRIBER/YYYY-MM-DD/FORMAT`},
		{"resend bad key", "POST", "/v1/deliveries/resend", `{"key":"isp-a/2026-11-31/csv"}`, 400, `delivery key "isp-a/2026-11-31/csv"`},
		{"resend note", "POST", "/v1/deliveries/resend", `{"key":"isp-a/2026-11-26/csv","note":"x"}`, 400, "only mark-sent takes a note"},
		{"trend no scope", "GET", "/v1/trend", "", 400, "give one, the scope"},
		{"trend both", "GET", "/v1/trend?subscriber=isp-a&asn=64500", "", 400, "not both"},
		{"trend bad asn", "GET", "/v1/trend?asn=ASX", "", 400, `parameter asn: "ASX"`},
		{"trend unknown subscriber", "GET", "/v1/trend?subscriber=nobody", "", 404, `subscriber "nobody": not found`},
		{"trend bad from", "GET", "/v1/trend?asn=64500&from=2026-1-1", "", 400, `parameter from: "2026-1-1"`},
		{"trend backwards", "GET", "/v1/trend?asn=64500&from=2026-03-01&to=2026-02-01", "", 400, "from 2026-03-01 is not before to 2026-02-01"},
		{"trend too long", "GET", "/v1/trend?asn=64500&from=2000-01-01&to=2026-01-01", "", 400, "longer than 3660 days"},
		{"report before the store's times", "GET", "/v1/reports/1600-01-01?subscriber=isp-a", "", 400, "date: 1600-01-01 is before 1678-01-01, the earliest"},
		{"trend before the store's times", "GET", "/v1/trend?asn=64500&from=1670-01-01&to=1671-01-01", "", 400, "parameter from: 1670-01-01 is before 1678-01-01, the earliest"},
		{"trend after the store's times", "GET", "/v1/trend?asn=64500&from=2261-12-01&to=2262-02-01", "", 400, "parameter to: 2262-02-01 is after 2262-01-01, the latest"},
	} {
		status, body := do(t, srv, tc.method, tc.path, tc.body, true)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %s %s: %d %s; want %d containing %q", tc.name, tc.method, tc.path, status, body, tc.status, tc.want)
		}
	}
	if status, _ := do(t, srv, "GET", "/v1/reports/"+d+"?subscriber=isp-a", "", false); status != 401 {
		t.Errorf("a report without the token: %d", status)
	}
}

// TestReportThroughClient: the client gets each subscriber's own hosts
// only, the file described as the server made it, and the server's
// errors as the registry's.
func TestReportThroughClient(t *testing.T) {
	srv, day := reportServer(t)
	c := api.NewClient(srv.URL, token, "tester")
	ctx := context.Background()
	for sub, prefix := range map[string]string{"isp-a": "192.0.2.", "isp-b": "198.51.100."} {
		var buf bytes.Buffer
		f, err := c.Report(ctx, api.ReportQuery{Day: day, Subscriber: sub}, registry.Change{}, func(api.ReportFile) (io.Writer, error) { return &buf, nil })
		if err != nil {
			t.Fatal(err)
		}
		want := api.ReportFile{Subscriber: sub, Day: day, Format: "csv", ContentType: "text/csv; charset=utf-8; header=present",
			Name: sub + "-" + day.Format(time.DateOnly) + ".csv", Rows: map[string]int{"isp-a": 5, "isp-b": 7}[sub], TLP: "AMBER"}
		if f != want {
			t.Errorf("%s: %+v\nwant %+v", sub, f, want)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil || len(rows) != want.Rows+1 {
			t.Fatalf("%s: %d rows, %v", sub, len(rows), err)
		}
		for _, r := range rows[1:] {
			if !strings.HasPrefix(r[2], prefix) {
				t.Errorf("%s's report holds %s", sub, r[2])
			}
		}
	}
	var mbox bytes.Buffer
	f, err := c.Report(ctx, api.ReportQuery{Day: day, Subscriber: "isp-a", Format: "XARF"}, registry.Change{}, func(api.ReportFile) (io.Writer, error) { return &mbox, nil })
	if err != nil || f.Name != "isp-a-"+day.Format(time.DateOnly)+".mbox" || bytes.Count(mbox.Bytes(), []byte("\nX-ARF: YES")) != 5 {
		t.Errorf("xarf: %+v %v, %d X-ARF mails", f, err, bytes.Count(mbox.Bytes(), []byte("\nX-ARF: YES")))
	}
	if _, err := c.Report(ctx, api.ReportQuery{Day: day, Subscriber: "nobody"}, registry.Change{}, nil); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown subscriber: %v", err)
	}
	if _, err := c.SendReports(ctx, day, api.SendRequest{}, registry.Change{}); !errors.Is(err, api.ErrNoMail) {
		t.Errorf("send without relay: %v", err)
	}
	tr, err := c.Trend(ctx, api.TrendQuery{ASN: 64501, From: day.AddDate(0, 0, -1), To: day.AddDate(0, 0, 1)})
	if err != nil || fmt.Sprint(tr.Total.Hosts) != "[0 7]" || tr.Scope != "AS64501" || len(tr.ByASN) != 1 || tr.Total.HalvedAfter != -1 {
		t.Errorf("trend: %+v %v", tr, err)
	}
	tr, err = c.Trend(ctx, api.TrendQuery{Subscriber: "isp-a", From: day, To: day.AddDate(0, 0, 2)})
	if err != nil || fmt.Sprint(tr.Total.Hosts) != "[5 0]" || tr.Total.HalvedAfter != 1 || tr.Total.Remaining7 != -1 {
		t.Errorf("trend of isp-a: %+v %v", tr, err)
	}
	// Every report made is on the record.
	entries, err := c.Audit(ctx, registry.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Action == "report.generate" && e.Actor == "tester" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d report.generate entries by tester, want 3", n)
	}
}

// brokenReports fails half way through writing a report.
type brokenReports struct{ api.Reports }

func (brokenReports) Report(ctx context.Context, q api.ReportQuery, ch registry.Change, open func(api.ReportFile) (io.Writer, error)) (api.ReportFile, error) {
	f := api.ReportFile{Subscriber: q.Subscriber, Day: q.Day, Format: "csv", ContentType: "text/csv", Name: "x.csv", Rows: 2}
	w, err := open(f)
	if err != nil {
		return f, err
	}
	io.WriteString(w, "timestamp,ip\n2026-11-26 00:00:00,192.0.2.1\n")
	return f, errors.New("disk on fire")
}

// TestReportCutShort: a report that fails after its first bytes went out
// is not taken for a whole one.
func TestReportCutShort(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Config{Reports: brokenReports{}, Token: token}))
	t.Cleanup(srv.Close)
	c := api.NewClient(srv.URL, token, "t")
	var buf bytes.Buffer
	_, err := c.Report(context.Background(), api.ReportQuery{Day: time.Now(), Subscriber: "isp-a"}, registry.Change{}, func(api.ReportFile) (io.Writer, error) { return &buf, nil })
	if err == nil {
		t.Fatalf("a report cut short was read as whole: %q", buf.String())
	}
	if strings.Contains(buf.String(), "disk on fire") {
		t.Errorf("the error went into the report: %q", buf.String())
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
