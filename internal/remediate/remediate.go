// Package remediate is the fourth step of a takedown: telling every network
// owner which of its hosts are infected, so that they get cleaned. It builds
// each subscriber's report of a day (internal/report), mails it once a day at
// the subscriber's send time through the relay (internal/deliver, whose
// delivery log makes every send idempotent), answers the operator's requests
// (a report file, a day mailed now, the delivery log, a send marked or
// repeated) and measures the remediation trend of a scope.
//
// A Service is made with New from what it reads (the subscribers, the event
// store) and, when mail goes out, a Deliverer. It implements the admin API's
// api.Reports; Run is the daily scheduler.
package remediate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/deliver"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/report"
	"github.com/takedown-project/takedown/internal/scope"
)

// Subscribers is what the service needs of the registry: the subscribers,
// and the audit log, where every report written and every mail is an entry.
type Subscribers interface {
	Lister
	RecordAccess(ctx context.Context, ch registry.Change, action, object string, detail any) error
}

// Mailer sends the reports and keeps the delivery log (deliver.Deliverer):
// Deliver sends a key once, Resend again.
type Mailer interface {
	Deliver(ctx context.Context, key deliver.Key, build func() (deliver.Message, error)) (deliver.Result, error)
	Resend(ctx context.Context, key deliver.Key, build func() (deliver.Message, error)) (deliver.Result, error)
	MarkSent(ctx context.Context, key deliver.Key, note string) (deliver.Record, error)
	List(ctx context.Context, f deliver.Filter) ([]deliver.Record, error)
	Get(ctx context.Context, key deliver.Key) (deliver.Record, bool, error)
}

var _ Mailer = (*deliver.Deliverer)(nil)

// Store is what the service reads of the event store: the host rows of the
// reports, the events of Shadowserver's sinkhole event reports and the
// daily counts of the trend.
type Store interface {
	report.Source
	report.EventSource
	report.DailySource
}

