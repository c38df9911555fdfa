package servedsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/servedset"
)

// Defaults of PublisherConfig.
const (
	DefaultFullEvery      = 500
	DefaultFullInterval   = 10 * time.Minute
	DefaultQueueLen       = 10_000
	DefaultStreamMaxAge   = 24 * time.Hour
	DefaultStreamMaxMsgs  = 100_000
	DefaultStreamMaxBytes = 256 << 20
	DefaultRulesEvery     = time.Second
)

// PublisherConfig configures a Publisher. JS and Set are required; the
// zero values of the other fields work.
type PublisherConfig struct {
	// JS is the central's JetStream context (it may create streams).
	JS jetstream.JetStream
	// Set is the served set the registry keeps (registry.Publisher).
	Set *servedset.Set
	// Rules returns the bytes of the classification rules file in force;
	// nil or empty means the shipped rules. Called every RulesEvery; nil:
	// the shipped rules.
	Rules func() []byte
	// RulesEvery is how often Rules is called; default DefaultRulesEvery.
	RulesEvery time.Duration
	// Replicas of the stream and the object store; default 1 (3 on a
	// three-node cluster).
	Replicas int
	// FullEvery is the number of deltas between two full forms; default
	// DefaultFullEvery, at most half of StreamMaxMsgs (so that the stream
	// keeps the deltas after the last full form). A full form is also put
	// after deltas that add up to more bytes than the last full form.
	FullEvery int
	// FullInterval is the longest time between two full forms while the
	// set changes (and how often the full object is checked while it does
	// not); default DefaultFullInterval.
	FullInterval time.Duration
	// QueueLen bounds the steps waiting while NATS is away; past it they
	// are dropped for one full form of the newest set. Default
	// DefaultQueueLen.
	QueueLen int
	// StreamMaxAge, StreamMaxMsgs and StreamMaxBytes bound the stream of
	// deltas; defaults DefaultStreamMaxAge, DefaultStreamMaxMsgs,
	// DefaultStreamMaxBytes.
	StreamMaxAge   time.Duration
	StreamMaxMsgs  int64
	StreamMaxBytes int64
	// Logger receives a line per full form and the errors (each kind at
	// most once per 10 minutes); nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Publisher carries the served set of the central to the sensors: every
// step of the Set as one message on the delta stream, the full form in
// the object store at start, after a Replace and every FullEvery deltas or
// FullInterval, and the rules file in the object store when it changes.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger
	thr *throttle
	m   *publisherMetrics

	// run names this publisher's run in the message ids: a retry of a
	// delta is dropped as a duplicate, a delta of another run between the
	// same serials is not.
	run string

	mu         sync.Mutex
	queue      []item
	overflowed bool
	wake       chan struct{}

	// Owned by Run.
	obs      jetstream.ObjectStore
	ensured  bool
	have     bool // a full form of this run is in the store
	needFull bool
	last     *servedset.Snapshot // the set as published
	serial   uint32              // last.Serial()
	seq      uint64              // stream sequence of the last delta published
	// Since the last full form.
	fullSerial     uint32
	fullAt         time.Time
	fullBytes      int
	sinceFull      int
	bytesSinceFull int
	rulesDigest    string
	rulesKnown     bool
}

// item is a step of the set to publish: a delta, or (delta nil) the full
// form of snap.
type item struct {
	snap  *servedset.Snapshot
	delta *servedset.Delta
}

