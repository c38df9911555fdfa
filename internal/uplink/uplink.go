package uplink

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/spool"
)

// Defaults of Config fields left zero.
const (
	DefaultMaxBatchBytes     = 512 << 10
	DefaultLinger            = 100 * time.Millisecond
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultAckWait           = 5 * time.Second
	DefaultDrain             = 2 * time.Second
)

// Retry backoff after a failed publish: 100 ms, doubling up to 5 s.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// Config configures an Uplink. The zero value of every field but Sensor,
// Conn, Spool and StateDir works.
type Config struct {
	// Sensor is this sensor's id (bus.ValidSensorID); required. It names
	// the subject the events go to, takedown.events.<sensor>.
	Sensor string
	// Conn is the sensor's NATS connection (bus.Connect); required. It may
	// not be connected yet: Run waits for it. The uplink does not close it.
	Conn *nats.Conn
	// Spool holds every event first; required. The uplink does not close
	// it.
	Spool *spool.Spool
	// StateDir is where the mark file (MarkFile) lives: the sensor's data
	// directory; required.
	StateDir string
	// MaxBatchBytes bounds one message (a bus.Batch); default 512 KiB. It
	// is lowered, once connected, to what the server takes (its
	// max_payload, 1 MiB by default) less room for the headers.
	MaxBatchBytes int
	// Linger is the longest a record waits for its batch to fill; default
	// 100 ms. A backlog fills batches at once.
	Linger time.Duration
	// AckWait is the longest Run waits for the stream's acknowledgement of
	// a batch before it sends the batch again; default 5 s.
	AckWait time.Duration
	// Drain is how long Run goes on publishing after its context ends,
	// while the spool has records; default 2 s. What is left is published
	// by the next Run.
	Drain time.Duration
	// HeartbeatInterval is the period of the heartbeat; default 5 s.
	HeartbeatInterval time.Duration
	// Served, if set, returns the serial and the number of zones of the
	// served set the sensor answers from, for the heartbeat.
	Served func() (serial uint32, zones int)
	// Version is the sensor's takedown version, for the heartbeat.
	Version string
	// Logger and Registerer; nil discards / does not register.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Uplink publishes a sensor's spool to the events stream. Record is the
// sinks' recorder; Run is the publisher.
type Uplink struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	subject string
	// emptyBatch is the size of the binary form of a batch of no record.
	emptyBatch int
	started    time.Time
	buf        sync.Pool // *[]byte for encoding events

	// from is where Run starts reading, note why it is not the mark.
	from spool.Pos
	note string
	ran  atomic.Bool

	recorded, dropped, recBytes  atomic.Uint64
	published, batches, dups     atomic.Uint64
	skipped                      atomic.Uint64
	lastAck                      atomic.Int64 // unix ns
	lastErr                      atomic.Pointer[string]
	ackedMu                      sync.Mutex
	acked                        spool.Pos // after the last acknowledged record
	m                            metrics
	afterAck                     func(*bus.Batch) bool // tests: false stops Run as a crash would
	firstBackoff, maxBackoffWait time.Duration
}

type metrics struct {
	recorded, dropped, records, batches, duplicates, skipped prometheus.Counter
	errors                                                   *prometheus.CounterVec
}

// New checks cfg and returns an uplink. It reads the mark file, so that
// Stats tells the backlog before Run starts. A mark file that is damaged
// is logged and ignored: the spool is then published from its start, and
// the central drops the records it has (it keeps, per sensor and spool,
// the position it stored up to).
func New(cfg Config) (*Uplink, error) {
	switch {
	case !bus.ValidSensorID(cfg.Sensor):
		return nil, fmt.Errorf("uplink: sensor id %q is not a DNS label (a-z, 0-9, '-', at most 63)", cfg.Sensor)
	case cfg.Conn == nil:
		return nil, errors.New("uplink: no NATS connection")
	case cfg.Spool == nil:
		return nil, errors.New("uplink: no spool")
	case cfg.StateDir == "":
		return nil, errors.New("uplink: no state directory for the mark file")
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DefaultDrain
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "uplink")
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	u := &Uplink{cfg: cfg, log: log, js: js, subject: bus.EventsSubject(cfg.Sensor), started: time.Now(),
		firstBackoff: firstBackoff, maxBackoffWait: maxBackoff}
	u.buf.New = func() any { b := make([]byte, 0, 512); return &b }
	u.emptyBatch = len((&bus.Batch{Sensor: cfg.Sensor}).AppendBinary(nil))

	id, pos, err := readMark(cfg.StateDir)
	switch {
	case err == nil:
	case errors.Is(err, errNoMark):
	default:
		// Unreadable or damaged: publishing from the spool's start loses
		// nothing, and the central drops what it has.
		log.Error("the mark file cannot be used; the spool is published from its start", "err", err)
	}
	u.from, u.note = resumeFrom(cfg.Spool, id, pos, err == nil)
	if u.note != "" {
		log.Error("the spool does not match the mark: " + u.note)
	}
	u.acked = u.from
	u.m = newMetrics(u, cfg.Registerer)
	return u, nil
}

