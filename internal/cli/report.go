package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/progress"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/remediate"
	"github.com/takedown-project/takedown/internal/report"
	"github.com/takedown-project/takedown/internal/scope"
)

func (e *env) reportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "report",
		Aliases: []string{"reports"},
		Short:   "Make, mail and follow the subscribers' daily reports, and measure remediation",
		Long: `The subscribers' reports: each subscriber's infected hosts of a UTC day, in
its formats (csv, json, xarf, stix, and Shadowserver's sinkhole event reports
event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http).
"generate" writes them to files, "send"
mails them through the relay of the mail section (serve does that every day
at each subscriber's send time), "deliveries" shows the delivery log, and
"trend" how fast a network's infected hosts go away.

With a running serve the commands go through its API; without one they
open the database (and the relay) themselves.`,
	}
	cmd.AddCommand(e.reportGenerateCommand(), e.reportSendCommand(), e.reportDeliveriesCommand(),
		e.reportMarkSentCommand(), e.reportResendCommand(), e.reportTrendCommand())
	return cmd
}

// parseDay reads a UTC day for the flag name: YYYY-MM-DD, today or
// yesterday.
func (e *env) parseDay(flag, s string) (time.Time, error) {
	today := e.now().UTC().Truncate(24 * time.Hour)
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return time.Time{}, usage(fmt.Errorf("--%s: missing; give the UTC day, YYYY-MM-DD", flag))
	case "today":
		return today, nil
	case "yesterday":
		return today.AddDate(0, 0, -1), nil
	}
	d, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, usage(fmt.Errorf("--%s %q: not a day, YYYY-MM-DD (or today, yesterday)", flag, s))
	}
	return d, nil
}

// flagged names the flag in errors about its value: "--subscriber: …".
func flagged(flag string, err error) error {
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrInvalid) {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	return err
}

