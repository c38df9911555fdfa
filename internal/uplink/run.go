package uplink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/spool"
)

// Reasons of a failed publish, the label of takedown_uplink_publish_errors_total.
const (
	reasonDisconnected = "disconnected"
	reasonTimeout      = "timeout"
	reasonNoStream     = "no_stream"
	reasonRejected     = "rejected"
	reasonOversized    = "oversized"
	reasonOther        = "other"
)

var reasons = []string{reasonDisconnected, reasonTimeout, reasonNoStream, reasonRejected, reasonOversized, reasonOther}

// headerRoom is what a message's headers (Nats-Msg-Id,
// Nats-Expected-Stream) take of the server's max_payload, with room to
// spare.
const headerRoom = 1024

// errDisconnected: the connection is down; the batch is not sent into the
// client's reconnect buffer but kept for when it is back.
var errDisconnected = errors.New("uplink: not connected to NATS")

// Run publishes the spool to the events stream until ctx ends, one batch
// at a time and in order: a batch goes out only once the one before it is
// acknowledged, and is sent again, the same, until it is. Then Run goes on
// for at most Config.Drain while the spool holds records, and returns;
// the rest is published by the next Run. It returns an error only when it
// cannot start.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.ran.CompareAndSwap(false, true) {
		return errors.New("uplink: Run called twice")
	}
	// Segments wholly acknowledged may still be on disk: a crash came
	// between the mark and the release.
	if err := u.cfg.Spool.Release(u.from); err != nil {
		u.log.Warn("releasing acknowledged spool segments", "err", err)
	}
	r, err := u.cfg.Spool.NewReader(u.from)
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	defer r.Close()

	wake := make(chan struct{}, 1)
	status := u.cfg.Conn.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	sideCtx, stopSide := context.WithCancel(context.WithoutCancel(ctx))
	var side sync.WaitGroup
	side.Add(1)
	go func() {
		defer side.Done()
		u.watch(sideCtx, status, wake)
	}()
	defer func() {
		stopSide()
		side.Wait()
		u.cfg.Conn.RemoveStatusListener(status)
	}()

	l := &loop{u: u, r: r, ctx: ctx, wake: wake, cancelDrain: func() {}, throttle: newThrottle(time.Minute)}
	defer func() { l.cancelDrain() }()
	for {
		done := l.fill()
		// One batch, then more records: what a batch could not take
		// goes out with them.
		if len(l.recs) > 0 && !l.publish() {
			return nil
		}
		if done {
			for len(l.recs) > 0 {
				if !l.publish() {
					return nil
				}
			}
			return nil
		}
	}
}

// loop is the state of Run's publisher.
type loop struct {
	u    *Uplink
	r    *spool.Reader
	ctx  context.Context
	wake <-chan struct{}
	// stopping is set once ctx has ended: the drain, within drainCtx.
	stopping    bool
	drainCtx    context.Context
	cancelDrain context.CancelFunc

	// raw holds the records read and not yet acknowledged, recs where each
	// is and where it ends in the spool; size is their encoded size in a
	// batch. They are published from the front.
	raw  []byte
	recs []rawRecord
	size int

	batch    bus.Batch
	out      []byte // the batch's binary form
	markBuf  []byte
	throttle *throttle
	// shrink, if set, bounds batches below what the server said it takes
	// (it refused a batch as too large).
	shrink  int
	failing time.Time // when publishing started to fail; zero while it works
	readErr time.Time // when a spool read error was last logged
}

type rawRecord struct {
	off, n int
	end    spool.Pos
	enc    int // bus.Record.EncodedLen
}

// opCtx is the context of the work at hand: ctx, or the drain's.
func (l *loop) opCtx() context.Context {
	if l.stopping {
		return l.drainCtx
	}
	return l.ctx
}

// stop starts the drain: what the sinks recorded until now is written to
// the spool's files, and published for at most Drain.
func (l *loop) stop() {
	l.stopping = true
	if err := l.u.cfg.Spool.Flush(); err != nil {
		l.u.log.Warn("flushing the spool", "err", err)
	}
	l.drainCtx, l.cancelDrain = context.WithTimeout(context.WithoutCancel(l.ctx), l.u.cfg.Drain)
}

