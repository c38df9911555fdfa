package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/report"
)

// The subscribers' reports, for the operator (the subscribers themselves
// pull theirs from the feed under /api/v1):
//
//	GET  /v1/reports/{date}?subscriber=S&format=F  one report file
//	POST /v1/reports/{date}/send                    mail a day's reports (SendRequest)
//	GET  /v1/deliveries?subscriber=&format=&from=&to=&status=&limit=   the delivery log
//	POST /v1/deliveries/mark-sent                   record a delivery as sent (KeyRequest)
//	POST /v1/deliveries/resend                      send one delivery again (KeyRequest)
//	GET  /v1/trend?subscriber=S|asn=N&from=&to=     remediation per day
//
// Dates are UTC days, YYYY-MM-DD.

// Reports makes, sends and measures the subscribers' reports. The server
// takes it in Config.Reports, and the Client implements it, so that the
// CLI works the same with and without a running server. Unknown
// subscribers and delivery keys are registry.ErrNotFound, bad input
// registry.ErrInvalid, and mail functions without a relay ErrNoMail.
type Reports interface {
	// Report writes one report: it calls open with the file's
	// description once the report is built, and writes the report to the
	// writer open returns. The read is recorded in the audit log.
	Report(ctx context.Context, q ReportQuery, ch registry.Change, open func(ReportFile) (io.Writer, error)) (ReportFile, error)
	// SendReports mails the reports of a past day through the relay,
	// each subscriber's in each of its formats, unless the delivery log
	// holds them (req.Resend sends them again). Deliveries that fail are
	// counted and described in the result; the error is for the request.
	SendReports(ctx context.Context, day time.Time, req SendRequest, ch registry.Change) (SendResult, error)
	// Deliveries lists the delivery log, newest day first.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// MarkSent records a delivery (e.g. an "unknown" one, found in the
	// relay's log) as sent.
	MarkSent(ctx context.Context, key, note string, ch registry.Change) (Delivery, error)
	// Resend sends one delivery again, whatever its state.
	Resend(ctx context.Context, key string, ch registry.Change) (SendResult, error)
	// Trend measures the remediation of a subscriber's scope or of one
	// network over the days of a period.
	Trend(ctx context.Context, q TrendQuery) (Trend, error)
}

// ErrNoMail reports that takedown sends no mail: no relay is configured.
var ErrNoMail = errors.New("no mail relay is configured (mail.relay): takedown sends no mail and keeps no delivery log")

// ReportQuery asks for one report file.
type ReportQuery struct {
	// Day is the UTC day reported.
	Day        time.Time
	Subscriber string
	// Format is one of report.SubscriberFormats; empty means the subscriber's
	// first format.
	Format string
}

// ReportFile describes one report file.
type ReportFile struct {
	Subscriber string    `json:"subscriber"`
	Day        time.Time `json:"day"`
	Format     string    `json:"format"`
	// ContentType is the media type of the file.
	ContentType string `json:"content_type"`
	// Name is the file's name: SUBSCRIBER-YYYY-MM-DD.EXT.
	Name string `json:"name"`
	// Rows is the number of infected hosts (address and family).
	Rows int `json:"rows"`
	// TLP is the report's TLP label.
	TLP string `json:"tlp,omitempty"`
}

