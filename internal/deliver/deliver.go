// Package deliver sends takedown's reports by e-mail through an SMTP relay
// and keeps a delivery log, so that each subscriber gets each day's report
// once.
//
// # Messages
//
// A Message is recipients, a subject, extra headers and parts; the
// Deliverer adds From, Reply-To, Date, a Message-ID derived from the
// delivery Key, Auto-Submitted and MIME-Version, encodes it (RFC 2045–2047,
// quoted-printable text, base64 everything else) and signs it with
// OpenPGP (PGP/MIME, RFC 3156) or S/MIME (RFC 8551) when configured.
// ReportMessage makes the daily report mail: a short text and the report
// attached gzip-compressed. An X-ARF mail is a Message with its three
// parts and the header X-ARF: YES.
//
// # Delivery log and idempotency
//
// Each delivery has a Key: subscriber, day and format. Its row in the
// table deliver_log goes
//
//	(none) ─▶ pending ─▶ sending ─▶ sent
//	             ▲   │       │
//	             └───┤       ├─▶ failed   (5xx to MAIL, RCPT or DATA)
//	                 │       └─▶ unknown  (end of data sent, no answer; or a crash)
//	                 └── attempts left, or a relay/configuration problem
//
// "sending" is written just before the DATA command, when nothing has been
// delivered yet, and "sent" right after the relay's 250 to the end of
// data. A row found in "sending" when a Deliverer starts belonged to a
// process that stopped in between: the relay may or may not have taken the
// message. Such rows become "unknown", and Deliver skips them as it skips
// "sent" and "failed" rows: an operator decides, with Resend (which sends
// it again with the same Message-ID, so the copy can be recognised) or
// MarkSent. A restart therefore never sends a report twice on its own.
// Every SMTP attempt is also one row of deliver_attempts.
package deliver

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLSMode says how the connection to the relay is protected.
type TLSMode string

const (
	// TLSRequired sends STARTTLS and fails when the relay does not offer
	// it. It is the default.
	TLSRequired TLSMode = "required"
	// TLSOpportunistic sends STARTTLS when the relay offers it (and then
	// verifies its certificate as TLSRequired does), else goes on in
	// plain text.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSNone never sends STARTTLS.
	TLSNone TLSMode = "none"
	// TLSImplicit speaks TLS from the first byte ("smtps", port 465).
	TLSImplicit TLSMode = "smtps"
)

// Config configures a Deliverer. Every zero value but DB, Relay and From
// works.
type Config struct {
	// DB is the open takedown database; the Deliverer keeps its tables
	// deliver_log and deliver_attempts there.
	DB *sql.DB
	// Relay is the SMTP relay as host:port, e.g. "mail.example.org:587".
	// Without a port: 465 for TLS smtps, else 25.
	Relay string
	// TLS is required (STARTTLS, default), opportunistic, none or smtps.
	TLS TLSMode
	// CAFile is a PEM file of the certificate authorities that may sign
	// the relay's certificate. Empty: the system's.
	CAFile string
	// ServerName is the name the relay's certificate must carry. Empty:
	// the host of Relay.
	ServerName string
	// HelloName is the name given in EHLO. Empty: this machine's host name.
	HelloName string
	// Username and Password, when Username is set, log in with AUTH
	// PLAIN or LOGIN (whichever the relay offers, PLAIN first). The
	// password is only ever sent over TLS or to a relay on loopback.
	Username string
	Password string
	// From is the author of every mail, e.g. "Takedown <takedown@example.org>".
	From string
	// ReplyTo, when set, is where answers go, e.g. "abuse-desk@example.org".
	ReplyTo string
	// EnvelopeFrom is the address in MAIL FROM, where bounces go. Empty:
	// the address of From.
	EnvelopeFrom string
	// MessageIDDomain is the right-hand side of Message-IDs. Empty: the
	// domain of From.
	MessageIDDomain string
	// PGPKeyFile is an OpenPGP secret key (armored or binary): mails are
	// then signed as PGP/MIME. PGPPassphrase unlocks a protected key.
	PGPKeyFile    string
	PGPPassphrase string
	// SMIMECertFile (PEM, the signer's certificate first, then its
	// chain) and SMIMEKeyFile (PEM) sign mails as S/MIME instead. Only
	// one of PGPKeyFile and SMIMECertFile may be set.
	SMIMECertFile string
	SMIMEKeyFile  string
	// Attempts bounds the SMTP attempts of one Deliver call. Default 5.
	Attempts int
	// Backoff is the wait after the first failed attempt; it doubles
	// after each, up to MaxBackoff. Defaults 30s and 10m.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds one SMTP session, connecting included. Default 2m.
	Timeout time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
	// Logger receives the component's log lines. Default: discarded.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: none registered.
	Registerer prometheus.Registerer
}