// GeneratedFile is one file `report generate` wrote.
type GeneratedFile struct {
	api.ReportFile
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// Generated is what `report generate --json` prints.
type Generated struct {
	Date        string          `json:"date"`
	Dir         string          `json:"dir"`
	Subscribers int             `json:"subscribers"`
	Rows        int             `json:"rows"`
	Files       []GeneratedFile `json:"files"`
}

func (e *env) reportGenerateCommand() *cobra.Command {
	var date, format, out, reason string
	var subs []string
	cmd := &cobra.Command{
		Use:   "generate --date D [--subscriber S]... [--format F] [--out DIR]",
		Short: "Write subscribers' reports of a day to files",
		Long: `Write each chosen subscriber's report of the UTC day --date, in each of its
formats (or only --format), to DIR as SUBSCRIBER-YYYY-MM-DD.EXT: .csv, .jsonl
(json), .json (stix) or .mbox (xarf: one X-ARF mail per infected host); a
sinkhole event report (one row per callback, Shadowserver's layout) as
Shadowserver names its files, YYYY-MM-DD-event4_sinkhole-SUBSCRIBER.csv.
Without --subscriber, every subscriber's. The files hold personal data: they
are written whole or not at all, readable by their owner only (mode 0600),
and every report made is recorded in the audit log. --date today gives the
day so far.`,
		Example: `  takedown report generate --date yesterday --out /srv/reports
  takedown report generate --date 2026-11-26 --subscriber isp-a --subscriber cert-de --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			day, err := e.parseDay("date", date)
			if err != nil {
				return err
			}
			if format != "" {
				format = strings.ToLower(format)
				if !slices.Contains(report.SubscriberFormats(), format) {
					return usage(fmt.Errorf("--format %q: not one of %s", format, strings.Join(report.SubscriberFormats(), ", ")))
				}
			}
			if out == "" {
				return usage(errors.New("--out: empty; give the directory the files go to"))
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				chosen, err := e.chosenSubscribers(ctx, b, subs)
				if err != nil {
					return err
				}
				type job struct {
					sub    registry.Subscriber
					format string
				}
				var jobs []job
				for _, s := range chosen {
					formats := s.Formats
					if format != "" {
						formats = []string{format}
					}
					for _, f := range formats {
						jobs = append(jobs, job{s, f})
					}
				}
				res := Generated{Date: day.Format(time.DateOnly), Dir: out, Subscribers: len(chosen), Files: []GeneratedFile{}}
				bar := progress.New(e.stderr, "reports", "files", int64(len(jobs)))
				rows := map[string]int{}
				ch := e.change(reason)
				for _, j := range jobs {
					f, err := writeReport(ctx, b, api.ReportQuery{Day: day, Subscriber: j.sub.Name, Format: j.format}, ch, out)
					if err != nil {
						bar.Done()
						return fmt.Errorf("report of %s in %s: %w", j.sub.Name, j.format, err)
					}
					res.Files = append(res.Files, f)
					rows[j.sub.Name] = f.Rows
					bar.Add(1)
				}
				bar.Done()
				for _, n := range rows {
					res.Rows += n
				}
				if e.jsonOut {
					return writeJSON(e.stdout, res)
				}
				t := newTable(e.stdout, "SUBSCRIBER", "ROWS", "FILES")
				for _, s := range chosen {
					var names []string
					for _, f := range res.Files {
						if f.Subscriber == s.Name {
							names = append(names, f.Name)
						}
					}
					t.row(s.Name, thousands(int64(rows[s.Name])), strings.Join(names, " "))
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "wrote %s files of %s subscribers, %s rows, to %s\n", thousands(int64(len(res.Files))),
					thousands(int64(len(chosen))), thousands(int64(res.Rows)), out)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&date, "date", "", "the UTC day, YYYY-MM-DD, today or yesterday (required)")
	f.StringSliceVar(&subs, "subscriber", nil, "only these subscribers (several: comma-separated or repeated; default all)")
	f.StringVar(&format, "format", "", "only this format, of csv, json, xarf, stix, event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http (default each subscriber's formats)")
	f.StringVar(&out, "out", ".", "directory to write the files to; made (mode 0700) if missing")
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(cmd)
	return cmd
}

// chosenSubscribers returns the subscribers named, without repeats, or
// all when none is.
func (e *env) chosenSubscribers(ctx context.Context, b Backend, names []string) ([]registry.Subscriber, error) {
	subs, err := remediate.Chosen(ctx, b, names)
	if err != nil && len(names) > 0 {
		return nil, flagged("subscriber", err)
	}
	return subs, err
}

// writeReport writes one report to dir under the name the backend gives
// it, through a temporary file that is renamed once the whole report is
// in it.
func writeReport(ctx context.Context, b Backend, q api.ReportQuery, ch registry.Change, dir string) (GeneratedFile, error) {
	var tmp *os.File
	cw := &countingWriter{}
	f, err := b.Report(ctx, q, ch, func(f api.ReportFile) (io.Writer, error) {
		name := filepath.Base(f.Name)
		if name != f.Name || name == "." || name == ".." || strings.HasPrefix(name, ".") {
			return nil, fmt.Errorf("report file name %q: not a plain file name", f.Name)
		}
		var err error
		if tmp, err = os.CreateTemp(dir, "."+name+".*"); err != nil {
			return nil, err
		}
		if err := tmp.Chmod(0o600); err != nil {
			return nil, err
		}
		cw.w = tmp
		return cw, nil
	})
	if tmp != nil && err == nil {
		err = tmp.Sync()
	}
	if tmp != nil {
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
	}
	gf := GeneratedFile{ReportFile: f, Path: filepath.Join(dir, f.Name), Bytes: cw.n}
	if err == nil && tmp == nil {
		err = errors.New("no report was written")
	}
	if err == nil {
		err = os.Rename(tmp.Name(), gf.Path)
	}
	if err != nil {
		if tmp != nil {
			os.Remove(tmp.Name())
		}
		return gf, err
	}
	return gf, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (e *env) reportSendCommand() *cobra.Command {
	var date, reason string
	var subs []string
	var resend bool
	cmd := &cobra.Command{
		Use:   "send --date D [--subscriber S]... [--resend]",
		Short: "Mail subscribers' reports of a past day through the relay",
		Long: `Mail the reports of the UTC day --date, which must be over, to each chosen
subscriber's contacts in each of its formats (default: every subscriber), as
serve does every day at the subscribers' send times. The delivery log keeps
every mail: what went out already is skipped, unless --resend; a day without
hosts in a subscriber's scope sends it nothing. Without a running serve the
mails go through the relay of the config's mail section from here.`,
		Example: `  takedown report send --date yesterday
  takedown report send --date 2026-11-26 --subscriber isp-a --resend --reason "lost by their ticket system"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			day, err := e.parseDay("date", date)
			if err != nil {
				return err
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				res, err := b.SendReports(ctx, day, api.SendRequest{Subscribers: subs, Resend: resend}, e.change(reason))
				if errors.Is(err, registry.ErrNotFound) {
					return flagged("subscriber", err)
				}
				if errors.Is(err, registry.ErrInvalid) {
					return flagged("date", err)
				}
				if err != nil {
					return err
				}
				if e.jsonOut {
					if err := writeJSON(e.stdout, res); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(e.stdout, "%s, %s subscribers: %s mails sent, %s skipped (in the delivery log already), %s without data, %s failed\n",
						day.Format(time.DateOnly), thousands(int64(res.Subscribers)), thousands(int64(res.Mails)),
						thousands(int64(res.Skipped)), thousands(int64(res.NoData)), thousands(int64(res.Failed)))
				}
				for _, m := range res.Errors {
					fmt.Fprintf(e.stderr, "takedown: %s\n", m)
				}
				if res.Failed > 0 || len(res.Errors) > 0 {
					return fmt.Errorf("%d mails not delivered; see takedown report deliveries --date %s --status pending,failed,unknown",
						max(res.Failed, len(res.Errors)), day.Format(time.DateOnly))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&date, "date", "", "the UTC day, YYYY-MM-DD or yesterday (required)")
	f.StringSliceVar(&subs, "subscriber", nil, "only these subscribers (several: comma-separated or repeated; default all)")
	f.BoolVar(&resend, "resend", false, "send again what the delivery log holds as sent, failed or unknown")
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(cmd)
	return cmd
}

var deliveryStatuses = []string{"pending", "sending", "sent", "failed", "unknown"}

func (e *env) reportDeliveriesCommand() *cobra.Command {
	var date, sub, format string
	var statuses []string
	var limit int
	cmd := &cobra.Command{
		Use:   "deliveries [--date D] [--subscriber S] [--status S]...",
		Short: "Show the delivery log of the mailed reports",
		Long: `Show the delivery log: one row per mail (subscriber, day, format; an X-ARF
report is one mail per host), newest day first, with its state:

  pending   to be sent, or to be tried again
  sending   the SMTP transaction is under way
  sent      the relay accepted it (the RESPONSE column is its answer)
  failed    the relay refused it for good
  unknown   interrupted after the message was sent, before the relay's
            answer: check the relay's log, then "report mark-sent KEY"
            or "report resend KEY"`,
		Example: `  takedown report deliveries --date yesterday
  takedown report deliveries --status failed,unknown`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := api.DeliveryFilter{Subscriber: sub, Format: format, Limit: limit}
			if date != "" {
				d, err := e.parseDay("date", date)
				if err != nil {
					return err
				}
				f.From, f.To = d, d
			}
			for _, s := range statuses {
				s = strings.ToLower(strings.TrimSpace(s))
				if !slices.Contains(deliveryStatuses, s) {
					return usage(fmt.Errorf("--status %q: not one of %s", s, strings.Join(deliveryStatuses, ", ")))
				}
				f.Status = append(f.Status, s)
			}
			if limit < 0 {
				return usage(fmt.Errorf("--limit %d: want 0 (all) or more", limit))
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				ds, err := b.Deliveries(ctx, f)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(ds))
				}
				return printDeliveries(e.stdout, ds, limit)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&date, "date", "", "only this UTC day, YYYY-MM-DD, today or yesterday")
	fl.StringVar(&sub, "subscriber", "", "only this subscriber")
	fl.StringVar(&format, "format", "", "only this format (X-ARF mails are xarf-HOSTHASH)")
	fl.StringSliceVar(&statuses, "status", nil, "only these states, of pending, sending, sent, failed, unknown")
	fl.IntVar(&limit, "limit", 1000, "at most this many rows, newest first; 0: all")
	e.jsonFlag(cmd)
	return cmd
}

func printDeliveries(w io.Writer, ds []api.Delivery, limit int) error {
	if len(ds) == 0 {
		fmt.Fprintln(w, "no deliveries")
		return nil
	}
	t := newTable(w, "KEY", "STATUS", "ATTEMPTS", "TO", "BYTES", "UPDATED", "RESPONSE OR ERROR")
	unknown := 0
	for _, d := range ds {
		detail := d.Response
		if d.LastError != "" {
			detail = d.LastError
		}
		if d.Status == "unknown" {
			unknown++
		}
		t.row(d.Key, d.Status, thousands(int64(d.Attempts)), contactSummary(d.Recipients), thousands(int64(d.Bytes)), stamp(d.Updated), orDash(clipText(detail, 100)))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if limit > 0 && len(ds) == limit {
		fmt.Fprintf(w, "the newest %d rows; --limit 0 shows all\n", limit)
	}
	if unknown > 0 {
		fmt.Fprintf(w, "%d deliveries are unknown: the relay may or may not have taken them. Check its log, then\n"+
			"  takedown report mark-sent KEY    if it did\n  takedown report resend KEY       if it did not\n", unknown)
	}
	return nil
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (e *env) reportMarkSentCommand() *cobra.Command {
	var note, reason string
	cmd := &cobra.Command{
		Use:   "mark-sent KEY",
		Short: "Record a delivery as sent, e.g. an unknown one the relay's log shows it took",
		Long: `Record the delivery KEY (SUBSCRIBER/YYYY-MM-DD/FORMAT, as "report deliveries"
shows it) as sent: for a delivery left unknown (interrupted between sending
the message and the relay's answer) that the relay's log shows it accepted.
Nothing is mailed.`,
		Example: `  takedown report mark-sent isp-a/2026-11-26/csv --note "exim log: 1vXYZ-000123-AB Completed"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				d, err := b.MarkSent(ctx, args[0], note, e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, d)
				}
				fmt.Fprintf(e.stdout, "delivery %s is recorded as sent\n", d.Key)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "what shows it was sent, e.g. the relay's queue id (default: \"marked sent by an operator\")")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(cmd)
	return cmd
}

func (e *env) reportResendCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "resend KEY",
		Short: "Send one delivery again, whatever its state",
		Long: `Send the delivery KEY (SUBSCRIBER/YYYY-MM-DD/FORMAT, as "report deliveries"
shows it) again, with the same Message-ID, from the report as the store has
it now: for a failed delivery once its cause is fixed, or an unknown one the
relay did not take.`,
		Example: `  takedown report resend isp-a/2026-11-26/csv`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				res, err := b.Resend(ctx, args[0], e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					if err := writeJSON(e.stdout, res); err != nil {
						return err
					}
				}
				for _, m := range res.Errors {
					fmt.Fprintf(e.stderr, "takedown: %s\n", m)
				}
				switch {
				case res.Failed > 0 || len(res.Errors) > 0:
					return fmt.Errorf("delivery %s: not delivered", args[0])
				case res.Mails == 0:
					if !e.jsonOut {
						fmt.Fprintf(e.stdout, "delivery %s: nothing to send, the report has no such host or no data now\n", args[0])
					}
				case !e.jsonOut:
					fmt.Fprintf(e.stdout, "delivery %s: sent again\n", args[0])
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(cmd)
	return cmd
}

func (e *env) reportTrendCommand() *cobra.Command {
	var sub, asn, from, to string
	cmd := &cobra.Command{
		Use:   "trend (--subscriber S | --asn N) [--from D] [--to D]",
		Short: "Show how fast a subscriber's or a network's infected hosts go away",
		Long: `Show the unique infected hosts (addresses) per UTC day of a subscriber's scope
or of one network, and what they say about remediation: the share of the
first day's hosts still infected after 7 and after 30 days, the days until
they halved, and the half-life fitted over all days (an estimate before
they have halved). For a subscriber, each of its networks too.`,
		Example: `  takedown report trend --subscriber isp-a
  takedown report trend --asn AS64512 --from 2026-10-01 --to 2026-11-26`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := api.TrendQuery{Subscriber: sub}
			switch {
			case sub == "" && asn == "":
				return usage(errors.New("give --subscriber S or --asn N: the scope to measure"))
			case sub != "" && asn != "":
				return usage(errors.New("--subscriber and --asn: give one, not both"))
			case asn != "":
				n, err := scope.ParseASN(asn)
				if err != nil {
					return usage(fmt.Errorf("--asn: %w", err))
				}
				q.ASN = n
			}
			last := e.now().UTC().Truncate(24 * time.Hour)
			if to != "" {
				d, err := e.parseDay("to", to)
				if err != nil {
					return err
				}
				last = d
			}
			q.From = last.AddDate(0, 0, -30)
			if from != "" {
				d, err := e.parseDay("from", from)
				if err != nil {
					return err
				}
				q.From = d
			}
			if q.From.After(last) {
				return usage(fmt.Errorf("--from %s is after --to %s", q.From.Format(time.DateOnly), last.Format(time.DateOnly)))
			}
			q.To = last.AddDate(0, 0, 1)
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				t, err := b.Trend(ctx, q)
				if errors.Is(err, registry.ErrNotFound) {
					return fmt.Errorf("--subscriber: %w", err)
				}
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, t)
				}
				return printTrend(e.stdout, t)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&sub, "subscriber", "", "the subscriber whose scope to measure")
	f.StringVar(&asn, "asn", "", "the network to measure, e.g. AS64512")
	f.StringVar(&from, "from", "", "first UTC day, YYYY-MM-DD (default 30 days before --to)")
	f.StringVar(&to, "to", "", "last UTC day, included, YYYY-MM-DD (default today)")
	e.jsonFlag(cmd)
	return cmd
}

