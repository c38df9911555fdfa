package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// job is a callback handed to a worker.
type job struct {
	bot uint32
	at  int64
}

// Run sends the bots' live callbacks from Start until Duration has passed
// in real time, MaxCallbacks callbacks have started, every bot is cleaned
// or ctx ends, and waits for the callbacks in flight (each within
// Timeout). A bot calls at simulated times Start + Exp gaps; simulated
// time runs at Speed from the moment Run begins. When the workers are all
// busy a callback starts late and the lag is reported; nothing queues.
// Run returns nil when it stops at one of these bounds, also at the end of
// ctx.
func (s *Sim) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("sim: Run was called before")
	}
	s.ran = true
	s.mu.Unlock()

	cl := s.newClients()
	defer cl.tr.CloseIdleConnections()
	// Callbacks in flight finish when ctx ends, within their timeouts.
	netCtx := context.WithoutCancel(ctx)
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for j := range jobs {
				s.callback(netCtx, cl, j)
			}
		})
	}

	begin := time.Now()
	cb, errs, refused := s.tally.totals()
	s.mu.Lock()
	s.begin, s.base = begin, [3]int64{cb, errs, refused}
	s.mu.Unlock()
	simNow := s.simNow
	var stop time.Time
	if s.cfg.Duration > 0 {
		stop = begin.Add(s.cfg.Duration)
	}
	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	if s.cfg.Progress != nil {
		progWG.Go(func() { s.progress(progDone) })
	}
	s.log.Info("live run", "bots", s.pop.n, "speed", s.cfg.Speed, "concurrency", s.cfg.Concurrency,
		"start", time.Unix(0, s.start).UTC().Format(time.RFC3339))

	r := newRand(s.cfg.Seed, saltLive)
	h := s.initSchedule(s.start, 1<<63-1, r)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
loop:
	for len(h) > 0 {
		if s.cfg.MaxCallbacks > 0 && s.started.Load() >= s.cfg.MaxCallbacks {
			break
		}
		top := h[0]
		due := begin.Add(time.Duration(float64(top.at-s.start) / s.cfg.Speed))
		wake := due
		if !stop.IsZero() && stop.Before(wake) {
			wake = stop
		}
		if d := time.Until(wake); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break loop
			}
		}
		if ctx.Err() != nil || !stop.IsZero() && !time.Now().Before(stop) {
			break
		}
		h.pop()
		select {
		case jobs <- job{top.bot, top.at}:
		case <-ctx.Done():
			break loop
		}
		lag := int64(max(time.Since(due), 0))
		s.lag.Store(lag)
		if lag > s.maxLag.Load() {
			s.maxLag.Store(lag)
		}
		s.started.Add(1)
		if next := top.at + s.gap(r); next < s.cleanAt(top.bot) {
			h.push(entry{next, top.bot})
		}
	}
	close(jobs)
	wg.Wait()
	// Every callback before the earliest one not started has been: when
	// the run was late, that is where simulated time got to.
	reached := simNow(time.Now())
	if len(h) > 0 && h[0].at < reached {
		reached = h[0].at
	}
	s.reached.Store(reached)
	close(progDone)
	progWG.Wait()
	st := s.Stats()
	s.log.Info("live run done", "started", st.Started, "callbacks", st.Callbacks, "errors", st.Errors,
		"took", time.Since(begin).Round(time.Millisecond).String(), "max_lag", time.Duration(s.maxLag.Load()).String())
	return nil
}

// callback runs one callback and counts what the sinkhole got.
func (s *Sim) callback(ctx context.Context, cl *clients, j job) {
	c := s.plan(j.bot, j.at)
	o := s.execute(ctx, cl, c)
	if o.events > 0 {
		s.tally.record(c.bot, c.at, o.events, o.withID)
		st := &s.perSensor[int(c.bot)%len(s.perSensor)]
		st.callbacks.Add(1)
		st.events.Add(int64(o.events))
	}
	if o.refused {
		s.tally.refuse(c.bot)
	}
	if o.err != nil {
		s.tally.fail(c.bot)
		// One line per family; the rest are counted.
		if !s.firstErr[c.fam].Swap(true) {
			s.log.Warn("callback failed; further failures are only counted", "family", familyNames[c.fam], "err", o.err)
		}
	}
}

// Stats is the progress of a live run.
type Stats struct {
	// Started counts the live callbacks started, Callbacks those the
	// sinkhole got, Errors those that failed, Refused those it refused
	// (the backfill's are in the Truth only).
	Started, Callbacks, Errors, Refused int64
	// Rate is Callbacks per second of the run so far.
	Rate float64
	// Lag is how late the last callback started, MaxLag the worst.
	Lag, MaxLag time.Duration
	// Simulated is the simulated time now, Elapsed the real time since
	// Run began.
	Simulated time.Time
	Elapsed   time.Duration
}

// Stats returns the progress of Run; it may be called at any time.
func (s *Sim) Stats() Stats {
	cb, errs, refused := s.tally.totals()
	s.mu.Lock()
	begin, base := s.begin, s.base
	s.mu.Unlock()
	cb, errs, refused = cb-base[0], errs-base[1], refused-base[2]
	st := Stats{
		Started: s.started.Load(), Callbacks: cb, Errors: errs, Refused: refused,
		Lag: time.Duration(s.lag.Load()), MaxLag: time.Duration(s.maxLag.Load()),
	}
	now := time.Now()
	if !begin.IsZero() {
		st.Elapsed = now.Sub(begin)
		if st.Elapsed > 0 {
			st.Rate = float64(cb) / st.Elapsed.Seconds()
		}
	}
	st.Simulated = time.Unix(0, s.simNow(now)).UTC()
	return st
}

// simNow returns the simulated time at real time now: Start before Run
// begins, then Start + Speed × the time since.
func (s *Sim) simNow(now time.Time) int64 {
	s.mu.Lock()
	begin := s.begin
	s.mu.Unlock()
	if begin.IsZero() {
		return s.start
	}
	return s.start + int64(float64(now.Sub(begin))*s.cfg.Speed)
}

// progress writes a line every ProgressInterval and a last one when done
// closes.
func (s *Sim) progress(done <-chan struct{}) {
	t := time.NewTicker(s.cfg.ProgressInterval)
	defer t.Stop()
	line := func() {
		st := s.Stats()
		fmt.Fprintf(s.cfg.Progress, "simulate: %d callbacks (%.0f/s), %d errors, %d refused, lag %s (max %s), simulated %s, elapsed %s\n",
			st.Callbacks, st.Rate, st.Errors, st.Refused, st.Lag.Round(time.Millisecond), st.MaxLag.Round(time.Millisecond),
			st.Simulated.Format("2006-01-02 15:04:05Z"), st.Elapsed.Round(time.Second))
	}
	for {
		select {
		case <-t.C:
			line()
		case <-done:
			line()
			return
		}
	}
}
