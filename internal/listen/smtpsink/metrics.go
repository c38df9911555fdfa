package smtpsink

import (
	"fmt"

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

// metrics of the listener. No label carries a client address or a name.
type metrics struct {
	sessions   prometheus.Counter
	open       prometheus.Gauge
	messages   *prometheus.CounterVec
	rcptOK     prometheus.Counter
	rcptRefuse prometheus.Counter
	refused    *prometheus.CounterVec
	limits     map[string]prometheus.Counter
	malformed  prometheus.Counter
	starttls   *prometheus.CounterVec
	bytes      prometheus.Counter
	events     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
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
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sessions_total",
			Help: "SMTP sessions accepted within the connection limits.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "sessions_open",
			Help: "SMTP sessions open now.",
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_total",
			Help: "Messages received (and discarded), by result (accepted, refused, too_large, incomplete).",
		}, []string{"result"}),
		rcptOK:     rcpts.WithLabelValues("accepted"),
		rcptRefuse: rcpts.WithLabelValues("refused"),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "Connections refused by a connection limit, by limit (total, per_ip).",
		}, []string{"limit"}),
		limits: map[string]prometheus.Counter{},
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
	for _, r := range []string{"total", "per_ip"} {
		m.refused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.sessions, m.open, m.messages, rcpts, m.refused, limits,
		m.malformed, m.starttls, m.bytes, m.events,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering smtpsink metrics: %w", err)
		}
	}
	return m, nil
}