func printTrend(w io.Writer, t api.Trend) error {
	what := t.Subscriber
	if what == "" {
		what = fmt.Sprintf("AS%d", t.ASN)
	}
	days := len(t.Total.Hosts)
	fmt.Fprintf(w, "remediation of %s (%s), %s to %s\n\n", what, t.Scope, t.From.Format(time.DateOnly), t.From.AddDate(0, 0, days-1).Format(time.DateOnly))
	tb := newTable(w, "DAY", "HOSTS", "OF DAY 1")
	first := int64(0)
	if days > 0 {
		first = t.Total.Hosts[0]
	}
	for i, h := range t.Total.Hosts {
		share := "-"
		if first > 0 {
			share = fmt.Sprintf("%.0f %%", 100*float64(h)/float64(first))
		}
		tb.row(t.From.AddDate(0, 0, i).Format(time.DateOnly), thousands(h), share)
	}
	if err := tb.flush(); err != nil {
		return err
	}
	s := t.Total
	fmt.Fprintf(w, "\nstill infected after 7 days: %s; after 30 days: %s; halved after: %s; half-life: %s\n",
		pct(s.Remaining7), pct(s.Remaining30), daysOrDash(float64(s.HalvedAfter), "%.0f"), daysOrDash(s.HalfLife, "%.1f"))
	if len(t.ByASN) == 0 || (len(t.ByASN) == 1 && t.ASN != 0) {
		return nil
	}
	fmt.Fprintln(w)
	tb = newTable(w, "NETWORK", "DAY 1", "LAST DAY", "AFTER 7 D", "AFTER 30 D", "HALVED AFTER", "HALF-LIFE")
	for _, n := range t.ByASN {
		name := fmt.Sprintf("AS%d", n.ASN)
		if n.ASN == 0 {
			name = "unknown"
		}
		if n.ASName != "" {
			name += " " + n.ASName
		}
		var d1, dl int64
		if len(n.Hosts) > 0 {
			d1, dl = n.Hosts[0], n.Hosts[len(n.Hosts)-1]
		}
		tb.row(name, thousands(d1), thousands(dl), pct(n.Remaining7), pct(n.Remaining30),
			daysOrDash(float64(n.HalvedAfter), "%.0f"), daysOrDash(n.HalfLife, "%.1f"))
	}
	return tb.flush()
}

// pct formats a share, "-" when unknown (negative).
func pct(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f %%", 100*v)
}

// daysOrDash formats a number of days, "-" when unknown (negative).
func daysOrDash(v float64, format string) string {
	switch {
	case v < 0:
		return "-"
	case v == 1:
		return "1 day"
	}
	return fmt.Sprintf(format+" days", v)
}
