package sim

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// Backfill makes the history of the span before Start: the bots are
// infected at Start − span, call back and are cleaned as in a live run,
// and every callback the sinkhole would have served becomes the events
// its sinks would have recorded (see appendEvents), without any network
// traffic. Conficker lookups of names not in Domains["conficker"] are
// left out, as the sinkhole refuses them. The callbacks count in the
// truth under their simulated days; Run then goes on from Start with the
// bots still infected.
//
// send receives the events in time order, in batches of at most BatchSize
// that do not cross a UTC midnight; it must not keep the slice after it
// returns. Backfill must come before Run, once.
func (s *Sim) Backfill(ctx context.Context, span time.Duration, send func(context.Context, []event.Event) error) error {
	s.mu.Lock()
	switch {
	case s.ran || s.backfilled:
		s.mu.Unlock()
		return errors.New("sim: Backfill must come once, before Run")
	case span < 0:
		s.mu.Unlock()
		return fmt.Errorf("sim: backfill span %v is negative", span)
	}
	s.backfilled = true
	from := s.start - int64(span)
	s.origin.Store(from)
	s.mu.Unlock()
	if span == 0 {
		return nil
	}
	begin := time.Now()
	s.log.Info("backfill", "from", time.Unix(0, from).UTC().Format(time.RFC3339), "bots", s.pop.n)

	r := newRand(s.cfg.Seed, saltBackfill)
	h := s.initSchedule(from, s.start, r)
	batch := make([]event.Event, 0, BatchSize+2)
	var sent int64
	// flush sends the events before limit (ns) and keeps the others: a
	// POST a few milliseconds after its DNS query may come after the next
	// callbacks.
	flush := func(limit int64) error {
		sort.SliceStable(batch, func(i, j int) bool { return batch[i].Time.Before(batch[j].Time) })
		n := sort.Search(len(batch), func(i int) bool { return batch[i].Time.UnixNano() >= limit })
		if n == 0 {
			return nil
		}
		if err := send(ctx, batch[:n]); err != nil {
			return fmt.Errorf("sim: backfill: sending events: %w", err)
		}
		sent += int64(n)
		s.sent.Store(sent)
		batch = batch[:copy(batch, batch[n:])]
		clear(batch[len(batch):cap(batch)])
		return nil
	}
	lastLine := begin
	curDay := floorDiv(from, day)
	for i := 0; len(h) > 0; i++ {
		top := h.pop()
		if d := floorDiv(top.at, day); d != curDay {
			if err := flush(1<<63 - 1); err != nil {
				return err
			}
			curDay = d
		}
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if s.cfg.Progress != nil && time.Since(lastLine) >= s.cfg.ProgressInterval {
				lastLine = time.Now()
				done := float64(top.at-from) / float64(s.start-from)
				line := fmt.Sprintf("backfill: %d events sent, simulated %s, %.0f%%", sent, time.Unix(0, top.at).UTC().Format(time.DateOnly), 100*done)
				if el := time.Since(begin); done > 0.01 {
					line += fmt.Sprintf(", ETA %s", time.Duration(float64(el)*(1-done)/done).Round(time.Second))
				}
				fmt.Fprintln(s.cfg.Progress, line)
			}
		}
		s.reached.Store(top.at)
		c := s.plan(top.bot, top.at)
		if c.fam == famConficker && !s.seizedDGA[c.name] {
			s.tally.refuse(c.bot)
		} else {
			if len(batch)+2 > BatchSize {
				// Later callbacks come at top.at or after.
				if err := flush(top.at); err != nil {
					return err
				}
			}
			// The request follows within the same day, before Start.
			end := min((curDay+1)*day, s.start) - 1
			c.delay = max(min(c.delay, end-c.at), 0)
			n := len(batch)
			batch = s.appendEvents(batch, c)
			s.tally.record(c.bot, c.at, len(batch)-n, c.fam == famWaledac)
		}
		if next := top.at + s.gap(r); next < min(s.start, s.cleanAt(top.bot)) {
			h.push(entry{next, top.bot})
		}
	}
	if err := flush(1<<63 - 1); err != nil {
		return err
	}
	s.reached.Store(s.start)
	if s.cfg.Progress != nil {
		fmt.Fprintf(s.cfg.Progress, "backfill: %d events sent, took %s\n", sent, time.Since(begin).Round(time.Millisecond))
	}
	s.log.Info("backfill done", "events", sent, "took", time.Since(begin).Round(time.Millisecond).String())
	return nil
}
