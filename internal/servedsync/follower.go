package servedsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/servedset"
)

// Defaults of FollowerConfig.
const (
	DefaultPersistDelay = time.Second
	DefaultCheckEvery   = 10 * time.Second
)

// chunkWait is how long a follower waits for the next chunk of an object
// before it gives up the fetch (the object was replaced meanwhile, or NATS
// went away) and tries again.
const chunkWait = 5 * time.Second

// FollowerConfig configures a Follower. JS and Set are required; the zero
// values of the other fields work.
type FollowerConfig struct {
	// JS is the sensor's JetStream context. The follower only reads: it
	// never makes a stream or a bucket, and waits for the central to.
	JS jetstream.JetStream
	// Set is the sensor's served set, which the sinks answer from; load
	// it with LoadDisk first.
	Set *servedset.Set
	// Dir keeps the last served set (served.tdsf); "" keeps none.
	Dir string
	// RulesFile is where the classification rules of the central are
	// written (a temporary file, fsync, rename); "" does not follow them.
	RulesFile string
	// DefaultRules is written to RulesFile when the central serves the
	// shipped rules (an empty rules object); the lead passes
	// classify.DefaultYAML(). Empty: RulesFile is removed instead.
	DefaultRules []byte
	// OnRules is called after a new RulesFile is in place (or removed),
	// from the follower's goroutine: e.g. classify.Holder.Reload.
	OnRules func()
	// Name prefixes the names of the follower's consumers, so that the
	// server's consumer list tells whose they are: the sensor id.
	// Default "servedsync".
	Name string
	// PersistDelay is how long the follower waits after a change before
	// it writes the set to Dir, so that a burst of changes is one write;
	// default DefaultPersistDelay.
	PersistDelay time.Duration
	// CheckEvery is how often the follower looks at the stream and the
	// full object besides what its consumers tell it (a stream reset, a
	// full form it missed); default DefaultCheckEvery.
	CheckEvery time.Duration
	// Logger receives a line per full form loaded and rules written, and
	// the errors (each kind at most once per 10 minutes); nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// FollowerStatus is what a follower says of itself.
type FollowerStatus struct {
	// Serial of the served set the sinks answer from.
	Serial uint32
	// Applied is when the follower last changed the set; zero before its
	// first change (the set is what LoadDisk loaded).
	Applied time.Time
	// Connected reports whether the connection to NATS is up.
	Connected bool
}

// Follower keeps a sensor's served set in step with the central's: it
// applies the deltas of the stream in order, loads the full form when the
// deltas do not follow, writes the rules file when it changes, and keeps
// the set on disk.
type Follower struct {
	cfg     FollowerConfig
	log     *slog.Logger
	thr     *throttle
	m       *followerMetrics
	applied atomic.Int64 // unix nanoseconds
	persist chan struct{}
	written *servedset.Snapshot // the snapshot on disk; owned by the persister

	// Owned by Run.
	rulesDigest    string // of the rules object whose bytes RulesFile holds
	rulesIsDefault bool   // RulesFile holds what the central's shipped rules make
}

// NewFollower returns a follower of cfg.Set; Run starts it.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if cfg.JS == nil || cfg.Set == nil {
		return nil, errors.New("servedsync: a follower needs JS and Set")
	}
	if cfg.Name == "" {
		cfg.Name = "servedsync"
	}
	if cfg.PersistDelay <= 0 {
		cfg.PersistDelay = DefaultPersistDelay
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "servedsync")
	f := &Follower{cfg: cfg, log: log, thr: newThrottle(log), persist: make(chan struct{}, 1)}
	m, err := newFollowerMetrics(cfg.Registerer, func() float64 {
		if f.cfg.JS.Conn().IsConnected() {
			return 1
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	f.m = m
	snap := cfg.Set.Load()
	m.serial.Set(float64(snap.Serial()))
	m.zones.Set(float64(snap.Len()))
	return f, nil
}

// Status returns the follower's state.
func (f *Follower) Status() FollowerStatus {
	st := FollowerStatus{Serial: f.cfg.Set.Load().Serial(), Connected: f.cfg.JS.Conn().IsConnected()}
	if ns := f.applied.Load(); ns != 0 {
		st.Applied = time.Unix(0, ns)
	}
	return st
}

// Run follows the central until ctx ends, through NATS outages and server
// restarts, then writes the set to disk and returns nil.
func (f *Follower) Run(ctx context.Context) error {
	if f.cfg.Dir != "" {
		if err := os.MkdirAll(f.cfg.Dir, 0o750); err != nil {
			return fmt.Errorf("servedsync: %w", err)
		}
	}
	f.initRules()
	f.written = f.cfg.Set.Load() // what LoadDisk read, or empty
	pctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.persistLoop(pctx) })
	defer func() {
		stop()
		wg.Wait()
	}()
	for attempt := 0; ctx.Err() == nil; {
		t0 := time.Now()
		err := f.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if time.Since(t0) > time.Minute {
			attempt = 0
		}
		f.fail("nats", err)
		sleep(ctx, backoff(attempt))
		attempt++
	}
	return nil
}

