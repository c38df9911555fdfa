package pipeline

import (
	"sync"
	"sync/atomic"

	"github.com/takedown-project/takedown/internal/idle"
)

// background runs the store writer's work on a thread of Linux's idle CPU
// class (package idle), one piece of work at a time, and inline instead
// while the writer is raised.
//
// Why: the writer's reads, decoding, enrichment and appends can wait while
// the sinks answer bots — the spool holds the difference — but not for ever.
// In the idle class a thread gets next to no CPU while other threads keep
// every CPU busy: a fresh-clone test run beside other work stored none of
// 124,770 events in 30 s. So the writer's lag decides (Pipeline.raise,
// looked at four times a second): past Config.MaxLag the idle thread is put
// back in the normal class at once, in the middle of its work (that takes
// CAP_SYS_NICE or an RLIMIT_NICE of 20; deploy/takedown.service grants the
// latter), and the work that follows runs on the writer's own goroutine, in
// the normal class, which needs no privilege at all. The scheduler then
// gives the writer a fair share of the CPUs beside the sinks' threads until
// the lag is below a quarter of MaxLag.
//
// The idle thread takes no lock that a sink or the monitor needs (writer.do
// says which work goes there): the kernel may keep it off the CPU for
// seconds at any instruction, and a sink waiting for a lock it holds would
// wait as long. Before, the whole writer ran there, spool reads included,
// and under a saturating load the sinks' appends stalled behind it.
type background struct {
	work chan func()
	done chan struct{}
	once sync.Once
	stop chan struct{}
	gone chan struct{}
	tid  atomic.Int64 // the idle thread's id; 0 until known
}

func newBackground() *background {
	b := &background{work: make(chan func()), done: make(chan struct{}), stop: make(chan struct{}), gone: make(chan struct{})}
	go func() {
		defer close(b.gone)
		idle.Run(func() {
			b.tid.Store(int64(idle.ThreadID()))
			for {
				select {
				case f := <-b.work:
					f()
					b.done <- struct{}{}
				case <-b.stop:
					return
				}
			}
		})
	}()
	return b
}

// do runs f on the idle thread, or inline when raised, and returns when f
// has returned.
func (b *background) do(raised bool, f func()) {
	if raised {
		f()
		return
	}
	b.work <- f
	<-b.done
}

// setRaised moves the idle thread to the normal class (raised) or back. It
// reports an error when the system does not allow it (no privilege): the
// work then waits for its next piece to run inline.
func (b *background) setRaised(raised bool) error {
	tid := int(b.tid.Load())
	if tid == 0 {
		return nil
	}
	if raised {
		return idle.RaiseThread(tid)
	}
	return idle.LowerThread(tid)
}

// close ends the idle thread.
func (b *background) close() {
	b.once.Do(func() { close(b.stop) })
	<-b.gone
}
