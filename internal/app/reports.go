package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	netmail "net/mail"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/deliver"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/pull"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/remediate"
	"github.com/takedown-project/takedown/internal/report"
)

// openMail returns the Deliverer of the mail section, nil when no relay is
// configured.
func openMail(ctx context.Context, cfg config.Config, local *Local, log *slog.Logger, reg prometheus.Registerer) (*deliver.Deliverer, error) {
	m := cfg.Mail
	if m.Relay == "" {
		return nil, nil
	}
	read := func(key, path string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("mail.%s: %w", key, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	password, err := read("password_file", m.PasswordFile)
	if err != nil {
		return nil, err
	}
	passphrase, err := read("pgp_passphrase_file", m.PGPPassphraseFile)
	if err != nil {
		return nil, err
	}
	d, err := deliver.New(ctx, deliver.Config{
		DB: local.DB, Relay: m.Relay, TLS: deliver.TLSMode(m.TLS), CAFile: m.CAFile,
		Username: m.Username, Password: password, From: m.From, ReplyTo: m.ReplyTo,
		PGPKeyFile: m.PGPKeyFile, PGPPassphrase: passphrase, SMIMECertFile: m.SMIMECertFile, SMIMEKeyFile: m.SMIMEKeyFile,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	return d, nil
}

// pullConfig wires the subscribers' pull API to the registry (keys, audit
// log), the store and the reports.
func pullConfig(cfg config.Config, reg *registry.Registry, st eventstore.Reader, reps *remediate.Service, log *slog.Logger) pull.Config {
	return pull.Config{
		Authenticate: func(ctx context.Context, key string) (pull.Subscriber, error) {
			s, err := reg.SubscriberByKey(ctx, key)
			if err != nil {
				return pull.Subscriber{}, err
			}
			return pull.Subscriber{Name: s.Name, Org: s.Org, Scope: s.Scope, TLP: s.TLP}, nil
		},
		Audit: func(ctx context.Context, sub pull.Subscriber, action, object string, detail any) error {
			return reg.RecordAccess(ctx, registry.Change{Actor: "subscriber:" + sub.Name}, action, object, detail)
		},
		Report: func(ctx context.Context, sub pull.Subscriber, day time.Time, format string, w io.Writer) (int, error) {
			rs := report.Subscriber{Name: sub.Name, Org: sub.Org, Scope: sub.Scope, TLP: sub.TLP}
			if slices.Contains(report.SinkholeReports(), format) {
				// One of Shadowserver's sinkhole event reports: the
				// day's events of the others are dropped.
				want := report.SinkholeFileName(format, sub.Name, day)
				rows, err := report.WriteSinkholeEvents(ctx, st, rs, day, func(name string) (io.Writer, error) {
					if name == want {
						return w, nil
					}
					return io.Discard, nil
				})
				if err == nil && rows[want] == 0 {
					_, err = fmt.Fprintln(w, strings.Join(report.SinkholeColumns(format), ","))
				}
				return rows[want], err
			}
			rep, err := reps.One(ctx, rs, day)
			if err != nil {
				return 0, err
			}
			wr, err := report.NewWriter(format, reps.Options())
			if err != nil {
				return 0, err
			}
			return rep.Len(), wr.Write(w, rep)
		},
		FileName: func(sub pull.Subscriber, day time.Time, format string) string {
			if slices.Contains(report.SinkholeReports(), format) {
				return report.SinkholeFileName(format, sub.Name, day)
			}
			return ""
		},
		Events: func(ctx context.Context, from, to time.Time, fn func(*event.Event) error) error {
			return st.Scan(ctx, eventstore.ScanQuery{From: from, To: to}, fn)
		},
		Trend: func(ctx context.Context, sub pull.Subscriber, from, to time.Time) (any, error) {
			return report.Trend(ctx, st, sub.Scope, from, to)
		},
		Rate:      rate.Limit(float64(cfg.Reports.FeedPerMinute) / 60),
		Burst:     cfg.Reports.FeedBurst,
		Retention: time.Duration(cfg.Reports.Days) * 24 * time.Hour,
		Logger:    log,
	}
}

// newReports makes the reports service of the database opened here;
// mail nil: no e-mail.
func newReports(cfg config.Config, local *Local, mail *deliver.Deliverer, log *slog.Logger) *remediate.Service {
	c := remediate.Config{Subscribers: local.Registry, Store: local.Store, Operator: operator(cfg), Logger: log}
	if mail != nil { // a nil *Deliverer is not a nil Mailer
		c.Mail = mail
	}
	return remediate.New(c)
}

// operator names who sends the reports: the config's operator and the
// address of mail.from.
func operator(cfg config.Config) report.Operator {
	email := ""
	if a, err := netmail.ParseAddress(cfg.Mail.From); err == nil { // checked by config
		email = a.Address
	}
	return report.Operator{Name: cfg.Operator, Email: email}
}

// LocalReports returns the reports of the database opened here, for the
// CLI when no serve runs. It opens the relay of cfg's mail section when a
// command first needs it, and builds each day's reports of all
// subscribers once.
func LocalReports(cfg config.Config, local *Local, log *slog.Logger) api.Reports {
	return remediate.New(remediate.Config{
		Subscribers: local.Registry, Store: local.Store, Operator: operator(cfg), Logger: log, CacheDays: true,
		OpenMail: func(ctx context.Context) (remediate.Mailer, error) {
			d, err := openMail(ctx, cfg, local, log, nil)
			if d == nil || err != nil { // a nil *Deliverer is not a nil Mailer
				return nil, err
			}
			return d, nil
		},
	})
}