// event is what a consumer's reader hands the follower's loop.
type event struct {
	gen int
	msg jetstream.Msg
	err error
}

// session is one binding of the follower to the stream and the object
// store; it ends with an error when they must be bound again.
type session struct {
	obs    jetstream.ObjectStore
	deltas jetstream.Stream
	metaCh chan event
	dCh    chan event
	readers
	// The delta consumer: its reader's stop, and its generation (the
	// events of a replaced one are dropped).
	dStop func()
	dGen  int
	// dseq is the stream sequence of the last delta handled (or of the
	// last delta of the full form the deltas are read after); appliedSeq
	// the sequence the set was last brought to (a delta applied, a full
	// form loaded).
	dseq, appliedSeq uint64
	// latest is the newest description of the full object seen, and
	// latestChecked whether the deltas reached its sequence since.
	latest        *object
	latestChecked bool
	// loaded is the full form the set comes from (with the deltas after
	// it); failed one that did not load, or whose deltas did not follow.
	loaded, failed string
	// stuck: the deltas do not follow and the full form does not help;
	// the set stays as it is until a newer full form. retry: the last
	// full form did not arrive (NATS away): try again at the next tick.
	stuck, retry bool
	// staging is a full form being brought up to the stream's end (at
	// sequence stagingUntil) before it replaces the set.
	staging      *servedset.Snapshot
	stagingUntil uint64
	stagingFrom  string
	rulesPending *object
	// faultSeq is the newest delta counted as an error, so that a delta
	// met again in a replay is not counted twice.
	faultSeq uint64
}

// fault counts a problem with the delta at the current sequence, once.
func (f *Follower) fault(s *session, kind string, err error) {
	if s.dseq > s.faultSeq {
		s.faultSeq = s.dseq
		f.fail(kind, fmt.Errorf("stream sequence %d: %w", s.dseq, err))
	}
}

// readers are the goroutines that read the consumers.
type readers struct {
	wg    sync.WaitGroup
	stops []func()
}