// NewPublisher returns a publisher of cfg.Set; Run starts it.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.JS == nil || cfg.Set == nil {
		return nil, errors.New("servedsync: a publisher needs JS and Set")
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.FullEvery <= 0 {
		cfg.FullEvery = DefaultFullEvery
	}
	if cfg.FullInterval <= 0 {
		cfg.FullInterval = DefaultFullInterval
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.StreamMaxAge <= 0 {
		cfg.StreamMaxAge = DefaultStreamMaxAge
	}
	if cfg.StreamMaxMsgs <= 0 {
		cfg.StreamMaxMsgs = DefaultStreamMaxMsgs
	}
	if cfg.StreamMaxBytes <= 0 {
		cfg.StreamMaxBytes = DefaultStreamMaxBytes
	}
	// The stream must keep the deltas after the last full form.
	cfg.FullEvery = max(1, min(cfg.FullEvery, int(cfg.StreamMaxMsgs/2)))
	if cfg.RulesEvery <= 0 {
		cfg.RulesEvery = DefaultRulesEvery
	}
	if cfg.Rules == nil {
		cfg.Rules = func() []byte { return nil }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "servedsync")
	m, err := newPublisherMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, log: log, thr: newThrottle(log), m: m, wake: make(chan struct{}, 1), run: rand.Text()[:10]}, nil
}

// Run publishes until ctx ends. It waits for NATS as long as it takes,
// and returns nil when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	cancel := p.cfg.Set.Subscribe(p.onUpdate)
	defer cancel()
	p.enqueue(item{snap: p.cfg.Set.Load()})
	rules := time.NewTicker(p.cfg.RulesEvery)
	defer rules.Stop()
	full := time.NewTicker(p.cfg.FullInterval)
	defer full.Stop()
	rulesDue := true
	for attempt := 0; ctx.Err() == nil; {
		if !p.ensured {
			if err := p.ensure(ctx); err != nil {
				if ctx.Err() == nil {
					p.fail("ensure", err)
				}
				sleep(ctx, backoff(attempt))
				attempt++
				continue
			}
			attempt = 0
		}
		p.drain(ctx)
		if rulesDue && p.ensured {
			p.putRules(ctx)
			rulesDue = false
		}
		select {
		case <-ctx.Done():
		case <-p.wake:
		case <-rules.C:
			rulesDue = true
		case <-full.C:
			p.checkFull(ctx)
		}
	}
	return nil
}

// onUpdate queues a step of the set. It runs under the set's lock: it only
// appends, and past QueueLen it drops the queue for the full form of the
// newest set.
func (p *Publisher) onUpdate(u servedset.Update) {
	p.enqueue(item{snap: u.New, delta: u.Delta})
}

func (p *Publisher) enqueue(it item) {
	p.mu.Lock()
	if len(p.queue) >= p.cfg.QueueLen {
		p.queue = append(p.queue[:0], item{snap: it.snap})
		p.overflowed = true
		p.m.overflows.Inc()
	} else {
		p.queue = append(p.queue, it)
	}
	p.m.queue.Set(float64(len(p.queue)))
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns the queued steps from the last full form on: a full form
// includes every step before it.
func (p *Publisher) take() []item {
	p.mu.Lock()
	q := p.queue
	p.queue, p.overflowed = nil, false
	p.m.queue.Set(0)
	p.mu.Unlock()
	for i := len(q) - 1; i >= 0; i-- {
		if q[i].delta == nil {
			return q[i:]
		}
	}
	return q
}

func (p *Publisher) superseded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.overflowed
}

// drain publishes the queued steps and the full form due, until there is
// nothing left or ctx ends.
func (p *Publisher) drain(ctx context.Context) {
	for ctx.Err() == nil {
		batch := p.take()
		if len(batch) == 0 {
			if !p.needFull || p.last == nil {
				return
			}
			batch = []item{{}} // only the full form due
		}
		p.publish(ctx, batch)
	}
}

// publish handles the steps of batch in order, each retried until it is
// done. It gives up the rest of the batch when ctx ends, or when an
// overflow replaced the queue with a full form, which includes them.
func (p *Publisher) publish(ctx context.Context, batch []item) {
	for _, it := range batch {
		for attempt := 0; ; attempt++ {
			err := p.ensure(ctx)
			if err != nil {
				p.fail("ensure", err)
			} else if err = p.handle(ctx, it); err == nil {
				break
			}
			p.ensured = false
			if !sleep(ctx, backoff(attempt)) || p.superseded() {
				return
			}
		}
	}
}

