package app

import (
	"context"
	"log/slog"
	"time"
)

// A component is one part of serve: the database, the spool, the pipeline,
// the DNS sinkhole, the API... Serve starts its components in order and, at
// the end, stops those that started in reverse order, so that nothing can
// stop in another order than it started (the API stops accepting before
// the pipeline drains, the pipeline drains before the database closes). A
// role (single, sensor, central) is a choice of components.
type component struct {
	// name is what its start is logged as ("database open"); "" logs
	// nothing (the component logs what it started itself).
	name string
	// stopped is what its stop is logged as ("database closed").
	stopped string
	// start starts it and returns what stops it; nil: nothing to stop. A
	// stop returned with an error is still called at the end.
	start func(ctx context.Context) (stop func() error, err error)
}

// lifecycle starts components and stops the started ones in reverse
// order, logging how long each step took.
type lifecycle struct {
	log   *slog.Logger
	stops []func()
}

// run starts c.
func (l *lifecycle) run(ctx context.Context, c component) error {
	t0 := time.Now()
	stop, err := c.start(ctx)
	if stop != nil {
		l.stops = append(l.stops, func() {
			t0 := time.Now()
			err := stop()
			if c.stopped == "" {
				return // the stop logs itself
			}
			if err != nil {
				l.log.Error(c.stopped, "err", err)
			}
			l.log.Info(c.stopped, "took", time.Since(t0).Round(time.Microsecond))
		})
	}
	if err == nil && c.name != "" {
		l.log.Info(c.name, "took", time.Since(t0).Round(time.Microsecond))
	}
	return err
}

// stop stops what started, last first.
func (l *lifecycle) stop() {
	for i := len(l.stops) - 1; i >= 0; i-- {
		l.stops[i]()
	}
	l.stops = nil
}

// loop is the start of a component that is a goroutine running f until
// its context ends: stopping it ends the context and waits for f.
func loop(f func(ctx context.Context)) func(context.Context) (func() error, error) {
	return func(ctx context.Context) (func() error, error) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); f(ctx) }()
		return func() error { cancel(); <-done; return nil }, nil
	}
}

// within adapts a Shutdown(ctx) method to a stop with a deadline.
func within(d time.Duration, shutdown func(context.Context) error) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return shutdown(ctx)
	}
}