// limit is the largest batch to send: MaxBatchBytes, or less when the
// server takes less.
func (l *loop) limit() int {
	lim := l.u.cfg.MaxBatchBytes
	if l.shrink > 0 {
		lim = min(lim, l.shrink)
	}
	if mp := l.u.cfg.Conn.MaxPayload(); mp > 0 {
		lim = min(lim, int(mp)-headerRoom)
	}
	return max(lim, 1)
}

// overhead is what a batch of n records takes besides the records: the
// form of an empty batch, whose count is one byte, and the count's
// bytes beyond that.
func (l *loop) overhead(n int) int {
	var b [binary.MaxVarintLen64]byte
	return l.u.emptyBatch - 1 + binary.PutUvarint(b[:], uint64(n))
}

func (l *loop) add(rec []byte, end spool.Pos) {
	r := bus.Record{End: end, Data: rec}
	l.recs = append(l.recs, rawRecord{off: len(l.raw), n: len(rec), end: end, enc: r.EncodedLen()})
	l.raw = append(l.raw, rec...)
	l.size += l.recs[len(l.recs)-1].enc
}

// fill reads records until the batch is full, or Linger has passed since
// its first record. It waits for a first record unless some are pending.
// done reports that Run is to return once the records read are published:
// the drain found the spool empty or out of time, or the spool was
// closed.
func (l *loop) fill() (done bool) {
	limit := l.limit()
	if len(l.recs) == 0 {
		wctx, cancel := l.opCtx(), context.CancelFunc(func() {})
		if l.stopping {
			// The sinks have stopped and the spool is flushed: a short
			// pause means it is empty.
			wctx, cancel = context.WithTimeout(l.drainCtx, 50*time.Millisecond)
		}
		rec, end, err := l.r.Next(wctx)
		cancel()
		switch {
		case err == nil:
			l.add(rec, end)
		case errors.Is(err, spool.ErrClosed):
			return true
		case !l.stopping && l.ctx.Err() != nil:
			l.stop()
			return false
		case l.stopping:
			return true // drained, or out of time
		default:
			l.spoolError(err)
			return false
		}
	}
	// More records: what is on disk at once, then what comes within
	// Linger. While draining, only what is on disk (Next returns it with
	// an ended context).
	wait := l.u.cfg.Linger
	if l.stopping {
		wait = 0
	}
	bctx, cancel := context.WithTimeout(l.opCtx(), wait)
	defer cancel()
	for l.size+l.overhead(len(l.recs)) < limit {
		rec, end, err := l.r.Next(bctx)
		if err != nil {
			if errors.Is(err, spool.ErrClosed) {
				return true
			}
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				l.spoolError(err)
			}
			break
		}
		l.add(rec, end)
	}
	if !l.stopping && l.ctx.Err() != nil {
		l.stop()
	}
	return false
}

// spoolError logs an error reading the spool (a disk error) at most once
// a minute and waits a second rather than spin.
func (l *loop) spoolError(err error) {
	if time.Since(l.readErr) > time.Minute {
		l.u.log.Error("reading the spool", "err", err)
		l.readErr = time.Now()
	}
	select {
	case <-l.opCtx().Done():
	case <-time.After(time.Second):
	}
}

// take builds the batch of the first records that fit the limit (at
// least one) and returns how many it holds.
func (l *loop) take() int {
	limit := l.limit()
	n, size := 0, 0
	for n < len(l.recs) && (n == 0 || size+l.recs[n].enc+l.overhead(n+1) <= limit) {
		size += l.recs[n].enc
		n++
	}
	l.batch.Sensor, l.batch.Spool = l.u.cfg.Sensor, l.u.cfg.Spool.ID()
	l.batch.Records = l.batch.Records[:0]
	for _, r := range l.recs[:n] {
		l.batch.Records = append(l.batch.Records, bus.Record{End: r.end, Data: l.raw[r.off : r.off+r.n]})
	}
	l.out = l.batch.AppendBinary(l.out[:0])
	return n
}

