package smtpsink

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Limits, as label values of limit_hits_total.
const (
	limitRecipients     = "recipients"
	limitMessageSize    = "message_size"
	limitCommands       = "commands"
	limitErrors         = "errors"
	limitLineLength     = "line_length"
	limitCommandTimeout = "command_timeout"
	limitSessionTimeout = "session_timeout"
)

var limitNames = [...]string{
	limitRecipients, limitMessageSize, limitCommands, limitErrors,
	limitLineLength, limitCommandTimeout, limitSessionTimeout,
}

// Message results, as label values of messages_total.
const (
	resultAccepted = "accepted" // answered 2xx
	resultRefused  = "refused"  // a rule's 4xx/5xx reply
	resultTooLarge = "too_large"
	resultBroken   = "incomplete" // timeout, closed or shutdown in DATA
)

// metrics of the listener beside the connection counts of its
// sink.Lifecycle. No label carries a client address or a name.
type metrics struct {
	messages   *prometheus.CounterVec
	rcptOK     prometheus.Counter
	rcptRefuse prometheus.Counter
	limits     map[string]prometheus.Counter
	malformed  prometheus.Counter
	starttls   *prometheus.CounterVec
	bytes      prometheus.Counter
	events     prometheus.Counter
	collectors []prometheus.Collector
}

func newMetrics() *metrics {
	const ns, sub = "takedown", "smtpsink"
	rcpts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "recipients_total",
		Help: "RCPT commands, by result (accepted, refused: over the recipient limit).",
	}, []string{"result"})
	limits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "limit_hits_total",
		Help: "Limits hit: recipients, message_size, commands, errors, line_length, command_timeout, session_timeout.",
	}, []string{"limit"})
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_total",
			Help: "Messages received (and discarded), by result (accepted, refused, too_large, incomplete).",
		}, []string{"result"}),
		rcptOK:     rcpts.WithLabelValues("accepted"),
		rcptRefuse: rcpts.WithLabelValues("refused"),
		limits:     map[string]prometheus.Counter{},
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "malformed_total",
			Help: "Command lines that were not a known command or failed to parse.",
		}),
		starttls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "starttls_total",
			Help: "STARTTLS handshakes, by result (ok, failed).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "message_bytes_total",
			Help: "Bytes of message data received.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events handed to the recorder.",
		}),
	}
	for _, l := range limitNames {
		m.limits[l] = limits.WithLabelValues(l)
	}
	for _, r := range []string{resultAccepted, resultRefused, resultTooLarge, resultBroken} {
		m.messages.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed"} {
		m.starttls.WithLabelValues(r)
	}
	m.collectors = []prometheus.Collector{
		m.messages, rcpts, limits, m.malformed, m.starttls, m.bytes, m.events,
	}
	return m
}