// start reads it into ch, tagging each message with gen, until the
// returned function (or close) stops it.
func (r *readers) start(it jetstream.MessagesContext, gen int, ch chan<- event) (stop func()) {
	done := make(chan struct{})
	r.wg.Go(func() {
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			select {
			case ch <- event{gen: gen, msg: m, err: err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			it.Stop()
			close(done)
		})
	}
	r.stops = append(r.stops, stop)
	return stop
}

// close stops every reader and waits for them.
func (r *readers) close() {
	for _, stop := range r.stops {
		stop()
	}
	r.wg.Wait()
}

func (f *Follower) session(ctx context.Context) error {
	s := &session{metaCh: make(chan event, 16), dCh: make(chan event, 256)}
	defer s.readers.close()
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if s.obs, err = f.cfg.JS.ObjectStore(bctx, bus.ServedBucket); err != nil {
		return fmt.Errorf("binding object store %s: %w", bus.ServedBucket, err)
	}
	if s.deltas, err = f.cfg.JS.Stream(bctx, bus.ServedStream); err != nil {
		return fmt.Errorf("binding stream %s: %w", bus.ServedStream, err)
	}
	cons, err := f.cfg.JS.OrderedConsumer(bctx, objectStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{metaSubjects},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		NamePrefix:     f.consumerName("meta"),
	})
	if err != nil {
		return fmt.Errorf("reading the descriptions of %s: %w", bus.ServedBucket, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(16))
	if err != nil {
		return fmt.Errorf("reading the descriptions of %s: %w", bus.ServedBucket, err)
	}
	s.readers.start(it, 0, s.metaCh)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-s.metaCh:
			if ev.err != nil {
				return fmt.Errorf("reading the descriptions of %s: %w", bus.ServedBucket, ev.err)
			}
			err = f.onMeta(ctx, s, ev.msg)
		case ev := <-s.dCh:
			if ev.gen != s.dGen {
				continue // from a consumer replaced since
			}
			if ev.err != nil {
				return fmt.Errorf("reading stream %s: %w", bus.ServedStream, ev.err)
			}
			err = f.onDelta(ctx, s, ev.msg)
		case <-tick.C:
			if s.retry || time.Since(lastCheck) >= f.cfg.CheckEvery {
				lastCheck = time.Now()
				err = f.check(ctx, s)
			}
		}
		if err != nil {
			return err
		}
	}
}

// consumerName is a unique name prefix for a consumer of the follower.
func (f *Follower) consumerName(what string) string {
	return f.cfg.Name + "-" + what + "-" + rand.Text()[:12]
}