// publish sends the first pending records as one batch until the stream
// acknowledges it, then saves the mark and releases the spool. It reports
// false when Run is to return: the drain ran out of time, or a test hook
// stopped it.
func (l *loop) publish() bool {
	u := l.u
	backoff := u.firstBackoff
	for {
		n := l.take()
		if n == 1 && (l.recs[0].n > bus.MaxRecordBytes || !l.fits()) {
			l.skip()
			return true
		}
		ctx := l.opCtx()
		if ctx.Err() != nil {
			if l.stopping {
				return false
			}
			l.stop()
			continue
		}
		ack, err := l.send(ctx)
		if err == nil {
			return l.commit(n, ack.Duplicate)
		}
		if !l.stopping && l.ctx.Err() != nil {
			l.stop() // not a failure: the same batch, within the drain
			continue
		}
		reason := classify(err)
		if reason == reasonOversized && n > 1 {
			// The server takes less than it said: smaller batches, down
			// to one record.
			u.m.errors.WithLabelValues(reason).Inc()
			l.shrink = max(1, len(l.out)/2)
			continue
		}
		l.failed(reason, err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.wake:
		case <-l.opCtx().Done():
		}
		t.Stop()
		backoff = min(2*backoff, u.maxBackoffWait)
	}
}

// fits tells whether the batch fits the server's max_payload, when it is
// known.
func (l *loop) fits() bool {
	mp := l.u.cfg.Conn.MaxPayload()
	return mp <= 0 || len(l.out)+headerRoom <= int(mp)
}

// send publishes the batch and waits for its acknowledgement.
func (l *loop) send(ctx context.Context) (*jetstream.PubAck, error) {
	u := l.u
	if !u.cfg.Conn.IsConnected() {
		// A message sent now would wait in the client's reconnect buffer,
		// beside the heartbeats, and be lost with it: the batch waits
		// here, and in the spool.
		return nil, errDisconnected
	}
	actx, cancel := context.WithTimeout(ctx, u.cfg.AckWait)
	defer cancel()
	return u.js.PublishMsg(actx, &nats.Msg{Subject: u.subject, Data: l.out},
		jetstream.WithMsgID(l.batch.MsgID()), jetstream.WithExpectStream(bus.EventsStream),
		// Run retries, with its own backoff.
		jetstream.WithRetryAttempts(0))
}

// classify names the reason of a publish error.
func classify(err error) string {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, errDisconnected), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected):
		return reasonDisconnected
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return reasonNoStream
	case errors.Is(err, nats.ErrMaxPayload):
		return reasonOversized
	case errors.As(err, &apiErr):
		return reasonRejected
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.Canceled):
		return reasonTimeout
	}
	return reasonOther
}

// failed counts and logs a failed publish: the first failure after
// success at once, then each reason at most once a minute, with the
// count of those not logged. A connection that is down is watch's to
// log, once.
func (l *loop) failed(reason string, err error) {
	u := l.u
	u.m.errors.WithLabelValues(reason).Inc()
	msg := err.Error()
	u.lastErr.Store(&msg)
	if reason == reasonDisconnected {
		return
	}
	if l.failing.IsZero() {
		l.failing = time.Now()
		l.throttle.allow(reason) // this line stands for the reason's first
		u.log.Warn("publishing to the events stream fails; the events wait in the spool and the batch is retried",
			"reason", reason, "err", err, "backlog_bytes", u.backlogBytes())
		return
	}
	if ok, suppressed := l.throttle.allow(reason); ok {
		u.log.Warn("publishing to the events stream still fails", "reason", reason, "err", err,
			"suppressed", suppressed, "failing_for", time.Since(l.failing).Round(time.Second), "backlog_bytes", u.backlogBytes())
	}
}

// commit records the acknowledgement of the first n pending records:
// the mark, then the release of the segments before it, then the
// counters. It reports false when a test hook stops Run.
func (l *loop) commit(n int, dup bool) bool {
	u := l.u
	if u.afterAck != nil && !u.afterAck(&l.batch) {
		return false
	}
	end := l.recs[n-1].end
	var err error
	l.markBuf, err = writeMark(u.cfg.StateDir, u.cfg.Spool.ID(), end, l.markBuf)
	if err != nil {
		// The records are in the stream: releasing them loses nothing,
		// and frees the disk the mark may be missing. After a restart
		// the older mark sends some again, and the central drops them.
		u.log.Error("saving the mark", "err", err)
	}
	if err := u.cfg.Spool.Release(end); err != nil {
		u.log.Warn("releasing acknowledged spool segments", "err", err)
	}
	u.ackedMu.Lock()
	u.acked = end
	u.ackedMu.Unlock()
	u.published.Add(uint64(n))
	u.batches.Add(1)
	u.m.records.Add(float64(n))
	u.m.batches.Inc()
	if dup {
		u.dups.Add(1)
		u.m.duplicates.Inc()
	}
	u.lastAck.Store(time.Now().UnixNano())
	u.lastErr.Store(nil)
	if !l.failing.IsZero() {
		u.log.Info("publishing to the events stream works again", "failed_for", time.Since(l.failing).Round(time.Millisecond),
			"backlog_bytes", u.backlogBytes())
		l.failing = time.Time{}
		l.throttle.reset()
	}
	l.drop(n)
	return true
}

