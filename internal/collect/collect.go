package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/spool"
)

// Store is where the events go: the event store (eventstore.Writer).
type Store interface {
	// AppendMarked stores batch and sets the mark of source to mark, both
	// or neither.
	AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error
	// Mark returns the last mark of source, nil when none.
	Mark(ctx context.Context, source string) ([]byte, error)
}

// Zones tells the zone of a name among the zones the central serves
// (servedset.Set).
type Zones interface {
	Zone(host string) (zone, caseName, family string, ok bool)
}

// Classifier names the family of a DNS event (classify.Holder): the
// listeners classified their own events on the sensor, as they answered.
type Classifier interface {
	ClassifyEvent(e *event.Event)
}

// Enricher fills in what is known of an event's source address.
type Enricher interface {
	Enrich(e *event.Event)
}

// Observer sees every event on its way to the store (the live unique-host
// counters).
type Observer interface {
	Observe(e *event.Event)
}

// Quarantine keeps the records that the store can never take.
type Quarantine interface {
	// Add writes entries durably before it returns; an entry whose Source
	// it holds already is not added again.
	Add(entries ...quarantine.Entry) error
}

// MarkSource is the name under which the collector keeps its mark in the
// store.
const MarkSource = "jetstream:" + bus.EventsStream

// MarkSourceOf is the mark's source of the central called name (Config.Name):
// MarkSource when name is empty.
func MarkSourceOf(name string) string {
	if name == "" {
		return MarkSource
	}
	return MarkSource + "/" + name
}

// Defaults of Config fields left zero, and the consumer's fixed settings.
const (
	DefaultDurable         = "takedown-central"
	DefaultBatchSize       = 20_000
	DefaultFlushInterval   = 500 * time.Millisecond
	DefaultMaxMessageBytes = 4 << 20
	DefaultMaxAckPending   = 1024
	// AckWait is how long the stream waits for the acknowledgement of a
	// message it delivered before it delivers it again. The collector
	// says it is still working on the messages it holds while the store
	// refuses them, every AckWait/4.
	AckWait = 60 * time.Second
)