// Config configures a Service.
type Config struct {
	// Subscribers and Store are read; both required.
	Subscribers Subscribers
	Store       Store
	// Mail sends the reports; nil: no e-mail (OpenMail may open it on
	// first use).
	Mail Mailer
	// OpenMail, if set and Mail is nil, opens the relay when a command
	// first needs it (the CLI opens it only for the commands that mail).
	OpenMail func(ctx context.Context) (Mailer, error)
	// Operator names who sends the reports, in their headers and bodies.
	Operator report.Operator
	// CacheDays keeps each day's reports of all subscribers once built:
	// a CLI run that writes many subscribers' files reads the day's hosts
	// once. serve builds afresh each time.
	CacheDays bool
	// Logger receives one line per day's build and per failed mail; nil
	// discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service makes the subscribers' reports: for their pull feed, and once a
// day by e-mail through the relay.
type Service struct {
	reg   Subscribers
	store Store
	opt   report.Options
	mail  Mailer // nil: no e-mail
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex
	done map[string]bool // subscriber|day whose reports went out (or had none)

	openMail func(ctx context.Context) (Mailer, error)
	sets     map[time.Time]*daySet
}

// New returns the service.
func New(cfg Config) *Service {
	r := &Service{
		reg: cfg.Subscribers, store: cfg.Store, mail: cfg.Mail, log: cfg.Logger, now: cfg.Now,
		opt: report.Options{Operator: cfg.Operator}, done: map[string]bool{}, openMail: cfg.OpenMail,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if cfg.CacheDays {
		r.sets = map[time.Time]*daySet{}
	}
	return r
}

// Options are the report options: the operator.
func (r *Service) Options() report.Options { return r.opt }

// subscriber maps the registry's subscriber onto what reports need.
func reportSubscriber(s registry.Subscriber) report.Subscriber {
	return report.Subscriber{Name: s.Name, Org: s.Org, Scope: s.Scope, TLP: s.TLP}
}

// One builds one subscriber's report of one UTC day.
func (r *Service) One(ctx context.Context, sub report.Subscriber, day time.Time) (*report.Report, error) {
	from, to := report.Day(day)
	set, err := report.Build(ctx, r.store, []report.Subscriber{sub}, from, to)
	if err != nil {
		return nil, err
	}
	return set.Report(0), nil
}

// Run sends the previous day's reports of every subscriber whose send time
// has come, checking every minute, until ctx ends.
func (r *Service) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if err := r.sendDue(ctx, r.now()); err != nil && ctx.Err() == nil {
			r.log.Error("daily reports", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendDue sends the reports of yesterday (UTC) that are due at now and not
// yet sent. All subscribers due together are built in one pass over the
// day's hosts. The delivery log makes it safe to call again: a report that
// went out is never sent twice.
func (r *Service) sendDue(ctx context.Context, now time.Time) error {
	if r.mail == nil {
		return nil
	}
	today := now.UTC().Truncate(24 * time.Hour)
	day := today.Add(-24 * time.Hour)
	subs, err := r.reg.ListSubscribers(ctx)
	if err != nil {
		return err
	}
	var due []registry.Subscriber
	r.mu.Lock()
	for k := range r.done {
		// Only yesterday's matter: forget older days.
		if !strings.HasSuffix(k, "|"+day.Format(time.DateOnly)) {
			delete(r.done, k)
		}
	}
	for _, s := range subs {
		at, err := time.Parse("15:04", s.SendAt)
		if err != nil || len(s.Contacts) == 0 || r.done[s.Name+"|"+day.Format(time.DateOnly)] {
			continue
		}
		if !now.Before(today.Add(time.Duration(at.Hour())*time.Hour + time.Duration(at.Minute())*time.Minute)) {
			due = append(due, s)
		}
	}
	r.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	_, err = r.send(ctx, day, due, false)
	return err
}

// Sent counts what a send did.
type Sent struct {
	Mails, Skipped, NoData, Failed int
}

// send builds the reports of day for subs and mails each in each of its
// formats; resend sends again what went out already.
func (r *Service) send(ctx context.Context, day time.Time, subs []registry.Subscriber, resend bool) (Sent, error) {
	if r.mail == nil {
		return Sent{}, api.ErrNoMail
	}
	set, err := r.build(ctx, day, subs)
	if err != nil {
		return Sent{}, err
	}
	return r.sendSet(ctx, set, subs, resend)
}

// build makes the reports of day for subs, reading the day's hosts once.
func (r *Service) build(ctx context.Context, day time.Time, subs []registry.Subscriber) (*report.Set, error) {
	from, to := report.Day(day)
	rs := make([]report.Subscriber, len(subs))
	for i, s := range subs {
		rs[i] = reportSubscriber(s)
	}
	t0 := time.Now()
	set, err := report.Build(ctx, r.store, rs, from, to)
	if err != nil {
		return nil, err
	}
	r.log.Info("daily reports built", "day", from.Format(time.DateOnly), "subscribers", len(subs), "hosts", set.Hosts, "in_scope", set.Kept, "took", time.Since(t0).Round(time.Millisecond))
	return set, nil
}

// sendSet mails the reports of set, built for subs. The error joins those
// of the mails that were not delivered.
func (r *Service) sendSet(ctx context.Context, set *report.Set, subs []registry.Subscriber, resend bool) (Sent, error) {
	var total Sent
	var errs []error
	for i, s := range subs {
		rep := set.Report(i)
		ev := r.sinkholeDay(s, rep.From)
		ok := true
		for _, format := range s.Formats {
			res, err := r.sendFormat(ctx, s, rep, ev, format, resend, "")
			total.Mails += res.Mails
			total.Skipped += res.Skipped
			total.NoData += res.NoData
			total.Failed += res.Failed
			if err != nil {
				ok = false
				errs = append(errs, fmt.Errorf("%s %s: %w", s.Name, format, err))
				if errors.As(err, new(relayDown)) {
					r.log.Warn("the relay takes no mail now; the other reports wait for the next round", "err", err)
					return total, errors.Join(errs...)
				}
			}
		}
		if ok {
			r.mu.Lock()
			r.done[s.Name+"|"+set.From.Format(time.DateOnly)] = true
			r.mu.Unlock()
		}
	}
	return total, errors.Join(errs...)
}

// sendFormat mails rep in format, or for one of Shadowserver's sinkhole
// event reports, that report of ev. only, when set, names the one
// delivery (the Format of its key) to send, for Resend.
func (r *Service) sendFormat(ctx context.Context, s registry.Subscriber, rep *report.Report, ev *sinkholeDay, format string, resend bool, only string) (Sent, error) {
	var n Sent
	deliverOne := func(key deliver.Key, build func() (deliver.Message, error)) error {
		do := r.mail.Deliver
		if resend {
			do = r.mail.Resend
		}
		res, err := do(ctx, key, build)
		switch {
		case res.NoData:
			n.NoData++
		case res.Sent:
			n.Mails++
		case res.Skipped:
			n.Skipped++
		}
		if err != nil && !res.Sent {
			// Refused for good (failed), still pending after the
			// attempts, interrupted (unknown) or busy: not delivered.
			n.Failed++
			if res.Status == deliver.StatusPending {
				// The relay, not this message: the rest waits for
				// the next round instead of each mail retrying alone.
				return relayDown{err}
			}
		}
		return err
	}
	if rep.Len() == 0 {
		// No infected host in the scope: no event of one either.
		n.NoData++
		return n, nil
	}
	if report.IsSinkholeReport(format) {
		key := deliver.Key{Subscriber: s.Name, Day: rep.From, Format: format}
		if only != "" && key.Format != only {
			return n, nil
		}
		err := deliverOne(key, func() (deliver.Message, error) {
			data, rows, err := ev.file(ctx, format)
			if err != nil {
				return deliver.Message{}, err
			}
			// No rows: no data, ErrNoData.
			return deliver.ReportMessage(deliver.Report{
				To: s.Contacts, Subscriber: s.Org, Day: rep.From, Format: "csv", ContentType: sinkholeContentType,
				Name: report.SinkholeFileName(format, s.Name, rep.From), Data: data, Rows: rows,
			})
		})
		return n, err
	}
	w, err := report.NewWriter(format, r.opt)
	if err != nil {
		return n, err
	}
	if x, ok := w.(report.XARF); ok {
		// X-ARF is one mail per host: its key names the host.
		var errs []error
		for row := range rep.Rows() {
			h := sha256.Sum256([]byte(row.IP.String() + "|" + row.Family))
			key := deliver.Key{Subscriber: s.Name, Day: rep.From, Format: "xarf-" + hex.EncodeToString(h[:8])}
			if only != "" && key.Format != only {
				continue
			}
			err := deliverOne(key, func() (deliver.Message, error) {
				// Called before deliverOne returns, while row is this
				// host's; only for a mail that is to go out.
				msg := x.Message(rep, row)
				m := deliver.Message{To: s.Contacts, Subject: msg.Subject, Headers: msg.Headers}
				for _, p := range msg.Parts {
					m.Parts = append(m.Parts, deliver.Part{ContentType: p.ContentType, Filename: p.Filename, Inline: p.Inline, Data: p.Data})
				}
				return m, nil
			})
			if err != nil {
				errs = append(errs, err)
				if errors.As(err, new(relayDown)) {
					break
				}
			}
		}
		return n, errors.Join(errs...)
	}
	key := deliver.Key{Subscriber: s.Name, Day: rep.From, Format: format}
	if only != "" && key.Format != only {
		return n, nil
	}
	err = deliverOne(key, func() (deliver.Message, error) {
		var buf bytes.Buffer
		if err := w.Write(&buf, rep); err != nil {
			return deliver.Message{}, err
		}
		return deliver.ReportMessage(deliver.Report{
			To: s.Contacts, Subscriber: s.Org, Day: rep.From, Format: w.Extension(),
			ContentType: w.ContentType(), Data: buf.Bytes(), Rows: rep.Len(),
		})
	})
	return n, err
}

// The operator's side of the reports (api.Reports): report files, mailing
// a day's reports, the delivery log and the remediation trend, for the
// admin API and, through LocalReports, for the CLI when no serve runs.

var _ api.Reports = (*Service)(nil)

// daySet is one day's reports of all subscribers.
type daySet struct {
	set   *report.Set
	index map[string]int // subscriber name → report
}

// mailer returns the Deliverer, opening it on first use if need be;
// api.ErrNoMail when no relay is configured.
func (r *Service) mailer(ctx context.Context) (Mailer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mail == nil && r.openMail != nil {
		d, err := r.openMail(ctx)
		if err != nil {
			return nil, err
		}
		r.mail, r.openMail = d, nil
	}
	if r.mail == nil {
		return nil, api.ErrNoMail
	}
	return r.mail, nil
}

// reportOf returns sub's report of the UTC day that starts at day.
func (r *Service) reportOf(ctx context.Context, sub registry.Subscriber, day time.Time) (*report.Report, error) {
	if r.sets == nil {
		return r.One(ctx, reportSubscriber(sub), day)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ds := r.sets[day]
	if ds == nil {
		subs, err := r.reg.ListSubscribers(ctx)
		if err != nil {
			return nil, err
		}
		set, err := r.build(ctx, day, subs)
		if err != nil {
			return nil, err
		}
		ds = &daySet{set: set, index: make(map[string]int, len(subs))}
		for i, s := range subs {
			ds.index[s.Name] = i
		}
		r.sets[day] = ds
	}
	if i, ok := ds.index[sub.Name]; ok {
		return ds.set.Report(i), nil
	}
	return r.One(ctx, reportSubscriber(sub), day)
}

// checkFormat returns format in lower case if it is a report format.
func checkFormat(format string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(format))
	if !slices.Contains(report.SubscriberFormats(), f) {
		return "", fmt.Errorf("format %q is not one of %s: %w", format, strings.Join(report.SubscriberFormats(), ", "), registry.ErrInvalid)
	}
	return f, nil
}

// sinkholeContentType is the media type of Shadowserver's sinkhole event
// reports.
const sinkholeContentType = "text/csv; charset=utf-8; header=present"

// sinkholeDay is one subscriber's Shadowserver sinkhole event reports of a
// day, for mail: all four are written in one pass over the day's events
// when the first is asked for, and those the subscriber takes are kept in
// memory (a mail's attachment is).
type sinkholeDay struct {
	store Store
	sub   registry.Subscriber
	day   time.Time
	read  bool
	err   error
	files map[string]*bytes.Buffer
	rows  map[string]int
}

func (r *Service) sinkholeDay(s registry.Subscriber, day time.Time) *sinkholeDay {
	return &sinkholeDay{store: r.store, sub: s, day: day}
}

// file returns the report of that name (event4_sinkhole, …) and its rows;
// no rows and no data when the day had no event for it.
func (d *sinkholeDay) file(ctx context.Context, format string) ([]byte, int, error) {
	if !d.read {
		d.read = true
		d.files = map[string]*bytes.Buffer{}
		var rows map[string]int
		rows, d.err = report.WriteSinkholeEvents(ctx, d.store, reportSubscriber(d.sub), d.day, func(name string) (io.Writer, error) {
			for _, f := range d.sub.Formats {
				if name == report.SinkholeFileName(f, d.sub.Name, d.day) {
					b := new(bytes.Buffer)
					d.files[f] = b
					return b, nil
				}
			}
			return io.Discard, nil
		})
		d.rows = map[string]int{}
		for _, f := range report.SinkholeReports() {
			d.rows[f] = rows[report.SinkholeFileName(f, d.sub.Name, d.day)]
		}
	}
	if d.err != nil {
		return nil, 0, d.err
	}
	b := d.files[format]
	if b == nil {
		return nil, 0, nil
	}
	return b.Bytes(), d.rows[format], nil
}

// sinkholeReport writes one of Shadowserver's sinkhole event reports of
// sub: a header and no rows when the day had no event for it. The rows are
// counted before the file is handed to open (an API answer states them in
// a header), so the report goes through a temporary file, mode 0600, that
// is removed at the end.
func (r *Service) sinkholeReport(ctx context.Context, sub registry.Subscriber, day time.Time, format string, ch registry.Change, open func(api.ReportFile) (io.Writer, error)) (api.ReportFile, error) {
	f := api.ReportFile{
		Subscriber: sub.Name, Day: day, Format: format, ContentType: sinkholeContentType,
		Name: report.SinkholeFileName(format, sub.Name, day), TLP: sub.TLP,
	}
	tmp, err := os.CreateTemp("", "takedown-report-*.csv")
	if err != nil {
		return f, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	rows, err := report.WriteSinkholeEvents(ctx, r.store, reportSubscriber(sub), day, func(name string) (io.Writer, error) {
		if name == f.Name {
			return bw, nil
		}
		return io.Discard, nil
	})
	if err != nil {
		return f, err
	}
	f.Rows = rows[f.Name]
	if f.Rows == 0 {
		bw.WriteString(strings.Join(report.SinkholeColumns(format), ",") + "\n")
	}
	if err := bw.Flush(); err != nil {
		return f, fmt.Errorf("report %s: %w", f.Name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return f, err
	}
	out, err := r.openRecorded(ctx, ch, f, open)
	if err != nil {
		return f, err
	}
	if _, err := io.Copy(out, tmp); err != nil {
		return f, fmt.Errorf("report %s: %w", f.Name, err)
	}
	return f, nil
}

// Report writes one subscriber's report of one day in one format; the
// day may be today (the report so far), not later.
func (r *Service) Report(ctx context.Context, q api.ReportQuery, ch registry.Change, open func(api.ReportFile) (io.Writer, error)) (api.ReportFile, error) {
	day, _ := report.Day(q.Day)
	if day.After(r.now().UTC()) {
		return api.ReportFile{}, fmt.Errorf("date %s is in the future: %w", day.Format(time.DateOnly), registry.ErrInvalid)
	}
	sub, err := r.reg.GetSubscriber(ctx, q.Subscriber)
	if err != nil {
		return api.ReportFile{}, err
	}
	format := q.Format
	if format == "" && len(sub.Formats) > 0 {
		format = sub.Formats[0]
	}
	if format, err = checkFormat(format); err != nil {
		return api.ReportFile{}, err
	}
	if report.IsSinkholeReport(format) {
		return r.sinkholeReport(ctx, sub, day, format, ch, open)
	}
	w, err := report.NewWriter(format, r.opt)
	if err != nil {
		return api.ReportFile{}, err
	}
	rep, err := r.reportOf(ctx, sub, day)
	if err != nil {
		return api.ReportFile{}, err
	}
	f := api.ReportFile{
		Subscriber: sub.Name, Day: day, Format: w.Format(), ContentType: w.ContentType(),
		Name: sub.Name + "-" + day.Format(time.DateOnly) + "." + w.Extension(), Rows: rep.Len(), TLP: rep.TLP(),
	}
	out, err := r.openRecorded(ctx, ch, f, open)
	if err != nil {
		return f, err
	}
	return f, w.Write(out, rep)
}

// openRecorded records in the audit log that report file f is made, then
// opens it. The file holds personal data: its making is on the record
// first.
func (r *Service) openRecorded(ctx context.Context, ch registry.Change, f api.ReportFile, open func(api.ReportFile) (io.Writer, error)) (io.Writer, error) {
	if err := r.reg.RecordAccess(ctx, ch, "report.generate", "subscriber:"+f.Subscriber,
		map[string]any{"day": f.Day.Format(time.DateOnly), "format": f.Format, "rows": f.Rows}); err != nil {
		return nil, err
	}
	return open(f)
}

// subscribers returns the named subscribers, in the order given without
// repeats, or all when names is empty.
func (r *Service) subscribers(ctx context.Context, names []string) ([]registry.Subscriber, error) {
	return Chosen(ctx, r.reg, names)
}

// Lister reads subscribers.
type Lister interface {
	ListSubscribers(ctx context.Context) ([]registry.Subscriber, error)
	GetSubscriber(ctx context.Context, name string) (registry.Subscriber, error)
}

// Chosen returns the subscribers named, in the order given without
// repeats, or all of them when names is empty: whom a day's reports are
// for.
func Chosen(ctx context.Context, reg Lister, names []string) ([]registry.Subscriber, error) {
	if len(names) == 0 {
		return reg.ListSubscribers(ctx)
	}
	var out []registry.Subscriber
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		s, err := reg.GetSubscriber(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// pastDay checks that day (midnight UTC) is over: a day's reports are
// mailed once, whole.
func (r *Service) pastDay(day time.Time) error {
	if today := r.now().UTC().Truncate(24 * time.Hour); !day.Before(today) {
		return fmt.Errorf("date %s: the day is not over (UTC); reports are mailed for past days only, so that each goes out once and whole: %w",
			day.Format(time.DateOnly), registry.ErrInvalid)
	}
	return nil
}

// SendReports mails the reports of a past day to the subscribers named
// (all if none), in their formats.
func (r *Service) SendReports(ctx context.Context, day time.Time, req api.SendRequest, ch registry.Change) (api.SendResult, error) {
	day, _ = report.Day(day)
	res := api.SendResult{Day: day}
	if _, err := r.mailer(ctx); err != nil {
		return res, err
	}
	if err := r.pastDay(day); err != nil {
		return res, err
	}
	subs, err := r.subscribers(ctx, req.Subscribers)
	if err != nil {
		return res, err
	}
	res.Subscribers = len(subs)
	set, err := r.build(ctx, day, subs)
	if err != nil {
		return res, err
	}
	sent, err := r.sendSet(ctx, set, subs, req.Resend)
	res.Mails, res.Skipped, res.NoData, res.Failed, res.Errors = sent.Mails, sent.Skipped, sent.NoData, sent.Failed, errorList(err)
	names := req.Subscribers
	if len(names) == 0 {
		names = []string{"all"}
	}
	aerr := r.reg.RecordAccess(context.WithoutCancel(ctx), ch, "report.send", "reports:"+day.Format(time.DateOnly), map[string]any{
		"subscribers": names, "resend": req.Resend, "mails": res.Mails, "skipped": res.Skipped, "no_data": res.NoData, "failed": res.Failed,
	})
	return res, aerr
}

// errorList is err as messages, one per joined error.
func errorList(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, errorList(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// deliveryStatuses are the states of the delivery log.
var deliveryStatuses = []deliver.Status{deliver.StatusPending, deliver.StatusSending, deliver.StatusSent, deliver.StatusFailed, deliver.StatusUnknown}

// Deliveries lists the delivery log.
func (r *Service) Deliveries(ctx context.Context, f api.DeliveryFilter) ([]api.Delivery, error) {
	df := deliver.Filter{Subscriber: f.Subscriber, Format: f.Format, From: f.From, To: f.To, Limit: f.Limit}
	for _, st := range f.Status {
		s := deliver.Status(strings.ToLower(strings.TrimSpace(st)))
		if !slices.Contains(deliveryStatuses, s) {
			return nil, fmt.Errorf("status %q is not one of pending, sending, sent, failed, unknown: %w", st, registry.ErrInvalid)
		}
		df.Status = append(df.Status, s)
	}
	d, err := r.mailer(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := d.List(ctx, df)
	if err != nil {
		return nil, err
	}
	out := make([]api.Delivery, len(recs))
	for i, rec := range recs {
		out[i] = delivery(rec)
	}
	return out, nil
}

func delivery(rec deliver.Record) api.Delivery {
	return api.Delivery{
		Key: rec.Key.String(), Subscriber: rec.Subscriber, Day: rec.Day, Format: rec.Format, Status: string(rec.Status),
		Attempts: rec.Attempts, MessageID: rec.MessageID, Recipients: rec.Recipients, Bytes: rec.Bytes,
		LastError: rec.LastError, Response: rec.Response, Created: rec.Created, Updated: rec.Updated, Sent: rec.Sent,
	}
}

// logged returns the row of a delivery key, ErrNotFound if the log has
// none.
func (r *Service) logged(ctx context.Context, key string) (Mailer, deliver.Record, error) {
	sub, day, format, err := api.ParseDeliveryKey(key)
	if err != nil {
		return nil, deliver.Record{}, err
	}
	d, err := r.mailer(ctx)
	if err != nil {
		return nil, deliver.Record{}, err
	}
	rec, found, err := d.Get(ctx, deliver.Key{Subscriber: sub, Day: day, Format: format})
	if err != nil {
		return nil, deliver.Record{}, fmt.Errorf("delivery %s: %v: %w", key, err, registry.ErrInvalid)
	}
	if !found {
		return nil, deliver.Record{}, fmt.Errorf("delivery %s: not in the delivery log: %w", key, registry.ErrNotFound)
	}
	return d, rec, nil
}

// MarkSent records a delivery as sent, for an operator who found it in
// the relay's log.
func (r *Service) MarkSent(ctx context.Context, key, note string, ch registry.Change) (api.Delivery, error) {
	d, rec, err := r.logged(ctx, key)
	if err != nil {
		return api.Delivery{}, err
	}
	if err := r.reg.RecordAccess(ctx, ch, "report.mark-sent", "delivery:"+rec.Key.String(),
		map[string]any{"was": string(rec.Status), "note": note}); err != nil {
		return api.Delivery{}, err
	}
	rec, err = d.MarkSent(ctx, rec.Key, note)
	if err != nil {
		return api.Delivery{}, err
	}
	return delivery(rec), nil
}

// Resend sends one delivery of the log again, with its Message-ID, from
// the report as the store gives it now.
func (r *Service) Resend(ctx context.Context, key string, ch registry.Change) (api.SendResult, error) {
	_, rec, err := r.logged(ctx, key)
	if err != nil {
		return api.SendResult{}, err
	}
	res := api.SendResult{Day: rec.Day, Subscribers: 1}
	sub, err := r.reg.GetSubscriber(ctx, rec.Subscriber)
	if err != nil {
		return res, err
	}
	rep, err := r.One(ctx, reportSubscriber(sub), rec.Day)
	if err != nil {
		return res, err
	}
	format := rec.Format
	if strings.HasPrefix(format, "xarf-") {
		format = "xarf"
	}
	sent, err := r.sendFormat(ctx, sub, rep, r.sinkholeDay(sub, rec.Day), format, true, rec.Format)
	res.Mails, res.Skipped, res.NoData, res.Failed, res.Errors = sent.Mails, sent.Skipped, sent.NoData, sent.Failed, errorList(err)
	if res.Mails+res.Skipped+res.NoData+res.Failed == 0 {
		res.NoData = 1 // the host is no longer in the report
	}
	aerr := r.reg.RecordAccess(context.WithoutCancel(ctx), ch, "report.resend", "delivery:"+rec.Key.String(),
		map[string]any{"was": string(rec.Status), "mails": res.Mails, "failed": res.Failed})
	return res, aerr
}

// maxTrendDays bounds a trend's period.
const maxTrendDays = 3660

// Trend measures the remediation of a subscriber's scope or of one
// network, over [q.From, q.To) in whole UTC days (default: the last 30
// days and today).
func (r *Service) Trend(ctx context.Context, q api.TrendQuery) (api.Trend, error) {
	t := api.Trend{Subscriber: q.Subscriber, ASN: q.ASN}
	var sc scope.Scope
	switch {
	case q.Subscriber != "" && q.ASN != 0:
		return t, fmt.Errorf("trend: give a subscriber or an ASN, not both: %w", registry.ErrInvalid)
	case q.Subscriber != "":
		s, err := r.reg.GetSubscriber(ctx, q.Subscriber)
		if err != nil {
			return t, err
		}
		sc = s.Scope
	case q.ASN != 0:
		sc = scope.Scope{ASNs: []uint32{q.ASN}}
	default:
		return t, fmt.Errorf("trend: give a subscriber or an ASN, the scope to measure: %w", registry.ErrInvalid)
	}
	today := r.now().UTC().Truncate(24 * time.Hour)
	from, to := q.From.UTC().Truncate(24*time.Hour), q.To.UTC()
	if q.From.IsZero() {
		from = today.AddDate(0, 0, -30)
	}
	if q.To.IsZero() {
		to = today.AddDate(0, 0, 1)
	}
	if !from.Before(to) {
		return t, fmt.Errorf("trend: from %s is not before to %s: %w", from.Format(time.DateOnly), to.Format(time.DateOnly), registry.ErrInvalid)
	}
	if to.Sub(from) > maxTrendDays*24*time.Hour {
		return t, fmt.Errorf("trend: %s to %s is longer than %d days: %w", from.Format(time.DateOnly), to.Format(time.DateOnly), maxTrendDays, registry.ErrInvalid)
	}
	rem, err := report.Trend(ctx, r.store, sc, from, to)
	if err != nil {
		return t, err
	}
	t.Scope, t.From, t.To = sc.String(), rem.From, rem.To
	t.Total, t.ByASN = rem.Scope, rem.ByASN
	if t.ByASN == nil {
		t.ByASN = []api.TrendSeries{}
	}
	return t, nil
}

// relayDown is a delivery that is still pending after its attempts: the
// relay (or the way to it) fails, not the message.
type relayDown struct{ err error }

func (e relayDown) Error() string { return e.err.Error() }
func (e relayDown) Unwrap() error { return e.err }