// startDeltas reads the deltas from stream sequence from on, in place of
// the consumer before.
func (f *Follower) startDeltas(ctx context.Context, s *session, from uint64) error {
	if s.dStop != nil {
		s.dStop()
		s.dStop = nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := f.cfg.JS.OrderedConsumer(ctx, bus.ServedStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.ServedDeltaSubject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		NamePrefix:     f.consumerName("delta"),
	})
	if err != nil {
		return fmt.Errorf("reading stream %s from %d: %w", bus.ServedStream, from, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(256, 8<<20))
	if err != nil {
		return fmt.Errorf("reading stream %s from %d: %w", bus.ServedStream, from, err)
	}
	s.dGen++
	s.dseq = from - 1
	s.dStop = s.readers.start(it, s.dGen, s.dCh)
	return nil
}

// onMeta handles a new description of an object.
func (f *Follower) onMeta(ctx context.Context, s *session, m jetstream.Msg) error {
	o, err := parseMeta(m.Data())
	if err != nil {
		f.fail("meta", err)
		return nil
	}
	if o.Deleted {
		return nil
	}
	switch o.Name {
	case RulesObject:
		f.onRules(ctx, s, o)
	case FullObject:
		return f.onFull(ctx, s, o)
	}
	return nil
}

// onFull handles a description of the full object: the first binds the
// deltas; a later one helps a follower that is stuck, or stands for a
// Replace on the central that no delta follows.
func (f *Follower) onFull(ctx context.Context, s *session, o object) error {
	s.latest, s.latestChecked = &o, false
	switch {
	case s.dStop == nil:
		return f.bind(ctx, s, o)
	case (s.stuck || s.retry) && o.NUID != s.failed:
		return f.rebuild(ctx, s, o)
	case s.staging == nil:
		return f.reached(ctx, s)
	}
	return nil
}

// bind starts reading the deltas after the full form o, loading it first
// unless the set already is it or is newer.
func (f *Follower) bind(ctx context.Context, s *session, o object) error {
	cur := f.cfg.Set.Load().Serial()
	switch {
	case cur == o.Serial:
		s.loaded = o.NUID
		s.appliedSeq, s.latestChecked = o.Seq, true
		return f.startDeltas(ctx, s, o.Seq+1)
	case cur != 0 && servedset.SerialLess(o.Serial, cur):
		// The set from disk is newer than the full form: the deltas after
		// it lead to the set's serial, and on from there.
		s.appliedSeq, s.latestChecked = o.Seq, true
		return f.startDeltas(ctx, s, o.Seq+1)
	}
	return f.rebuild(ctx, s, o)
}

// reached compares the set with the newest full form once the deltas
// reached the full form's sequence: if no delta after that sequence
// changed the set, the set must be the full form; if it is not, the
// central replaced its set (no delta leads there), or messages that are
// not deltas moved the stream on, and the full form is loaded.
func (f *Follower) reached(ctx context.Context, s *session) error {
	l := s.latest
	if l == nil || s.latestChecked || s.dseq < l.Seq {
		return nil
	}
	s.latestChecked = true
	if s.appliedSeq <= l.Seq && l.Serial != f.cfg.Set.Load().Serial() && l.NUID != s.failed {
		return f.rebuild(ctx, s, *l)
	}
	return nil
}

// onDelta handles one message of the delta stream.
func (f *Follower) onDelta(ctx context.Context, s *session, m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil {
		f.fail("delta_decode", err)
		return nil
	}
	s.dseq = md.Sequence.Stream
	cur := f.cfg.Set.Load()
	if s.staging != nil {
		cur = s.staging
	}
	if from, to, ok := deltaSerials(m.Headers()); ok && from != cur.Serial() && !servedset.SerialLess(cur.Serial(), to) {
		f.m.skipped.Inc()
		return f.afterDelta(ctx, s, md)
	}
	d, err := servedset.UnmarshalDelta(m.Data())
	if err == nil {
		from, to, ok := deltaSerials(m.Headers())
		switch {
		case d.From == 0:
			err = fmt.Errorf("a full form (serial %d) on the delta subject", d.To)
		case ok && (from != d.From || to != d.To):
			err = fmt.Errorf("headers say %d→%d, the delta %d→%d", from, to, d.From, d.To)
		}
	}
	if err != nil {
		f.fault(s, "delta_decode", err)
		if s.staging != nil || s.stuck {
			return f.afterDelta(ctx, s, md) // not a step of the chain
		}
		return f.recover(ctx, s, true)
	}
	switch {
	case d.From == cur.Serial():
	case !servedset.SerialLess(cur.Serial(), d.To):
		f.m.skipped.Inc()
		return f.afterDelta(ctx, s, md)
	default:
		f.fault(s, "gap", fmt.Errorf("delta %d→%d does not follow serial %d", d.From, d.To, cur.Serial()))
		return f.recover(ctx, s, false)
	}
	if s.staging != nil {
		var next *servedset.Snapshot
		if next, err = s.staging.Apply(d); err == nil {
			s.staging = next
		}
	} else {
		err = f.cfg.Set.Apply(d)
	}
	if err != nil {
		f.fault(s, "delta_apply", err)
		if s.staging != nil {
			// Not applied to the full form either: not a step of the chain
			// (if it was one, the next delta will not follow).
			return f.afterDelta(ctx, s, md)
		}
		return f.recover(ctx, s, false)
	}
	f.m.deltas.Inc()
	if s.staging == nil {
		s.stuck = false // back on the chain
		s.appliedSeq = s.dseq
		f.changed()
	}
	return f.afterDelta(ctx, s, md)
}

func (f *Follower) afterDelta(ctx context.Context, s *session, md *jetstream.MsgMetadata) error {
	if s.staging != nil && (md.NumPending == 0 || md.Sequence.Stream >= s.stagingUntil) {
		f.swap(s)
	}
	if s.staging == nil {
		return f.reached(ctx, s)
	}
	return nil
}

// recover answers a delta that does not follow, does not decode or does
// not apply: with the full form, unless that cannot help.
func (f *Follower) recover(ctx context.Context, s *session, garbage bool) error {
	if s.staging != nil {
		// The deltas after the full form do not lead to the stream's end:
		// some are missing. Keep the set until a newer full form.
		f.log.Warn("the deltas after the full form do not follow; keeping the served set until a newer full form",
			"serial", f.cfg.Set.Load().Serial(), "stream_seq", s.dseq)
		s.failed, s.staging, s.stuck = s.stagingFrom, nil, true
		return nil
	}
	if s.stuck {
		return nil // waiting for a newer full form already
	}
	o, err := f.fullInfo(ctx, s)
	if err != nil {
		f.fail("full_fetch", err)
		s.retry = true
		return nil
	}
	switch {
	case garbage && o.NUID == s.loaded:
		return nil // noise: the set is still this full form and the deltas after it
	case o.NUID == s.failed:
		s.stuck = true
		return nil
	}
	return f.rebuild(ctx, s, o)
}

// fullInfo reads the description of the full object now.
func (f *Follower) fullInfo(ctx context.Context, s *session) (object, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := s.obs.GetInfo(ctx, FullObject)
	if err != nil {
		return object{}, fmt.Errorf("reading the description of %s: %w", FullObject, err)
	}
	return objectOf(info)
}

// rebuild loads the full form o and reads the deltas after it. When the
// stream holds deltas after it, they are applied to the full form before
// it replaces the set, so that the set never goes back to an older state.
func (f *Follower) rebuild(ctx context.Context, s *session, o object) error {
	t0 := time.Now()
	data, err := f.fetch(ctx, o)
	if err != nil {
		f.fail("full_fetch", err)
		if errors.Is(err, errDamaged) {
			s.failed, s.stuck = o.NUID, true
		} else {
			s.retry = true
		}
		return nil
	}
	snap, err := servedset.ReadFull(data)
	if err == nil && snap.Serial() != o.Serial {
		err = fmt.Errorf("its description says serial %d, the form %d", o.Serial, snap.Serial())
	}
	if err != nil {
		f.fail("full_decode", fmt.Errorf("full form %s: %w", o.NUID, err))
		s.failed, s.stuck = o.NUID, true
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := s.deltas.Info(ictx)
	cancel()
	last := o.Seq
	if err == nil {
		last = info.State.LastSeq
	}
	f.m.fulls.Inc()
	s.loaded, s.stuck, s.retry = o.NUID, false, false
	if s.latest != nil && s.latest.NUID == o.NUID {
		s.latestChecked = true
	}
	if last <= o.Seq {
		s.staging, s.appliedSeq = nil, o.Seq
		f.replace(snap)
	} else {
		s.staging, s.stagingUntil, s.stagingFrom = snap, last, o.NUID
	}
	f.log.Info("served set full form loaded", "serial", o.Serial, "zones", snap.Len(), "bytes", o.Size,
		"stream_seq", o.Seq, "replaying_to", last, "took", time.Since(t0).Round(time.Millisecond))
	if s.dStop == nil || s.dseq != o.Seq {
		return f.startDeltas(ctx, s, o.Seq+1)
	}
	return nil
}

// swap puts the staged full form, now at the stream's end, in place.
func (f *Follower) swap(s *session) {
	f.replace(s.staging)
	s.staging, s.appliedSeq = nil, s.dseq
}

func (f *Follower) replace(snap *servedset.Snapshot) {
	f.cfg.Set.Replace(snap)
	f.changed()
}

// changed records a change of the set and asks for it to be kept on disk.
func (f *Follower) changed() {
	snap := f.cfg.Set.Load()
	f.applied.Store(time.Now().UnixNano())
	f.m.serial.Set(float64(snap.Serial()))
	f.m.zones.Set(float64(snap.Len()))
	f.m.applied.SetToCurrentTime()
	select {
	case f.persist <- struct{}{}:
	default:
	}
}

// check looks at the stream and the full object: a stream that went back
// (deleted and made again) binds the follower again; a full form the
// consumers did not tell of is handled as if they had.
func (f *Follower) check(ctx context.Context, s *session) error {
	if s.rulesPending != nil {
		f.onRules(ctx, s, *s.rulesPending)
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := s.deltas.Info(ictx)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("stream %s is gone: %w", bus.ServedStream, err)
	case err != nil:
		f.fail("nats", err)
		return nil
	case s.dStop != nil && info.State.LastSeq < s.dseq:
		return fmt.Errorf("stream %s went back from sequence %d to %d", bus.ServedStream, s.dseq, info.State.LastSeq)
	}
	o, err := f.fullInfo(ctx, s)
	if err != nil {
		if !errors.Is(err, jetstream.ErrObjectNotFound) {
			f.fail("nats", err)
		}
		return nil
	}
	if s.latest != nil && o.NUID == s.latest.NUID && !s.stuck && !s.retry {
		return nil
	}
	return f.onFull(ctx, s, o)
}

// onRules writes the rules object o to RulesFile when it differs from the
// rules there; a failure is tried again at the next check.
func (f *Follower) onRules(ctx context.Context, s *session, o object) {
	s.rulesPending = nil
	if f.cfg.RulesFile == "" || o.Digest == f.rulesDigest || (o.Size == 0 && f.rulesIsDefault) {
		return
	}
	data, err := f.fetch(ctx, o)
	if err == nil {
		if len(data) == 0 {
			data = f.cfg.DefaultRules
		}
		if len(data) == 0 {
			err = os.Remove(f.cfg.RulesFile)
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		} else {
			err = writeFile(f.cfg.RulesFile, data, 0o644)
		}
	}
	if err != nil {
		f.fail("rules", err)
		s.rulesPending = &o
		return
	}
	f.rulesDigest, f.rulesIsDefault = o.Digest, o.Size == 0
	f.m.rules.Inc()
	f.log.Info("classification rules written", "file", f.cfg.RulesFile, "bytes", len(data), "shipped", o.Size == 0)
	if f.cfg.OnRules != nil {
		f.cfg.OnRules()
	}
}

// initRules reads what RulesFile holds, so that rules the central has not
// changed are not written again.
func (f *Follower) initRules() {
	if f.cfg.RulesFile == "" {
		return
	}
	b, err := os.ReadFile(f.cfg.RulesFile)
	if err != nil {
		f.rulesIsDefault = len(f.cfg.DefaultRules) == 0 && errors.Is(err, os.ErrNotExist)
		return
	}
	f.rulesDigest = digestOf(b)
	f.rulesIsDefault = len(f.cfg.DefaultRules) > 0 && bytes.Equal(b, f.cfg.DefaultRules)
}

// errDamaged is wrapped by the errors of an object that arrived whole but
// is not what its description says.
var errDamaged = errors.New("object does not match its description")

// fetch reads the chunks of object o with a consumer of its own, and
// checks their size and digest.
func (f *Follower) fetch(ctx context.Context, o object) ([]byte, error) {
	if o.Size == 0 {
		if o.Digest != emptyDigest {
			return nil, fmt.Errorf("%s: %w: empty, digest %s", o.Name, errDamaged, o.Digest)
		}
		return []byte{}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := f.cfg.JS.OrderedConsumer(cctx, objectStream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{chunkSubjects + o.NUID},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
		NamePrefix:        f.consumerName("object"),
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.Name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(32))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.Name, err)
	}
	defer it.Stop()
	buf := make([]byte, 0, o.Size)
	h := sha256.New()
	for n := range o.Chunks {
		cctx, cancel := context.WithTimeout(ctx, chunkWait)
		m, err := it.Next(jetstream.NextContext(cctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("reading chunk %d of %d of %s: %w", n+1, o.Chunks, o.Name, err)
		}
		if uint64(len(buf)+len(m.Data())) > o.Size {
			return nil, fmt.Errorf("%s: %w: more than %d bytes", o.Name, errDamaged, o.Size)
		}
		buf = append(buf, m.Data()...)
		h.Write(m.Data())
	}
	if uint64(len(buf)) != o.Size {
		return nil, fmt.Errorf("%s: %w: %d bytes, not %d", o.Name, errDamaged, len(buf), o.Size)
	}
	if d := jetstream.GetObjectDigestValue(h); d != o.Digest {
		return nil, fmt.Errorf("%s: %w: digest %s, not %s", o.Name, errDamaged, d, o.Digest)
	}
	return buf, nil
}

func (f *Follower) fail(kind string, err error) {
	f.m.errors.WithLabelValues(kind).Inc()
	f.thr.warn(kind, "servedsync follower", "err", err)
}
