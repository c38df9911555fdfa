package collect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/spool"
)

const (
	// fetchBatch is the most messages one fetch asks for.
	fetchBatch = 64
	// minFetchWait is the shortest a fetch waits for messages.
	minFetchWait = 10 * time.Millisecond
	// drainTimeout bounds the last append after Run's context ends.
	drainTimeout = 2 * time.Second
	// pendingEvery is how often the consumer's pending counts are read.
	pendingEvery = 5 * time.Second
	// connectTimeout bounds the making of the stream and the consumer.
	connectTimeout = 5 * time.Second
)

// The acknowledgement protocol's bodies, published to a delivery's reply
// subject.
var (
	ackBody        = []byte("+ACK")
	inProgressBody = []byte("+WPI")
)

// errCrash ends Run as a crash would (the afterCommit test hook).
var errCrash = errors.New("collect: stopped after the append, before the acknowledgements")

// eventError is what a store's error carries when it refuses a batch for
// one of its events (eventstore.EventError).
type eventError interface {
	error
	EventIndex() int
}

// run is the state of one Run.
type run struct {
	c   *Collector
	ctx context.Context

	pull *puller // nil: the consumer is to be made (again)
	// lastCseq is the consumer sequence of the last delivery received
	// since the consumer was made; 0 when none.
	lastCseq uint64
	wait     time.Duration // the backoff after an error of the stream

	marks *marks
	dirty bool   // marks moved since the last append
	seq   uint64 // the stream sequence of the last message taken
	dec   event.Decoder

	// The batch: events to store, where each came from, the quarantine
	// entries to write before the mark passes their records, and the
	// reply subjects of the messages taken, to acknowledge once the batch
	// is stored.
	events  []event.Event
	meta    []recordMeta
	heldQ   []quarantine.Entry
	held    []string
	first   time.Time // when the first held message was taken; zero: none
	touched time.Time // when the held messages were last said in progress
	markBuf []byte
}

// recordMeta says where an event of the batch came from.
type recordMeta struct {
	sensor string
	spool  spool.ID
	end    spool.Pos
}

// Run stores the sensors' events until ctx ends: it makes (or updates)
// the events stream, makes the consumer anew, and then fetches, stores and
// acknowledges, in stream order. After ctx ends it stores what it holds,
// for at most 2 s, and returns nil. It returns an error only when the
// store's mark cannot be read or is damaged.
func (c *Collector) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("collect: Run is already running")
	}
	defer c.running.Store(false)
	source := MarkSourceOf(c.cfg.Name)
	raw, err := c.cfg.Store.Mark(ctx, source)
	if err != nil {
		return fmt.Errorf("collect: reading the store's mark: %w", err)
	}
	mk := newMarks()
	if raw != nil {
		if mk, err = parseMark(raw); err != nil {
			return fmt.Errorf("collect: the store's mark of %s is damaged: %w", source, err)
		}
	}
	c.lastSeq.Store(mk.seq)
	c.mu.Lock()
	for name, s := range c.sensors {
		s.at, s.atSet = mk.latest(name)
	}
	c.mu.Unlock()

	hbSubjects := []string{bus.HeartbeatSubjects}
	if c.cfg.Name != "" {
		hbSubjects = hbSubjects[:0]
		for _, id := range c.names {
			hbSubjects = append(hbSubjects, bus.HeartbeatSubject(id))
		}
	}
	for _, subj := range hbSubjects {
		sub, err := c.cfg.JS.Conn().Subscribe(subj, c.heartbeat)
		if err != nil {
			return fmt.Errorf("collect: subscribing to the heartbeats: %w", err)
		}
		defer sub.Unsubscribe() //nolint:errcheck // the connection may be closed already
	}

	pctx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		c.pollPending(pctx)
	}()
	defer func() {
		stopPoll()
		<-polled
	}()

	r := &run{c: c, ctx: ctx, marks: mk, seq: mk.seq, events: make([]event.Event, 0, min(c.cfg.BatchSize, 4096))}
	defer r.drop()
	for ctx.Err() == nil {
		if r.step() {
			return nil
		}
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	r.ctx = dctx
	r.flush() //nolint:errcheck // what is not stored now comes again at the next start
	return nil
}

