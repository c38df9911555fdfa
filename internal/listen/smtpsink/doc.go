// Package smtpsink is takedown's SMTP sinkhole listener. Spam bots whose
// seized mail domains point at the sinkhole connect to it and deliver; the
// listener speaks enough ESMTP for them to finish (EHLO/HELO, STARTTLS,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT), records one event per message and
// one per session that ended without a message, and discards the mail.
// Nothing is ever queued, relayed or delivered.
//
// The protocol is read by the package's own small state machine rather
// than a general SMTP server, so that whatever a bot sends — an unknown
// verb, a line of binary, ten thousand recipients, a message of a gigabyte —
// is recorded as what it is and costs a bounded amount of memory and time.
//
// See README.md for the configuration, metrics, limits and event fields.
package smtpsink

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/takedown-project/takedown/internal/listen/sink"
)

// The listener's consumers, declared once for every listener in package
// sink.
type (
	Recorder   = sink.Recorder
	Classifier = sink.Classifier
	Zones      = sink.Zones
)

// Defaults of Config fields left zero.
const (
	DefaultHostname        = "sinkhole.invalid"
	DefaultHeadBytes       = 512
	DefaultMatchBytes      = 4 << 10
	DefaultMaxRecipients   = 100
	DefaultMaxMessageBytes = 10 << 20
	DefaultMaxCommands     = 20_000
	DefaultMaxErrors       = 20
	DefaultCommandTimeout  = 60 * time.Second
	DefaultSessionTimeout  = 5 * time.Minute
	DefaultMaxConns        = 10_000
	DefaultMaxConnsPerIP   = 64
)

// Fixed bounds.
const (
	// MaxLineBytes bounds a command line, CRLF included. RFC 5321 allows
	// 512; bots are sloppy, so a little more is read before the line is
	// refused as too long.
	MaxLineBytes = 4 << 10
	// maxHeaderBytes is how much of a message's start is kept to read
	// its Subject and Message-ID from.
	maxHeaderBytes = 16 << 10
	// maxFieldBytes bounds the HELO name, sender, Subject and Message-ID
	// in events.
	maxFieldBytes = 512
)

// Config configures a Server. Every field's zero value works.
type Config struct {
	// Listen lists the addresses to serve, e.g. "0.0.0.0:25" or
	// "127.0.0.1:0".
	Listen []string
	// Sensor names this node in events.
	Sensor string
	// Hostname is the name the listener gives in its greeting and EHLO
	// reply. Default DefaultHostname.
	Hostname string

	// TLS, if set, enables STARTTLS with this configuration (the app
	// passes the HTTPS listener's on-the-fly certificate authority). Nil:
	// STARTTLS is neither offered nor accepted.
	TLS *tls.Config

	// Classifier names the family of each message and picks the reply
	// to DATA; nil gives the case's family (else "unknown") and 250.
	Classifier Classifier
	// Zones attributes a recipient domain to a seized zone and case; nil
	// leaves Zone and Case empty.
	Zones Zones
	// Recorder receives an event per message and per session that ended
	// without one (and per refused connection). Nil records nothing.
	Recorder Recorder

	// HeadBytes is how much of a message (or, for a session without a
	// message, of what the client sent) goes into PayloadHead. Default
	// 512; negative keeps none.
	HeadBytes int
	// MatchBytes is how much of the message start (headers included)
	// the classifier sees as classify.Request.Body. Default 4 KiB.
	MatchBytes int

	// MaxRecipients bounds the recipients of one message; the ones past
	// it are answered 452 and counted. Default 100.
	MaxRecipients int
	// MaxMessageBytes bounds a message. A larger one is read to its end
	// and discarded, answered 552 and recorded with Error. Default 10 MiB.
	MaxMessageBytes int64
	// MaxCommands bounds the commands of one session; past it the
	// session is closed with 421. Default 20,000.
	MaxCommands int
	// MaxErrors bounds the unknown or malformed commands of one session;
	// past it the session is closed with 421. Default 20.
	MaxErrors int
	// CommandTimeout bounds the wait for each command line and for each
	// chunk of message data. Default 60 s.
	CommandTimeout time.Duration
	// SessionTimeout is the longest a session lasts, whatever it does.
	// Default 5 min.
	SessionTimeout time.Duration

	// MaxConns bounds the open connections of each listening address;
	// MaxConnsPerIP those from one source address. A refused connection
	// is recorded and closed at once. Defaults 10,000 and 64; negative
	// means no limit.
	MaxConns      int
	MaxConnsPerIP int

	// Logger receives start, stop and error lines (never one per
	// session). Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Now returns the current time for events; nil means time.Now.
	Now func() time.Time
}