func newMetrics(u *Uplink, reg prometheus.Registerer) metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_uplink_" + name, Help: help})
	}
	m := metrics{
		recorded:   counter("events_recorded_total", "Events the sinks recorded into the spool."),
		dropped:    counter("events_dropped_total", "Events the spool refused (full, or its filesystem below the reserve)."),
		records:    counter("published_records_total", "Spool records the events stream acknowledged."),
		batches:    counter("published_batches_total", "Batches (messages) the events stream acknowledged."),
		duplicates: counter("duplicate_batches_total", "Acknowledged batches that the stream had already (a retry, or a batch republished after a restart)."),
		skipped:    counter("skipped_records_total", "Records larger than any message the server takes, skipped."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_uplink_publish_errors_total",
			Help: "Failed publish attempts, by reason: disconnected, timeout, no_stream (no stream takes the subject), rejected (the stream refused), oversized, other. Each is retried."},
			[]string{"reason"}),
	}
	for _, r := range reasons {
		m.errors.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.recorded, m.dropped, m.records, m.batches, m.duplicates, m.skipped, m.errors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_uplink_backlog_bytes",
				Help: "Bytes of spool records the stream has not acknowledged, on disk and buffered."},
				func() float64 { return float64(u.backlogBytes()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_uplink_connected",
				Help: "1 while the NATS connection is up."},
				func() float64 {
					if u.cfg.Conn.IsConnected() {
						return 1
					}
					return 0
				}),
		)
	}
	return m
}

// Record appends e to the spool: the sinks' recorder. It never waits for
// NATS; it reports false, and counts a drop, when the spool refuses the
// event (full, closed, below its free-space reserve). It does not keep e.
func (u *Uplink) Record(e *event.Event) bool {
	bp := u.buf.Get().(*[]byte)
	b := event.AppendBinary((*bp)[:0], e)
	err := u.cfg.Spool.Append(b)
	*bp = b
	u.buf.Put(bp)
	if err != nil {
		u.dropped.Add(1)
		u.m.dropped.Inc()
		return false
	}
	u.recorded.Add(1)
	u.recBytes.Add(uint64(len(b)))
	u.m.recorded.Inc()
	return true
}

// Stats are the uplink's counters since New, and its state.
type Stats struct {
	// Recorded counts the events the sinks recorded; Dropped those lost on
	// their way to the disk (refused by the spool, or lost to a failed
	// write after it took them).
	Recorded, Dropped uint64
	// Published counts the records the stream acknowledged, in Batches
	// messages; Duplicates of them the stream had already.
	Published, Batches, Duplicates uint64
	// Skipped counts the records too large for any message the server
	// takes.
	Skipped uint64
	// BacklogBytes is what the spool holds that the stream has not
	// acknowledged, on disk and buffered; BacklogRecords an estimate of
	// the records in it, from the mean size of those recorded.
	BacklogBytes   int64
	BacklogRecords int64
	// LastAck is when the stream last acknowledged a batch; zero before.
	LastAck time.Time
	// Connected tells whether the NATS connection is up.
	Connected bool
	// LastError is the last publish error while publishing fails; empty
	// once a batch is acknowledged.
	LastError string
	// SpoolNote explains a spool that did not match the mark (deleted,
	// replaced, or put back from a copy).
	SpoolNote string
}

// meanRecord is the record size assumed before any event was recorded.
const meanRecord = 200

// Stats returns the counters.
func (u *Uplink) Stats() Stats {
	sp := u.cfg.Spool.Stats()
	st := Stats{
		Recorded: u.recorded.Load(), Dropped: u.dropped.Load() + sp.DroppedWrite,
		Published: u.published.Load(), Batches: u.batches.Load(), Duplicates: u.dups.Load(), Skipped: u.skipped.Load(),
		BacklogBytes: u.backlogBytes(), Connected: u.cfg.Conn.IsConnected(), SpoolNote: u.note,
	}
	mean := uint64(meanRecord)
	if st.Recorded > 0 {
		mean = u.recBytes.Load()/st.Recorded + 12 // the spool's record header
	}
	st.BacklogRecords = int64((uint64(st.BacklogBytes) + mean - 1) / mean)
	if t := u.lastAck.Load(); t != 0 {
		st.LastAck = time.Unix(0, t)
	}
	if e := u.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

func (u *Uplink) backlogBytes() int64 {
	u.ackedMu.Lock()
	acked := u.acked
	u.ackedMu.Unlock()
	return u.cfg.Spool.DiskBytesAfter(acked) + u.cfg.Spool.Stats().Buffered
}

// heartbeat is what the sensor says of itself now.
func (u *Uplink) heartbeat() *bus.Heartbeat {
	st := u.Stats()
	h := &bus.Heartbeat{Sensor: u.cfg.Sensor, Time: time.Now().UTC(), Started: u.started.UTC(),
		Recorded: st.Recorded, Dropped: st.Dropped, Published: st.Published,
		BacklogBytes: st.BacklogBytes, BacklogRecords: st.BacklogRecords, Version: u.cfg.Version}
	if u.cfg.Served != nil {
		h.ServedSerial, h.ServedZones = u.cfg.Served()
	}
	return h
}