// step fetches once and stores when a batch is due. It reports true when
// Run is to return at once (the afterCommit test hook).
func (r *run) step() bool {
	c := r.c
	if r.due() || len(r.held) >= c.cfg.MaxAckPending {
		if errors.Is(r.flush(), errCrash) {
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
	}
	if r.pull == nil {
		if err := r.connect(); err != nil {
			c.setError(err)
			c.logErr("connect", "the events stream cannot be reached; retrying", "err", err, "retry_in", r.backoff())
			r.sleep()
			return false
		}
	}
	if c.beforeFetch != nil {
		c.beforeFetch()
	}
	wait := c.cfg.FlushInterval
	if !r.first.IsZero() {
		wait = max(time.Until(r.first.Add(c.cfg.FlushInterval)), minFetchWait)
	}
	gap, crashed := false, false
	err := r.pull.fetch(min(fetchBatch, c.cfg.MaxAckPending-len(r.held)), wait, func(msg *nats.Msg) bool {
		if !r.take(msg) {
			gap = true
			return false
		}
		if len(r.events) >= c.cfg.BatchSize && errors.Is(r.flush(), errCrash) {
			crashed = true
			return false
		}
		return true
	})
	switch {
	case crashed:
		return true
	case gap:
		// A delivery did not reach us: the stream would deliver it again
		// after AckWait, after later messages whose records would by then
		// be stored, and it would look stored too. Everything from the
		// first unacknowledged message is delivered again, in order, by a
		// new consumer.
		c.log.Warn("a delivery of the stream was lost on its way; the consumer is made anew to receive it again in order")
		return r.lost(nil)
	case err != nil:
		return r.lost(err)
	}
	if r.wait != 0 {
		r.wait = 0
		c.setError(nil) // the stream answers again
	}
	return false
}

// lost ends the use of the consumer after a lost delivery (err nil) or an
// error of the stream: what is held is stored first, and the next step
// makes the consumer anew. It reports true when Run is to return.
func (r *run) lost(err error) bool {
	if errors.Is(r.flush(), errCrash) {
		return true
	}
	r.drop()
	if err != nil {
		r.c.setError(err)
		r.c.logErr("fetch", "fetching from the events stream; the consumer is made anew", "err", err, "retry_in", r.backoff())
		r.sleep()
	}
	return false
}

// backoff returns the next wait after an error of the stream: the retry
// interval, doubling up to 5 s.
func (r *run) backoff() time.Duration {
	if r.wait == 0 {
		r.wait = r.c.cfg.RetryInterval
	} else {
		r.wait = min(2*r.wait, 5*time.Second)
	}
	return r.wait
}

// sleep waits r.wait or until the context ends.
func (r *run) sleep() {
	t := time.NewTimer(r.wait)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
	case <-t.C:
	}
}

// due reports whether the held messages have waited FlushInterval.
func (r *run) due() bool {
	return !r.first.IsZero() && time.Since(r.first) >= r.c.cfg.FlushInterval
}

// connect makes the stream if needed and the consumer anew.
func (r *run) connect() error {
	c := r.c
	ctx, cancel := context.WithTimeout(r.ctx, connectTimeout)
	defer cancel()
	if err := EnsureStream(ctx, c.cfg.JS, c.cfg.Replicas, c.cfg.MaxBytes, c.cfg.DuplicateWindow); err != nil {
		if _, serr := c.cfg.JS.Stream(ctx, bus.EventsStream); serr != nil {
			return err
		}
		// It exists, and cannot be what EnsureStream makes: use it.
		c.logErr("stream", "the events stream is used as it is", "err", err)
	}
	if _, err := newConsumer(ctx, c.cfg.JS, c.cfg.Durable, c.cfg.MaxAckPending, c.subjects()); err != nil {
		return err
	}
	// A new subscription: what the old consumer delivered late must not
	// mix with what the new one delivers.
	p, err := newPuller(c.cfg.JS.Conn(), c.cfg.Durable)
	if err != nil {
		return err
	}
	r.pull, r.lastCseq = p, 0
	c.resets.Add(1)
	c.m.resets.Inc()
	return nil
}

// drop ends the use of the consumer's subscription.
func (r *run) drop() {
	if r.pull != nil {
		r.pull.close()
		r.pull = nil
	}
}

// take takes one delivery into the batch. It reports false, and takes
// nothing, when a delivery before it was lost.
func (r *run) take(msg *nats.Msg) bool {
	c := r.c
	md, err := msg.Metadata()
	if err != nil || md.Stream != bus.EventsStream || md.Consumer != c.cfg.Durable {
		// Not a delivery of the consumer: nothing to acknowledge.
		c.logErr("metadata", "a message on the consumer's subscription that is not one of its deliveries; ignored",
			"subject", msg.Subject, "err", err)
		return true
	}
	if cs := md.Sequence.Consumer; cs > r.lastCseq+1 {
		return false
	}
	// A consumer sequence at or below the last one is a new leader of
	// the consumer that did not hear of our last deliveries: it delivers
	// them again, and counts on from there.
	r.lastCseq = md.Sequence.Consumer
	if md.Sequence.Stream > r.seq || md.NumDelivered == 1 {
		r.seq = md.Sequence.Stream
	}
	r.held = append(r.held, msg.Reply)
	if r.first.IsZero() {
		r.first = time.Now()
		r.touched = r.first
	}
	r.process(msg.Subject, msg.Data)
	return true
}