// SendRequest is the body of POST /v1/reports/{date}/send.
type SendRequest struct {
	// Subscribers names the subscribers; empty means all.
	Subscribers []string `json:"subscribers,omitempty"`
	// Resend sends again what the delivery log holds as sent, failed or
	// unknown.
	Resend bool   `json:"resend,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// SendResult is what a send did, counted in mails: one per subscriber and
// format, and for X-ARF one per infected host.
type SendResult struct {
	Day         time.Time `json:"day"`
	Subscribers int       `json:"subscribers"`
	// Mails were sent now; Skipped were not, because the delivery log
	// holds them (sent, failed or unknown); NoData had no host to report.
	Mails   int `json:"mails"`
	Skipped int `json:"skipped"`
	NoData  int `json:"no_data"`
	// Failed were not delivered: Errors says why.
	Failed int      `json:"failed"`
	Errors []string `json:"errors,omitempty"`
}

// DeliveryFilter selects rows of the delivery log; zero fields select all.
type DeliveryFilter struct {
	Subscriber string
	Format     string
	// From and To are UTC days, both included.
	From, To time.Time
	// Status is any of pending, sending, sent, failed and unknown.
	Status []string
	Limit  int
}

// Delivery is one row of the delivery log: one mail of one subscriber,
// day and format (for X-ARF: of one host).
type Delivery struct {
	// Key is SUBSCRIBER/YYYY-MM-DD/FORMAT, what mark-sent and resend take.
	Key        string    `json:"key"`
	Subscriber string    `json:"subscriber"`
	Day        time.Time `json:"day"`
	Format     string    `json:"format"`
	// Status is pending, sending, sent, failed or unknown.
	Status     string   `json:"status"`
	Attempts   int      `json:"attempts"`
	MessageID  string   `json:"message_id"`
	Recipients []string `json:"recipients"`
	Bytes      int      `json:"bytes"`
	LastError  string   `json:"last_error,omitempty"`
	// Response is the relay's answer to the message, e.g. "250 OK id=…".
	Response string    `json:"response,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Sent     time.Time `json:"sent,omitzero"`
}