// Config configures a Collector. Every field but JS and Store has a
// working zero value.
type Config struct {
	// JS is the central's JetStream context; required. Its connection
	// also receives the heartbeats.
	JS jetstream.JetStream
	// Durable names the consumer; default "takedown-central", or
	// "takedown-central-<Name>" for a named central. The NATS permissions
	// of the central's user name it.
	Durable string
	// Name is set when several centrals (or collectors) share the events
	// stream and write to one store: each then takes the events and
	// heartbeats of its own Sensors alone, through a consumer filtered on
	// their subjects, and keeps its mark under its own source
	// (MarkSourceOf), so that their appends run in parallel and each
	// stays exactly once. The Sensors of the centrals must not overlap: the
	// stream, a work queue, refuses overlapping consumers. Empty: the only
	// central, which takes every sensor's events.
	Name string
	// Sensors are the configured sensors' ids: the events and heartbeats
	// of any other are refused. None: every event is refused.
	Sensors []string
	// Replicas, MaxBytes and DuplicateWindow configure the events stream
	// that Run makes or updates (EnsureStream): defaults 1, none but the
	// server's, 2 minutes.
	Replicas        int
	MaxBytes        int64
	DuplicateWindow time.Duration
	// Store receives the events; required.
	Store Store
	// Zones, if set, is the served set: an event whose zone it does not
	// serve is refused.
	Zones Zones
	// Classifier, if set, classifies the DNS events, as the pipeline
	// does.
	Classifier Classifier
	// Enricher and Observer, if set, see each event that is to be stored.
	Enricher Enricher
	Observer Observer
	// Quarantine, if set, receives the records that are not valid events
	// and the events that the store refuses; without it they are only
	// counted.
	Quarantine Quarantine
	// BatchSize is the most events in one store append, default 20,000;
	// FlushInterval the longest a received message waits for its append,
	// default 500 ms.
	BatchSize     int
	FlushInterval time.Duration
	// MaxMessageBytes is the largest message taken; a larger one is
	// refused. Default 4 MiB.
	MaxMessageBytes int
	// MaxAckPending bounds the messages delivered and not yet
	// acknowledged, and so the messages held for one append; default
	// 1024.
	MaxAckPending int
	// RetryInterval is the first wait after the store refuses a batch; it
	// doubles up to 5 s. Default 1 s.
	RetryInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger and Registerer; nil discards / does not register.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Collector stores the sensors' events from the stream.
type Collector struct {
	cfg     Config
	log     *slog.Logger
	sensors map[string]*sensorState // the configured ones; the map is fixed after New
	names   []string                // their ids, in order
	m       metrics
	// rejects throttles the lines of refusals, errs those of errors.
	rejects, errs throttle

	stored, duplicates, quarantined, failures, resets atomic.Uint64
	lastSeq                                           atomic.Uint64
	lastAppend                                        atomic.Int64 // ns
	pending                                           atomic.Int64 // -1: not known
	running                                           atomic.Bool

	mu       sync.Mutex // guards the fields below and every sensorState
	rejected map[string]uint64
	lastErr  string

	// Test hooks (export_test.go). afterCommit runs after each append
	// that stored something, before the acknowledgements: when it
	// reports true, Run returns at once, as if the process had died
	// there. beforeFetch runs before each fetch.
	afterCommit func() bool
	beforeFetch func()
	// pendingEvery is how often the consumer's pending counts are read.
	pendingEvery time.Duration
}

// sensorState is what the collector knows of one configured sensor.
type sensorState struct {
	hb         *bus.Heartbeat
	seen       time.Time // when hb arrived
	stored     uint64
	rejected   uint64
	lastStored time.Time
	rate       rateRing
	at         spoolMark // the last stored position
	atSet      bool
}

// New checks cfg and returns a collector; Run starts it.
func New(cfg Config) (*Collector, error) {
	if cfg.JS == nil || cfg.Store == nil {
		return nil, errors.New("collect: a JetStream context and a store are required")
	}
	if cfg.Name != "" {
		if !bus.ValidSensorID(cfg.Name) {
			return nil, fmt.Errorf("collect: central name %q is not a DNS label in lower case", cfg.Name)
		}
		if len(cfg.Sensors) == 0 {
			return nil, fmt.Errorf("collect: central %q names no sensors: a named central takes the events of its own sensors only", cfg.Name)
		}
	}
	if cfg.Durable == "" {
		cfg.Durable = DefaultDurable
		if cfg.Name != "" {
			cfg.Durable += "-" + cfg.Name
		}
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = DefaultMaxAckPending
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Collector{cfg: cfg, log: cfg.Logger, sensors: map[string]*sensorState{}, rejected: map[string]uint64{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "collect")
	for _, s := range cfg.Sensors {
		if !bus.ValidSensorID(s) {
			return nil, fmt.Errorf("collect: %q is not a sensor id (a DNS label in lower case)", s)
		}
		if _, dup := c.sensors[s]; dup {
			return nil, fmt.Errorf("collect: sensor %q is configured twice", s)
		}
		c.sensors[s] = &sensorState{}
	}
	c.names = slices.Sorted(maps.Keys(c.sensors))
	c.pending.Store(-1)
	c.pendingEvery = pendingEvery
	c.rejects = throttle{every: 10 * time.Minute, now: cfg.Now}
	c.errs = throttle{every: time.Minute, now: cfg.Now}
	c.m = newMetrics(c)
	if cfg.Registerer != nil {
		c.m.register(cfg.Registerer)
	}
	return c, nil
}

// Stats are the collector's counters since it was made, and its state.
type Stats struct {
	// Stored counts the events stored; Duplicates the records skipped
	// because the store had them already (a message delivered again, or
	// records a sensor published again).
	Stored, Duplicates uint64
	// Quarantined counts the records set aside in the quarantine.
	Quarantined uint64
	// Rejected counts what was refused, by kind (the Reject constants).
	Rejected map[string]uint64
	// Pending is what the stream holds for the central: messages not yet
	// delivered and delivered but not acknowledged; -1 until known.
	Pending int64
	// StoreFailures counts the appends the store refused (retried).
	StoreFailures uint64
	// ConsumerResets counts the times the consumer was made anew after a
	// start, a lost delivery or an error.
	ConsumerResets uint64
	// LastSequence is the stream sequence of the last message stored.
	LastSequence uint64
	// LastAppend is the duration of the last append.
	LastAppend time.Duration
	// LastError is the last error of the stream or the store; empty
	// after a success.
	LastError string
}

// Stats returns the collector's counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	rej, lastErr := maps.Clone(c.rejected), c.lastErr
	c.mu.Unlock()
	return Stats{
		Stored: c.stored.Load(), Duplicates: c.duplicates.Load(), Quarantined: c.quarantined.Load(),
		Rejected: rej, Pending: c.pending.Load(), StoreFailures: c.failures.Load(),
		ConsumerResets: c.resets.Load(), LastSequence: c.lastSeq.Load(),
		LastAppend: time.Duration(c.lastAppend.Load()), LastError: lastErr,
	}
}

// SensorStatus is what the central knows of one configured sensor.
type SensorStatus struct {
	Sensor string
	// LastSeen is when its last valid heartbeat arrived (the central's
	// clock); zero when none has since the start. Heartbeat is that
	// heartbeat: its backlog, its served set's serial.
	LastSeen  time.Time
	Heartbeat *bus.Heartbeat
	// Stored counts its events stored since the start, EventsPerSecond
	// over the last minute; LastStored is when the last was.
	Stored          uint64
	EventsPerSecond float64
	LastStored      time.Time
	// Rejected counts what of its messages and records was refused.
	Rejected uint64
	// Spool and Position say how far the store holds its records: its
	// spool and the position after the last stored record (as read from
	// the store's mark at the start, then as stored). Zero: nothing yet.
	Spool    spool.ID
	Position spool.Pos
}

// Sensors returns the status of every configured sensor, in id order.
func (c *Collector) Sensors() []SensorStatus {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]SensorStatus, 0, len(c.names))
	for _, name := range c.names {
		s := c.sensors[name]
		st := SensorStatus{Sensor: name, LastSeen: s.seen, Stored: s.stored, LastStored: s.lastStored,
			Rejected: s.rejected, EventsPerSecond: s.rate.perSecond(now)}
		if s.hb != nil {
			hb := *s.hb
			st.Heartbeat = &hb
		}
		if s.atSet {
			st.Spool, st.Position = s.at.id, s.at.pos
		}
		out = append(out, st)
	}
	return out
}

// setError records the last error, or clears it.
func (c *Collector) setError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.lastErr = ""
	} else {
		c.lastErr = err.Error()
	}
}