// handle publishes one step (none if it.snap is nil), then the full form
// if one is due.
func (p *Publisher) handle(ctx context.Context, it item) error {
	if it.snap != nil && it.snap.Serial() != 0 { // serial 0: the registry has not loaded yet
		if err := p.step(ctx, it); err != nil {
			p.fail("delta", err)
			return err
		}
	}
	if p.needFull && p.last != nil {
		if err := p.putFull(ctx); err != nil {
			p.fail("full", err)
			return err
		}
	}
	return nil
}

func (p *Publisher) step(ctx context.Context, it item) error {
	d := it.delta
	switch {
	case d == nil || !p.have:
		p.last, p.serial, p.needFull = it.snap, it.snap.Serial(), true
		return nil
	case d.From == p.serial:
	case !servedset.SerialLess(p.serial, d.To):
		return nil // published already (a retry)
	default:
		// A step that does not follow what was published: start afresh.
		p.last, p.serial, p.needFull = it.snap, it.snap.Serial(), true
		return nil
	}
	b, err := d.MarshalBinary()
	if err != nil {
		return err
	}
	if len(b) > p.maxDelta() {
		// Too big for one message: the full form goes in chunks.
		p.last, p.serial, p.needFull = it.snap, it.snap.Serial(), true
		return nil
	}
	msg := &nats.Msg{Subject: bus.ServedDeltaSubject, Data: b, Header: nats.Header{}}
	msg.Header.Set(HeaderFrom, strconv.FormatUint(uint64(d.From), 10))
	msg.Header.Set(HeaderTo, strconv.FormatUint(uint64(d.To), 10))
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d-%d", p.run, d.From, d.To))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ack, err := p.cfg.JS.PublishMsg(pctx, msg, jetstream.WithExpectStream(bus.ServedStream))
	cancel()
	if err != nil {
		return fmt.Errorf("publishing delta %d→%d: %w", d.From, d.To, err)
	}
	p.m.deltas.Inc()
	p.m.deltaBytes.Add(float64(len(b)))
	p.m.serial.Set(float64(d.To))
	if !ack.Duplicate && ack.Sequence != p.seq+1 {
		// The stream was reset, or another publisher wrote to it: the
		// followers need a full form that says where the deltas go on.
		p.needFull = true
	}
	if !ack.Duplicate || ack.Sequence > p.seq {
		p.seq = ack.Sequence
	}
	p.last, p.serial = it.snap, d.To
	p.sinceFull++
	p.bytesSinceFull += len(b)
	if p.sinceFull >= p.cfg.FullEvery || p.bytesSinceFull > max(p.fullBytes, 1<<20) {
		p.needFull = true
	}
	return nil
}

// maxDelta is the largest delta one message may carry: the server's
// maximum payload, less room for the headers.
func (p *Publisher) maxDelta() int {
	return int(p.cfg.JS.Conn().MaxPayload()) - 1024
}