// Status is the state of one delivery.
type Status string

const (
	StatusPending Status = "pending" // to be sent, or to be tried again
	StatusSending Status = "sending" // the SMTP transaction is under way
	StatusSent    Status = "sent"    // the relay accepted the message
	StatusFailed  Status = "failed"  // the relay refused it for good
	StatusUnknown Status = "unknown" // interrupted after DATA: an operator decides
)

// Key names one delivery: one subscriber's report of one day in one format.
type Key struct {
	// Subscriber is the subscriber's handle in the registry.
	Subscriber string
	// Day is the day reported; only its calendar date counts.
	Day time.Time
	// Format is the report format, e.g. "csv" or "xarf".
	Format string
}

// String returns subscriber/YYYY-MM-DD/format.
func (k Key) String() string {
	return k.Subscriber + "/" + k.Day.Format(time.DateOnly) + "/" + k.Format
}

var formatRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

func checkFormat(f string) error {
	if !formatRE.MatchString(f) {
		return fmt.Errorf("format %q: want 1–32 lower case letters, digits, '.', '_' or '-', e.g. \"csv\"", cut(f))
	}
	return nil
}

// normalize checks k and sets its Day to midnight UTC of its date.
func (k Key) normalize() (Key, error) {
	k.Subscriber = strings.TrimSpace(k.Subscriber)
	if k.Subscriber == "" {
		return k, errors.New("delivery key: no subscriber")
	}
	if err := checkText("subscriber", k.Subscriber); err != nil {
		return k, err
	}
	if k.Day.IsZero() {
		return k, fmt.Errorf("delivery key %s: no day", k.Subscriber)
	}
	if err := checkFormat(k.Format); err != nil {
		return k, fmt.Errorf("delivery key %s: %w", k.Subscriber, err)
	}
	y, m, d := k.Day.Date()
	k.Day = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return k, nil
}

// Record is one row of the delivery log.
type Record struct {
	Key
	Status Status
	// Attempts counts the SMTP attempts of all runs.
	Attempts int
	// MessageID is the Message-ID header, with angle brackets.
	MessageID string
	// Recipients are the envelope recipients of the last attempt.
	Recipients []string
	// Bytes is the size of the message as sent.
	Bytes int
	// LastError is the error of the last failed attempt, or why the row
	// is unknown; empty once sent.
	LastError string
	// Response is the relay's reply to the end of data, e.g.
	// "250 OK id=1vXYZ-000123-AB".
	Response string
	Created  time.Time
	Updated  time.Time
	// Sent is when the relay accepted the message; zero until then.
	Sent time.Time
}

// Attempt is one SMTP attempt, a row of deliver_attempts.
type Attempt struct {
	Key
	At       time.Time
	Duration time.Duration
	// Outcome is sent, or the class of the failure: transient,
	// permanent, stuck or ambiguous.
	Outcome  string
	Error    string
	Response string
}

// Result is what one Deliver call did.
type Result struct {
	Record
	// Sent is true when this call delivered the message.
	Sent bool
	// Skipped is true when nothing was tried because the log already
	// holds the key as sent, failed or unknown (see Record.Status).
	Skipped bool
	// NoData is true when build returned ErrNoData: nothing was sent or
	// recorded.
	NoData bool
}

// ErrBusy reports a Deliver of a key that another call of the same
// Deliverer is delivering.
var ErrBusy = errors.New("delivery of this key is under way")

// Deliverer sends mails through the relay and keeps the delivery log.
// Its methods may be called concurrently. One Deliverer writes a database
// at a time.
type Deliverer struct {
	cfg     Config
	db      *sql.DB
	now     func() time.Time
	log     *slog.Logger
	tls     *tls.Config
	host    string // of Relay
	from    *mail.Address
	replyTo []*mail.Address
	envFrom string
	idHost  string
	signer  signer
	metrics *metrics

	mu       sync.Mutex
	inflight map[Key]bool
}

