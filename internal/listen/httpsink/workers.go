package httpsink

import (
	"sync"
	"sync/atomic"
	"time"
)

// defaultWorkerIdle is how long a worker goroutine waits for the next
// connection before it ends (Server.workerIdle: shorter in the tests, which
// wait for the goroutine count to return to its baseline).
const defaultWorkerIdle = 5 * time.Second

// job is a connection for a worker: a new one (sc), one the parker found
// readable (h), or one a loop handed over (h, carry).
type job struct {
	sc    *sinkConn
	h     *h1conn
	carry bool
}

// workers runs connections on goroutines that stay for the next one. A
// goroutine that served a request has grown its stack to what serving
// needs; a new goroutine per connection would grow (copy) it again each
// time, which cost a tenth of the CPU of a Connection: close load.
type workers struct {
	s    *Server
	jobs chan job      // unbuffered: a send succeeds only if a worker waits
	quit chan struct{} // closed by stop
	wg   sync.WaitGroup
	once sync.Once
	idle atomic.Int64 // workers waiting for a job
}

func newWorkers(s *Server) *workers {
	return &workers{s: s, jobs: make(chan job), quit: make(chan struct{})}
}

// run hands j to a waiting worker, or starts one.
func (w *workers) run(j job) {
	select {
	case w.jobs <- j:
	default:
		w.wg.Add(1)
		go w.work(j)
	}
}

func (w *workers) work(j job) {
	defer w.wg.Done()
	t := time.NewTimer(w.s.workerIdle)
	defer t.Stop()
	for {
		switch {
		case j.carry:
			j.h.carry()
		case j.h != nil:
			j.h.resume()
		default:
			w.s.serve(j.sc)
		}
		t.Reset(w.s.workerIdle)
		w.idle.Add(1)
		select {
		case j = <-w.jobs:
			w.idle.Add(-1)
		case <-t.C:
			w.idle.Add(-1)
			return
		case <-w.quit:
			w.idle.Add(-1)
			return
		}
	}
}

// stop ends the waiting workers and waits for all of them; the caller has
// made sure that no connection is served any more.
func (w *workers) stop() {
	w.once.Do(func() { close(w.quit) })
	w.wg.Wait()
}