// process checks a message and takes its records that the store does not
// hold yet into the batch.
func (r *run) process(subject string, data []byte) {
	c := r.c
	sensor := bus.SensorOfSubject(subject)
	if len(data) > c.cfg.MaxMessageBytes {
		c.reject(RejectOversized, sensor, "a message larger than the limit", "bytes", len(data), "max_bytes", c.cfg.MaxMessageBytes)
		return
	}
	if _, ok := c.sensors[sensor]; !ok {
		c.reject(RejectUnknownSensor, sensor, "a message of a sensor that is not configured")
		return
	}
	b, err := bus.DecodeBatch(data)
	if err != nil {
		c.reject(RejectBatch, sensor, "a message that is not a batch of events", "err", err)
		return
	}
	if b.Sensor != sensor {
		c.reject(RejectSensorMismatch, sensor, "a batch that names another sensor than its subject", "batch_sensor", b.Sensor)
		return
	}
	dups := 0
	for _, rec := range b.Records {
		if r.marks.stored(sensor, b.Spool, rec.End) {
			dups++
			continue
		}
		r.marks.advance(sensor, b.Spool, rec.End)
		r.dirty = true
		if len(r.events) == cap(r.events) && cap(r.events) < c.cfg.BatchSize {
			// The batch starts small, for a quiet sinkhole, and grows
			// once to BatchSize: growing by append would copy it, and
			// touch fresh memory, at each doubling.
			grown := make([]event.Event, len(r.events), c.cfg.BatchSize)
			copy(grown, r.events)
			r.events = grown
		}
		r.events = append(r.events, event.Event{})
		e := &r.events[len(r.events)-1]
		kind, reason := "", ""
		if err := r.dec.Decode(rec.Data, e); err != nil {
			kind, reason = quarantine.KindUndecodable, err.Error()
		} else if err := e.Validate(); err != nil {
			kind, reason = quarantine.KindInvalid, err.Error()
		}
		if kind != "" {
			r.events = r.events[:len(r.events)-1]
			c.reject(RejectEvent, sensor, "a record that is not a valid event", "err", reason)
			if c.cfg.Quarantine != nil {
				r.heldQ = append(r.heldQ, quarantine.NewEntry(kind, reason, source(sensor, b.Spool, rec.End), rec.Data, c.cfg.Now()))
			}
			continue
		}
		if e.Sensor != sensor {
			r.events = r.events[:len(r.events)-1]
			c.reject(RejectEventSensor, sensor, "an event that names another sensor than its batch", "event_sensor", e.Sensor)
			continue
		}
		if e.Zone != "" && c.cfg.Zones != nil {
			if z, _, _, ok := c.cfg.Zones.Zone(e.Zone); !ok || z != e.Zone {
				zone := e.Zone
				r.events = r.events[:len(r.events)-1]
				c.reject(RejectZone, sensor, "an event of a zone the central does not serve", "zone", zone)
				continue
			}
		}
		if c.cfg.Classifier != nil && e.Protocol == event.ProtoDNS && !e.Malformed {
			c.cfg.Classifier.ClassifyEvent(e)
		}
		if c.cfg.Enricher != nil {
			c.cfg.Enricher.Enrich(e)
		}
		if c.cfg.Observer != nil {
			c.cfg.Observer.Observe(e)
		}
		r.meta = append(r.meta, recordMeta{sensor: sensor, spool: b.Spool, end: rec.End})
	}
	if dups > 0 {
		c.duplicates.Add(uint64(dups))
		c.m.duplicates.Add(float64(dups))
	}
}

// source names a sensor's record for the quarantine.
func source(sensor string, id spool.ID, end spool.Pos) string {
	return "sensor " + sensor + " spool " + id.String() + " " + end.String()
}