// skip passes over the first pending record, which no message the server
// takes can hold: retrying it would stop the sensor's uplink for good.
func (l *loop) skip() {
	u := l.u
	r := l.recs[0]
	u.skipped.Add(1)
	u.m.skipped.Inc()
	u.m.errors.WithLabelValues(reasonOversized).Inc()
	u.log.Error("a spool record is too large for any message the server takes; skipped",
		"bytes", r.n, "position", r.end, "max_payload", u.cfg.Conn.MaxPayload())
	var err error
	if l.markBuf, err = writeMark(u.cfg.StateDir, u.cfg.Spool.ID(), r.end, l.markBuf); err != nil {
		u.log.Error("saving the mark", "err", err)
	}
	u.ackedMu.Lock()
	u.acked = r.end
	u.ackedMu.Unlock()
	l.drop(1)
}

// drop removes the first n pending records.
func (l *loop) drop(n int) {
	if n == len(l.recs) {
		l.raw, l.recs, l.size = l.raw[:0], l.recs[:0], 0
		return
	}
	base := l.recs[n].off
	l.raw = l.raw[:copy(l.raw, l.raw[base:])]
	for _, r := range l.recs[:n] {
		l.size -= r.enc
	}
	l.recs = l.recs[:copy(l.recs, l.recs[n:])]
	for i := range l.recs {
		l.recs[i].off -= base
	}
}

// watch logs the connection's changes, once each way, wakes the
// publisher when the connection is back, and sends the heartbeat, until
// ctx ends.
func (u *Uplink) watch(ctx context.Context, status <-chan nats.Status, wake chan<- struct{}) {
	up := u.cfg.Conn.IsConnected()
	var lost time.Time
	if !up {
		lost = time.Now()
		u.log.Warn("not connected to NATS yet; the events wait in the spool")
	}
	t := time.NewTicker(u.cfg.HeartbeatInterval)
	defer t.Stop()
	u.beat()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			u.beat()
			continue
		case s := <-status:
			switch now := s == nats.CONNECTED; {
			case now && !up:
				up = true
				u.log.Info("connected to NATS; publishing the backlog", "after", time.Since(lost).Round(time.Millisecond),
					"backlog_bytes", u.backlogBytes(), "server", u.cfg.Conn.ConnectedUrlRedacted())
				select {
				case wake <- struct{}{}:
				default:
				}
				u.beat()
			case !now && up:
				up = false
				lost = time.Now()
				u.log.Warn("NATS connection lost; the events wait in the spool", "status", s.String())
			}
		}
	}
}

// beat publishes a heartbeat (core NATS, not kept anywhere) while
// connected.
func (u *Uplink) beat() {
	if !u.cfg.Conn.IsConnected() {
		return
	}
	if err := u.cfg.Conn.Publish(bus.HeartbeatSubject(u.cfg.Sensor), u.heartbeat().Marshal()); err != nil {
		u.log.Debug("publishing the heartbeat", "err", err)
	}
}

// throttle lets a log line of each kind through at most once a period,
// and counts the ones it holds back.
type throttle struct {
	every time.Duration
	last  map[string]time.Time
	held  map[string]int
}

func newThrottle(every time.Duration) *throttle {
	return &throttle{every: every, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line of kind may be logged now, and how many
// were held back since the last one.
func (t *throttle) allow(kind string) (bool, int) {
	now := time.Now()
	if last, ok := t.last[kind]; ok && now.Sub(last) < t.every {
		t.held[kind]++
		return false, 0
	}
	n := t.held[kind]
	t.last[kind], t.held[kind] = now, 0
	return true, n
}

func (t *throttle) reset() {
	clear(t.last)
	clear(t.held)
}