// putFull puts the full form of p.last, with its serial and the stream
// sequence of the last delta it includes.
func (p *Publisher) putFull(ctx context.Context) error {
	t0 := time.Now()
	snap := p.last
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := snap.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	meta := jetstream.ObjectMeta{
		Name:        FullObject,
		Description: fmt.Sprintf("served set, serial %d, %d zones; deltas after stream sequence %d follow it", snap.Serial(), snap.Len(), p.seq),
		Metadata: map[string]string{
			metaSerial: strconv.FormatUint(uint64(snap.Serial()), 10),
			metaSeq:    strconv.FormatUint(p.seq, 10),
			metaZones:  strconv.Itoa(snap.Len()),
		},
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	info, err := p.obs.Put(pctx, meta, pr)
	cancel()
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if Put gave up
	<-done
	if err != nil {
		return fmt.Errorf("putting the full form of serial %d: %w", snap.Serial(), err)
	}
	took := time.Since(t0)
	p.have, p.needFull = true, false
	p.fullSerial, p.fullAt, p.fullBytes = snap.Serial(), time.Now(), int(info.Size)
	p.sinceFull, p.bytesSinceFull = 0, 0
	p.m.fulls.Inc()
	p.m.serial.Set(float64(snap.Serial()))
	p.m.fullSeconds.Set(took.Seconds())
	p.m.fullBytes.Set(float64(info.Size))
	p.log.Info("served set full form put", "serial", snap.Serial(), "zones", snap.Len(), "bytes", info.Size,
		"stream_seq", p.seq, "took", took.Round(time.Millisecond))
	return nil
}

// ensure makes the stream and the object store (or updates them to this
// configuration) and reads where the stream stands.
func (p *Publisher) ensure(ctx context.Context) error {
	if p.ensured {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := p.cfg.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        bus.ServedStream,
		Description: "takedown: the served set's deltas (servedsync)",
		Subjects:    []string{bus.ServedDeltaSubject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      p.cfg.StreamMaxAge,
		MaxMsgs:     p.cfg.StreamMaxMsgs,
		MaxBytes:    p.cfg.StreamMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    p.cfg.Replicas,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("making stream %s: %w", bus.ServedStream, err)
	}
	obs, err := p.cfg.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bus.ServedBucket,
		Description: "takedown: the served set's full form and the classification rules (servedsync)",
		Storage:     jetstream.FileStorage,
		Replicas:    p.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("making object store %s: %w", bus.ServedBucket, err)
	}
	if last := st.CachedInfo().State.LastSeq; last != p.seq {
		// At start, or the stream lost or gained messages while we were
		// away: a full form says again where the deltas go on.
		p.seq, p.needFull = last, true
	}
	p.obs, p.ensured = obs, true
	return nil
}

// putRules puts the rules when they differ from the rules object.
func (p *Publisher) putRules(ctx context.Context) {
	b := p.cfg.Rules()
	sum := digestOf(b)
	if !p.rulesKnown {
		info, err := p.obs.GetInfo(ctx, RulesObject)
		switch {
		case err == nil:
			p.rulesDigest = info.Digest
		case !errors.Is(err, jetstream.ErrObjectNotFound):
			p.fail("rules", err)
			return
		}
		p.rulesKnown = true
	}
	if sum == p.rulesDigest {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := p.obs.Put(pctx, jetstream.ObjectMeta{Name: RulesObject, Description: "classification rules; empty: the shipped rules"}, bytes.NewReader(b))
	if err != nil {
		p.fail("rules", err)
		p.rulesKnown = false
		return
	}
	p.rulesDigest = sum
	p.m.rules.Inc()
	p.log.Info("classification rules put", "bytes", len(b), "digest", sum)
}

// checkFull asks for a full form when the set changed since the last one,
// or the full object is gone or is not the one put last.
func (p *Publisher) checkFull(ctx context.Context) {
	if !p.have {
		return
	}
	if p.serial != p.fullSerial {
		p.needFull = true
		return
	}
	info, err := p.obs.GetInfo(ctx, FullObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		p.needFull = true
		return
	}
	if err != nil {
		p.fail("check", err)
		return
	}
	if info.Metadata[metaSerial] != strconv.FormatUint(uint64(p.fullSerial), 10) {
		p.needFull = true
	}
}

func (p *Publisher) fail(kind string, err error) {
	p.m.errors.WithLabelValues(kind).Inc()
	p.thr.warn(kind, "servedsync publisher: retrying", "err", err)
}

// backoff is the wait before retry number attempt: 250 ms doubling to 5 s.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond
	for range min(attempt, 5) {
		d *= 2
	}
	return min(d, 5*time.Second)
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