// KeyRequest is the body of POST /v1/deliveries/mark-sent and resend.
type KeyRequest struct {
	Key    string `json:"key"`
	Note   string `json:"note,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ParseDeliveryKey splits SUBSCRIBER/YYYY-MM-DD/FORMAT.
func ParseDeliveryKey(key string) (subscriber string, day time.Time, format string, err error) {
	parts := strings.Split(strings.TrimSpace(key), "/")
	if len(parts) == 3 && parts[0] != "" && parts[2] != "" {
		if d, err := time.Parse(time.DateOnly, parts[1]); err == nil {
			return parts[0], d, parts[2], nil
		}
	}
	return "", time.Time{}, "", fmt.Errorf("delivery key %q is not SUBSCRIBER/YYYY-MM-DD/FORMAT, e.g. isp-a/2026-11-26/csv: %w", clip(key), registry.ErrInvalid)
}

// TrendQuery asks for the remediation of a subscriber's scope or of one
// network: one of Subscriber and ASN.
type TrendQuery struct {
	Subscriber string
	ASN        uint32
	// From is the first UTC day, To the day after the last.
	From, To time.Time
}

// Trend is the remediation of the infected hosts of a scope.
type Trend struct {
	Subscriber string `json:"subscriber,omitempty"`
	ASN        uint32 `json:"asn,omitempty"`
	// Scope describes the scope, e.g. "AS64512, 192.0.2.0/24".
	Scope string `json:"scope"`
	// From is the first day, To the day after the last.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Total is the whole scope (a host in two of its networks counts
	// once); ByASN its networks with hosts, most on the first day first.
	Total TrendSeries   `json:"total"`
	ByASN []TrendSeries `json:"by_asn"`
}

// TrendSeries is the unique infected hosts per day of a scope or a
// network, and what they say about remediation (report.Series). Figures
// that cannot be known are -1.
type TrendSeries = report.Series

// The headers of a report file's answer.
const (
	rowsHeader       = "X-Report-Rows"
	subscriberHeader = "X-Report-Subscriber"
	formatHeader     = "X-Report-Format"
	// completeHeader is a trailer, "yes" once the whole report is
	// written: a report cut short has none.
	completeHeader = "X-Report-Complete"
)

func (h *Handler) reportsOr503(w http.ResponseWriter) bool {
	if h.cfg.Reports == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this server makes no reports", nil)
		return false
	}
	return true
}

// pathDay reads the {date} of the path.
func pathDay(r *http.Request) (time.Time, error) {
	s := r.PathValue("date")
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, badf("date %q is not a day, YYYY-MM-DD", clip(s))
	}
	return d, checkStoreTime("date", d, time.DateOnly)
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	if !h.reportsOr503(w) {
		return nil
	}
	q := r.URL.Query()
	if err := onlyParams(q, "subscriber", "format"); err != nil {
		return err
	}
	day, err := pathDay(r)
	if err != nil {
		return err
	}
	rq := ReportQuery{Day: day, Subscriber: q.Get("subscriber"), Format: q.Get("format")}
	if rq.Subscriber == "" {
		return badf("parameter subscriber: missing; name the subscriber whose report to make")
	}
	started := false
	_, err = h.cfg.Reports.Report(r.Context(), rq, ch, func(f ReportFile) (io.Writer, error) {
		hd := w.Header()
		hd.Set("Content-Type", f.ContentType)
		hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
		hd.Set(rowsHeader, strconv.Itoa(f.Rows))
		hd.Set(subscriberHeader, f.Subscriber)
		hd.Set(formatHeader, f.Format)
		if f.TLP != "" {
			hd.Set("X-TLP", f.TLP)
		}
		hd.Set("Trailer", completeHeader)
		w.WriteHeader(http.StatusOK)
		started = true
		return w, nil
	})
	if err != nil && started {
		// The status is out: cut the answer off, so that the client sees
		// a broken transfer and no trailer rather than a short report.
		h.log.Error("writing a report", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		return err
	}
	w.Header().Set(completeHeader, "yes")
	return nil
}

func (h *Handler) sendReports(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	if !h.reportsOr503(w) {
		return nil
	}
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	day, err := pathDay(r)
	if err != nil {
		return err
	}
	var req SendRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ch.Reason = req.Reason
	res, err := h.cfg.Reports.SendReports(r.Context(), day, req, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (h *Handler) deliveries(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if !h.reportsOr503(w) {
		return nil
	}
	q := r.URL.Query()
	if err := onlyParams(q, "subscriber", "format", "from", "to", "status", "limit"); err != nil {
		return err
	}
	f := DeliveryFilter{Subscriber: q.Get("subscriber"), Format: q.Get("format")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := q.Get(p.name); s != "" {
			d, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return badf("parameter %s: %q is not a day, YYYY-MM-DD", p.name, clip(s))
			}
			*p.dst = d
		}
	}
	for _, s := range q["status"] {
		for _, st := range strings.Split(s, ",") {
			if st = strings.TrimSpace(st); st != "" {
				f.Status = append(f.Status, st)
			}
		}
	}
	var err error
	if f.Limit, err = intParam(q.Get("limit"), "limit"); err != nil {
		return err
	}
	ds, err := h.cfg.Reports.Deliveries(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
	return nil
}

func (h *Handler) markSent(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	if !h.reportsOr503(w) {
		return nil
	}
	var req KeyRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ch.Reason = req.Reason
	d, err := h.cfg.Reports.MarkSent(r.Context(), req.Key, req.Note, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (h *Handler) resend(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	if !h.reportsOr503(w) {
		return nil
	}
	var req KeyRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Note != "" {
		return badf("request body: note: only mark-sent takes a note")
	}
	ch.Reason = req.Reason
	res, err := h.cfg.Reports.Resend(r.Context(), req.Key, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (h *Handler) trend(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if !h.reportsOr503(w) {
		return nil
	}
	q := r.URL.Query()
	if err := onlyParams(q, "subscriber", "asn", "from", "to"); err != nil {
		return err
	}
	tq := TrendQuery{Subscriber: q.Get("subscriber")}
	if s := q.Get("asn"); s != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "AS"), 10, 32)
		if err != nil || n == 0 {
			return badf("parameter asn: %q is not an AS number", clip(s))
		}
		tq.ASN = uint32(n)
	}
	switch {
	case tq.Subscriber == "" && tq.ASN == 0:
		return badf("parameters subscriber and asn: give one, the scope to measure")
	case tq.Subscriber != "" && tq.ASN != 0:
		return badf("parameters subscriber and asn: give one, not both")
	}
	today := h.now().UTC().Truncate(24 * time.Hour)
	tq.From, tq.To = today.AddDate(0, 0, -30), today.AddDate(0, 0, 1)
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &tq.From}, {"to", &tq.To}} {
		if s := q.Get(p.name); s != "" {
			d, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return badf("parameter %s: %q is not a day, YYYY-MM-DD", p.name, clip(s))
			}
			*p.dst = d
		}
	}
	if !tq.From.Before(tq.To) {
		return badf("parameters from and to: from %s is not before to %s (to is the day after the last)", tq.From.Format(time.DateOnly), tq.To.Format(time.DateOnly))
	}
	if err := checkStoreTime("parameter from", tq.From, time.DateOnly); err != nil {
		return err
	}
	if err := checkStoreTime("parameter to", tq.To, time.DateOnly); err != nil {
		return err
	}
	t, err := h.cfg.Reports.Trend(r.Context(), tq)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

var _ Reports = (*Client)(nil)

// Report fetches one report file.
func (c *Client) Report(ctx context.Context, q ReportQuery, ch registry.Change, open func(ReportFile) (io.Writer, error)) (ReportFile, error) {
	v := url.Values{"subscriber": {q.Subscriber}}
	if q.Format != "" {
		v.Set("format", q.Format)
	}
	path := "/v1/reports/" + esc(q.Day.UTC().Format(time.DateOnly))
	resp, err := c.withActor(ch).long().send(ctx, http.MethodGet, path, v, nil, "")
	if err != nil {
		return ReportFile{}, err
	}
	defer resp.Body.Close()
	f := ReportFile{
		Subscriber: resp.Header.Get(subscriberHeader), Day: q.Day.UTC().Truncate(24 * time.Hour),
		Format: resp.Header.Get(formatHeader), ContentType: resp.Header.Get("Content-Type"), TLP: resp.Header.Get("X-TLP"),
	}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		f.Name = params["filename"]
	}
	if f.Rows, err = strconv.Atoi(resp.Header.Get(rowsHeader)); err != nil || f.Name == "" || f.Subscriber == "" {
		return ReportFile{}, fmt.Errorf("GET %s: the answer does not describe a report file", path)
	}
	w, err := open(f)
	if err != nil {
		return f, err
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return f, fmt.Errorf("reading report %s: %w", f.Name, err)
	}
	if resp.Trailer.Get(completeHeader) != "yes" {
		return f, fmt.Errorf("reading report %s: the server did not finish it", f.Name)
	}
	return f, nil
}

// SendReports asks the server to mail a day's reports.
func (c *Client) SendReports(ctx context.Context, day time.Time, req SendRequest, ch registry.Change) (SendResult, error) {
	var out SendResult
	req.Reason = ch.Reason
	err := c.withActor(ch).long().postJSON(ctx, "/v1/reports/"+esc(day.UTC().Format(time.DateOnly))+"/send", req, &out)
	return out, err
}

// Deliveries lists the server's delivery log.
func (c *Client) Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	q := url.Values{}
	if f.Subscriber != "" {
		q.Set("subscriber", f.Subscriber)
	}
	if f.Format != "" {
		q.Set("format", f.Format)
	}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.DateOnly))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.DateOnly))
	}
	if len(f.Status) > 0 {
		q.Set("status", strings.Join(f.Status, ","))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []Delivery
	err := c.do(ctx, http.MethodGet, "/v1/deliveries", q, nil, "", &out)
	return out, err
}

// MarkSent records a delivery as sent on the server.
func (c *Client) MarkSent(ctx context.Context, key, note string, ch registry.Change) (Delivery, error) {
	var out Delivery
	err := c.withActor(ch).postJSON(ctx, "/v1/deliveries/mark-sent", KeyRequest{Key: key, Note: note, Reason: ch.Reason}, &out)
	return out, err
}

// Resend asks the server to send one delivery again.
func (c *Client) Resend(ctx context.Context, key string, ch registry.Change) (SendResult, error) {
	var out SendResult
	err := c.withActor(ch).long().postJSON(ctx, "/v1/deliveries/resend", KeyRequest{Key: key, Reason: ch.Reason}, &out)
	return out, err
}

// Trend asks the server for a remediation trend.
func (c *Client) Trend(ctx context.Context, q TrendQuery) (Trend, error) {
	v := url.Values{}
	if q.Subscriber != "" {
		v.Set("subscriber", q.Subscriber)
	}
	if q.ASN != 0 {
		v.Set("asn", strconv.FormatUint(uint64(q.ASN), 10))
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.DateOnly))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.DateOnly))
	}
	var out Trend
	err := c.do(ctx, http.MethodGet, "/v1/trend", v, nil, "", &out)
	return out, err
}