// New checks cfg, loads the signing key, migrates the tables, and marks
// the deliveries a stopped process left in "sending" as "unknown".
func New(ctx context.Context, cfg Config) (*Deliverer, error) {
	d := &Deliverer{cfg: cfg, db: cfg.DB, now: cfg.Now, log: cfg.Logger, inflight: map[Key]bool{}}
	if d.db == nil {
		return nil, errors.New("deliver: no database")
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := d.configure(); err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	d.metrics = m
	if err := d.migrate(ctx); err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	n, err := d.recover(ctx)
	if err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	if n > 0 {
		d.log.Warn("deliveries interrupted while sending are now unknown: check the relay's log, then resend or mark them sent",
			"count", n)
	}
	return d, nil
}

// configure checks the Config and fills in its defaults.
func (d *Deliverer) configure() error {
	c := &d.cfg
	switch c.TLS {
	case "":
		c.TLS = TLSRequired
	case TLSRequired, TLSOpportunistic, TLSNone, TLSImplicit:
	default:
		return fmt.Errorf("tls %q: want required, opportunistic, none or smtps", c.TLS)
	}
	if c.Relay == "" {
		return errors.New("no relay: set the SMTP relay as host:port")
	}
	host, port, err := net.SplitHostPort(c.Relay)
	if err != nil {
		host, port = strings.Trim(c.Relay, "[]"), "25"
		if c.TLS == TLSImplicit {
			port = "465"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return fmt.Errorf("relay %q: want host:port, e.g. mail.example.org:587", c.Relay)
	}
	c.Relay = net.JoinHostPort(host, port)
	d.host = host
	if c.Username != "" && c.TLS == TLSNone && !isLoopbackHost(host) {
		return fmt.Errorf("relay %s: a password would travel unencrypted (tls: none); use required or smtps", c.Relay)
	}
	d.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.ServerName != "" {
		d.tls.ServerName = c.ServerName
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("reading the relay's CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("CA file %s: no PEM certificate in it", c.CAFile)
		}
		d.tls.RootCAs = pool
	}
	if c.HelloName == "" {
		c.HelloName, _ = os.Hostname()
		if c.HelloName == "" {
			c.HelloName = "localhost"
		}
	}
	if c.From == "" {
		return errors.New("no From address")
	}
	as, err := parseAddresses(c.From)
	if err != nil || len(as) != 1 {
		return fmt.Errorf("from %q: want one address, e.g. \"Takedown <takedown@example.org>\"", cut(c.From))
	}
	d.from = as[0]
	if c.ReplyTo != "" {
		if d.replyTo, err = parseAddresses(c.ReplyTo); err != nil {
			return fmt.Errorf("reply_to %q: %w", cut(c.ReplyTo), err)
		}
	}
	d.envFrom = d.from.Address
	if c.EnvelopeFrom != "" {
		a, err := parseAddresses(c.EnvelopeFrom)
		if err != nil || len(a) != 1 {
			return fmt.Errorf("envelope_from %q: want one address", cut(c.EnvelopeFrom))
		}
		d.envFrom = a[0].Address
	}
	d.idHost = c.MessageIDDomain
	if d.idHost == "" {
		_, d.idHost, _ = strings.Cut(d.from.Address, "@")
	}
	if !isToken(strings.ReplaceAll(d.idHost, ".", "-")) {
		return fmt.Errorf("message ID domain %q: want a domain name", cut(d.idHost))
	}
	switch {
	case c.PGPKeyFile != "" && c.SMIMECertFile != "":
		return errors.New("both an OpenPGP key and an S/MIME certificate: sign with one")
	case c.PGPKeyFile != "":
		if d.signer, err = loadPGP(c.PGPKeyFile, c.PGPPassphrase, d.now); err != nil {
			return err
		}
	case c.SMIMECertFile != "":
		if d.signer, err = loadSMIME(c.SMIMECertFile, c.SMIMEKeyFile); err != nil {
			return err
		}
	}
	if c.Attempts <= 0 {
		c.Attempts = 5
	}
	if c.Backoff <= 0 {
		c.Backoff = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	return nil
}

// MessageID returns the Message-ID of key's mail: the same for the same
// subscriber, day and format, so a copy sent twice can be recognised.
func (d *Deliverer) MessageID(key Key) (string, error) {
	key, err := key.normalize()
	if err != nil {
		return "", err
	}
	return d.messageID(key), nil
}

func (d *Deliverer) messageID(k Key) string {
	h := sha256.Sum256([]byte(k.Subscriber + "\x00" + k.Day.Format(time.DateOnly) + "\x00" + k.Format))
	return "<takedown." + k.Day.Format("20060102") + "." + k.Format + "." + hex.EncodeToString(h[:10]) + "@" + d.idHost + ">"
}

// Deliver sends the mail of key unless the log holds it as sent, failed
// or unknown (then Result.Skipped). build makes the message when needed;
// it returns ErrNoData when there is nothing to report. Transient
// failures are tried again, up to Config.Attempts, with backoff; a key
// left pending is tried again by a later Deliver. The error is nil when
// the mail was sent, skipped or had no data; otherwise Result still holds
// the key's row (pending, failed or unknown).
func (d *Deliverer) Deliver(ctx context.Context, key Key, build func() (Message, error)) (Result, error) {
	return d.deliver(ctx, key, build, false)
}

// Resend sends the mail of key whatever its log says, with the same
// Message-ID: for an operator after a failure was fixed, or after
// deciding that an unknown delivery did not arrive.
func (d *Deliverer) Resend(ctx context.Context, key Key, build func() (Message, error)) (Result, error) {
	return d.deliver(ctx, key, build, true)
}

func (d *Deliverer) deliver(ctx context.Context, key Key, build func() (Message, error), force bool) (Result, error) {
	key, err := key.normalize()
	if err != nil {
		return Result{}, err
	}
	if !d.claim(key) {
		return Result{}, fmt.Errorf("deliver %s: %w", key, ErrBusy)
	}
	defer d.release(key)

	rec, found, err := d.get(ctx, key)
	if err != nil {
		return Result{}, fmt.Errorf("deliver %s: %w", key, err)
	}
	if found && !force && rec.Status != StatusPending {
		d.metrics.outcome(string(rec.Status) + "_skipped")
		return Result{Record: rec, Skipped: true}, nil
	}
	msg, err := build()
	if errors.Is(err, ErrNoData) {
		d.metrics.outcome("no_data")
		return Result{Record: Record{Key: key}, NoData: true}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("deliver %s: building the message: %w", key, err)
	}
	env := envelope{from: d.from, replyTo: d.replyTo, messageID: d.messageID(key), date: d.now()}
	raw, rcpts, err := compose(msg, env, d.signer)
	if err != nil {
		return Result{}, fmt.Errorf("deliver %s: %w", key, err)
	}
	if rec, err = d.prepare(ctx, key, env.messageID, rcpts, len(raw)); err != nil {
		return Result{}, fmt.Errorf("deliver %s: %w", key, err)
	}
	wait := d.cfg.Backoff
	for attempt := 1; ; attempt++ {
		start := d.now()
		resp, err := d.transact(ctx, d.envFrom, rcpts, raw, func() error {
			return d.markSending(ctx, key)
		})
		// Record the outcome even when ctx is done.
		rctx := context.WithoutCancel(ctx)
		if err == nil {
			if rec, err = d.finish(rctx, key, StatusSent, "sent", "", resp, start); err != nil {
				return Result{Record: rec, Sent: true}, fmt.Errorf("deliver %s: sent (%s) but not recorded: %w", key, resp, err)
			}
			d.metrics.attempt("sent")
			d.metrics.outcome("sent")
			d.log.Info("report delivered", "key", key.String(), "message_id", env.messageID, "attempt", attempt, "response", resp)
			return Result{Record: rec, Sent: true}, nil
		}
		var ae *attemptError
		cls := transient
		if errors.As(err, &ae) {
			cls = ae.class
		}
		d.metrics.attempt(cls.String())
		status := StatusPending
		switch cls {
		case permanent:
			status = StatusFailed
		case ambiguous:
			status = StatusUnknown
		}
		msgErr := err.Error()
		if rec, err = d.finish(rctx, key, status, cls.String(), msgErr, "", start); err != nil {
			return Result{Record: rec}, fmt.Errorf("deliver %s: %s; recording it: %w", key, msgErr, err)
		}
		d.log.Warn("delivery attempt failed", "key", key.String(), "attempt", attempt, "class", cls.String(), "status", string(status), "err", msgErr)
		if cls != transient || attempt >= d.cfg.Attempts {
			d.metrics.outcome(string(status))
			return Result{Record: rec}, fmt.Errorf("deliver %s: %d attempts, last: %s (%s, now %s)", key, attempt, msgErr, cls, status)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			d.metrics.outcome(string(status))
			return Result{Record: rec}, fmt.Errorf("deliver %s: %w (after %d attempts, last: %s)", key, ctx.Err(), attempt, msgErr)
		case <-t.C:
		}
		wait = min(2*wait, d.cfg.MaxBackoff)
	}
}

func (d *Deliverer) claim(k Key) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight[k] {
		return false
	}
	d.inflight[k] = true
	return true
}

func (d *Deliverer) release(k Key) {
	d.mu.Lock()
	delete(d.inflight, k)
	d.mu.Unlock()
}

// MarkSent records an unknown (or pending or failed) delivery as sent,
// for an operator who found it in the relay's log.
func (d *Deliverer) MarkSent(ctx context.Context, key Key, note string) (Record, error) {
	key, err := key.normalize()
	if err != nil {
		return Record{}, err
	}
	if !d.claim(key) {
		return Record{}, fmt.Errorf("mark %s sent: %w", key, ErrBusy)
	}
	defer d.release(key)
	rec, found, err := d.get(ctx, key)
	if err != nil {
		return Record{}, err
	}
	if !found {
		return Record{}, fmt.Errorf("mark %s sent: not in the delivery log", key)
	}
	if rec.Status == StatusSent {
		return rec, nil
	}
	if note == "" {
		note = "marked sent by an operator"
	}
	return d.finish(ctx, key, StatusSent, "", "", note, time.Time{})
}