// flush stores the batch with the mark, retrying while the store refuses
// it, and then acknowledges the messages held. It returns nil once they
// are acknowledged, the context's error if it ended first (nothing is
// acknowledged then: the messages come again), or errCrash.
func (r *run) flush() error {
	c := r.c
	if len(r.held) == 0 {
		return nil
	}
	if !r.dirty {
		// Duplicates and refused messages only: nothing to store.
		r.ack()
		return nil
	}
	wait := c.cfg.RetryInterval
	for {
		err := r.commit()
		if err == nil || errors.Is(err, errCrash) {
			return err
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		var ee eventError
		if errors.As(err, &ee) && ee.EventIndex() >= 0 && ee.EventIndex() < len(r.events) {
			// The store named the event it cannot take: set it aside and
			// send the rest again at once.
			r.refuse(ee.EventIndex(), err)
			continue
		}
		c.failures.Add(1)
		c.m.failures.Inc()
		c.setError(err)
		c.logErr("store", "the store refused a batch; its messages are kept and it is retried",
			"events", len(r.events), "retry_in", wait, "err", err)
		r.keepAlive()
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return r.ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// commit writes the held quarantine entries, then appends the batch with
// the mark, and acknowledges the held messages.
func (r *run) commit() error {
	c := r.c
	if len(r.heldQ) > 0 {
		if err := c.cfg.Quarantine.Add(r.heldQ...); err != nil {
			return fmt.Errorf("collect: setting records aside: %w", err)
		}
		c.quarantined.Add(uint64(len(r.heldQ)))
		c.m.quarantined.Add(float64(len(r.heldQ)))
		r.heldQ = r.heldQ[:0]
	}
	r.marks.seq = r.seq
	r.markBuf = r.marks.appendBinary(r.markBuf[:0])
	start := time.Now()
	if err := c.cfg.Store.AppendMarked(r.ctx, r.events, MarkSourceOf(c.cfg.Name), r.markBuf); err != nil {
		return err
	}
	took := time.Since(start)
	n := len(r.events)
	c.stored.Add(uint64(n))
	c.m.stored.Add(float64(n))
	c.lastSeq.Store(r.seq)
	c.lastAppend.Store(int64(took))
	c.m.appendSeconds.Observe(took.Seconds())
	c.setError(nil)
	r.count()
	if c.afterCommit != nil && c.afterCommit() {
		return errCrash
	}
	r.ack()
	clear(r.events) // what they point to may go
	r.events, r.meta, r.dirty = r.events[:0], r.meta[:0], false
	return nil
}

// count adds the stored batch to its sensors' status.
func (r *run) count() {
	c := r.c
	now := c.cfg.Now()
	per := map[string]uint64{}
	for _, m := range r.meta {
		per[m.sensor]++
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, s := range c.sensors {
		s.at, s.atSet = r.marks.latest(name)
		if n := per[name]; n > 0 {
			s.stored += n
			s.lastStored = now
			s.rate.add(now, n)
		}
	}
	for name, n := range per {
		c.m.sensorStored.WithLabelValues(name).Add(float64(n))
	}
}

// refuse takes r.events[i] out of the batch, for the quarantine.
func (r *run) refuse(i int, err error) {
	c := r.c
	m := r.meta[i]
	c.reject(RejectRefused, m.sensor, "the store refused an event; it is set aside", "err", err)
	if c.cfg.Quarantine != nil {
		rec := event.AppendBinary(nil, &r.events[i])
		r.heldQ = append(r.heldQ, quarantine.NewEntry(quarantine.KindRefused, err.Error(), source(m.sensor, m.spool, m.end), rec, c.cfg.Now()))
	}
	r.events = append(r.events[:i], r.events[i+1:]...)
	r.meta = append(r.meta[:i], r.meta[i+1:]...)
}

// ack acknowledges the held messages. An acknowledgement that is lost
// costs a delivery again, whose records are known stored.
func (r *run) ack() {
	nc := r.c.cfg.JS.Conn()
	for _, reply := range r.held {
		nc.Publish(reply, ackBody) //nolint:errcheck // see above
	}
	clear(r.held)
	r.held, r.first = r.held[:0], time.Time{}
}

// keepAlive tells the stream that the held messages are still being
// worked on, every AckWait/4 while the store refuses them, so that it
// does not deliver them again meanwhile.
func (r *run) keepAlive() {
	if time.Since(r.touched) < AckWait/4 {
		return
	}
	nc := r.c.cfg.JS.Conn()
	for _, reply := range r.held {
		nc.Publish(reply, inProgressBody) //nolint:errcheck // a lost one costs a delivery again
	}
	r.touched = time.Now()
}

// pollPending reads the consumer's pending counts every pendingEvery
// until ctx ends.
func (c *Collector) pollPending(ctx context.Context) {
	t := time.NewTicker(c.pendingEvery)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, c.pendingEvery)
		cons, err := c.cfg.JS.Consumer(qctx, bus.EventsStream, c.cfg.Durable)
		cancel()
		if err == nil {
			info := cons.CachedInfo()
			c.pending.Store(int64(info.NumPending) + int64(info.NumAckPending))
		} else if ctx.Err() == nil {
			c.pending.Store(-1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
