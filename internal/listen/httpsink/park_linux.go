package httpsink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/takedown-project/takedown/internal/listen/sink"
)

// parkAfter is how long a connection waits for a request with its
// goroutine before it is parked: a keep-alive client that asks again at
// once (or a new connection whose request is on its way) costs no more
// than without a parker.
const parkAfter = 5 * time.Millisecond

// sweepEvery is how often the parker closes parked connections whose
// deadline has passed: they time out up to this much late.
const sweepEvery = 100 * time.Millisecond

// parker holds idle plain-HTTP connections without a goroutine each: a
// connection with nothing to read is registered in the parker's epoll
// instance (one-shot) and its goroutine ends; when the client sends (or
// closes) the parker starts a goroutine that carries on where the old one
// stopped, and a sweep closes those whose deadline passes first.
//
// Whoever removes a connection from the table owns it: the parker on
// readiness, the sweep on a deadline, Shutdown on closing. A connection's
// table entry carries a generation, as does its epoll event, so an event
// of a connection that is gone is not taken for one of a new connection
// that got the same descriptor number.
type parker struct {
	s     *Server
	f     *os.File        // the epoll instance, in the runtime's poller
	rc    syscall.RawConn // of f
	epfd  int             // f's descriptor: valid until closed is set
	epoch time.Time       // of the deadlines in the heap
	done  chan struct{}   // closed when run returns

	mu     sync.Mutex
	closed bool      // Shutdown took everything; park no more
	gen    uint32    // of the last park
	tab    []*h1conn // parked connections by descriptor
	heap   []*h1conn // the same, by deadline (a min-heap)
	ctlFn  func(uintptr)
	ctlOp  int             // ctl's argument,
	ctlEv  unix.EpollEvent // …its event,
	ctlFd  int32           // …the descriptor it saw
	ctlErr error           // …and its result
}

// parkState is what a connection needs to be parked.
type parkState struct {
	raw     syscall.RawConn // of the TCP connection; nil: never parked
	rawDone bool            // raw has been looked for
	readFn  func(uintptr) bool
	rn      int   // result of readFn
	rerr    error // …
	writeFn func(uintptr) bool
	wb      []byte // what writeFn sends
	wn      int    // how much of it it sent
	// Under parker.mu:
	inEpoll bool  // registered once: later parks modify
	fd      int32 // its descriptor
	gen     uint32
	due     int64 // until, in nanoseconds since parker.epoch
	hidx    int   // its index in parker.heap
}

// newParker makes the epoll instance and starts the parker's goroutine.
func newParker(s *Server) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	// A non-blocking descriptor goes into the runtime's poller: the
	// parker's goroutine waits there, not in a thread blocked in
	// epoll_wait, and Close wakes it.
	f := os.NewFile(uintptr(epfd), "httpsink-parker")
	p := &parker{s: s, f: f, epfd: epfd, epoch: time.Now(), done: make(chan struct{})}
	p.ctlFn = p.ctl
	if err := f.SetReadDeadline(time.Now().Add(sweepEvery)); err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll descriptor is not pollable: %w", err)
	}
	if p.rc, err = f.SyscallConn(); err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	go p.run()
	return p, nil
}

// run waits for parked connections to become readable, starts a
// goroutine for each, and sweeps the expired ones, until stop.
func (p *parker) run() {
	defer close(p.done)
	var (
		evs   = make([]unix.EpollEvent, 256)
		n     int
		err   error
		ready []*h1conn
	)
	wait := func(fd uintptr) bool {
		n, err = unix.EpollWait(int(fd), evs, 0)
		if err == unix.EINTR {
			n, err = 0, nil
			return true // look again before waiting
		}
		return n > 0 || err != nil
	}
	next := time.Now().Add(sweepEvery)
	for {
		rerr := p.rc.Read(wait)
		if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
			return // closed by stop
		}
		if rerr == nil && err != nil {
			p.s.log.Error("parker: epoll_wait failed; parked connections wait for the sweep", "err", err)
			n = 0
			time.Sleep(sweepEvery)
		}
		if rerr == nil && n > 0 {
			p.mu.Lock()
			for _, ev := range evs[:n] {
				if h := p.take(ev.Fd, uint32(ev.Pad)); h != nil {
					ready = append(ready, h)
				}
			}
			p.mu.Unlock()
			for i, h := range ready {
				p.s.work.run(job{h: h})
				ready[i] = nil
			}
			ready = ready[:0]
		}
		if now := time.Now(); !now.Before(next) {
			p.sweep(now)
			next = now.Add(sweepEvery)
			p.f.SetReadDeadline(next) //nolint:errcheck // pollable: checked in newParker
		}
	}
}

// park hands h to the parker; false leaves it with the caller (the
// server is shutting down, or epoll refused the descriptor).
func (p *parker) park(h *h1conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	gen := p.gen + 1
	p.ctlOp = unix.EPOLL_CTL_ADD
	if h.inEpoll {
		p.ctlOp = unix.EPOLL_CTL_MOD
	}
	p.ctlEv = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Pad: int32(gen)}
	// Control keeps the descriptor open (and its number ours) meanwhile,
	// even if Shutdown closes the connection.
	if err := h.raw.Control(p.ctlFn); err != nil || p.ctlErr != nil {
		return false
	}
	p.gen = gen
	h.inEpoll, h.fd, h.gen = true, p.ctlFd, gen
	h.due = int64(h.until.Sub(p.epoch))
	fd := int(h.fd)
	if fd >= len(p.tab) {
		p.tab = append(p.tab, make([]*h1conn, max(fd+1-len(p.tab), len(p.tab)))...)
	}
	if old := p.tab[fd]; old != nil {
		// Its descriptor was closed under it: end it.
		p.unpark(old)
		go old.end(net.ErrClosed)
	}
	p.tab[fd] = h
	h.hidx = len(p.heap)
	p.heap = append(p.heap, h)
	p.up(h.hidx)
	p.s.m.parked.Inc()
	return true
}

// ctl registers the descriptor fd as ctlOp and ctlEv say.
func (p *parker) ctl(fd uintptr) {
	p.ctlFd = int32(fd)
	p.ctlEv.Fd = int32(fd)
	err := unix.EpollCtl(p.epfd, p.ctlOp, int(fd), &p.ctlEv)
	switch {
	case err == unix.EEXIST && p.ctlOp == unix.EPOLL_CTL_ADD:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &p.ctlEv)
	case err == unix.ENOENT && p.ctlOp == unix.EPOLL_CTL_MOD:
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &p.ctlEv)
	}
	p.ctlErr = err
}

// take removes and returns the connection an event names, if it is
// still parked there.
func (p *parker) take(fd int32, gen uint32) *h1conn {
	if fd < 0 || int(fd) >= len(p.tab) {
		return nil
	}
	h := p.tab[fd]
	if h == nil || h.gen != gen {
		return nil // stale: that connection is gone, or parked again
	}
	p.unpark(h)
	return h
}

// unpark removes h from the table and the heap.
func (p *parker) unpark(h *h1conn) {
	p.tab[h.fd] = nil
	i := h.hidx
	last := len(p.heap) - 1
	if i != last {
		p.swap(i, last)
	}
	p.heap[last] = nil
	p.heap = p.heap[:last]
	if i != last && !p.down(i) {
		p.up(i)
	}
	h.hidx = -1
	p.s.m.parked.Dec()
}

// sweep ends the connections whose deadline has passed.
func (p *parker) sweep(now time.Time) {
	t := int64(now.Sub(p.epoch))
	var expired []*h1conn
	p.mu.Lock()
	for len(p.heap) > 0 && p.heap[0].due <= t {
		h := p.heap[0]
		p.unpark(h)
		expired = append(expired, h)
	}
	p.mu.Unlock()
	if len(expired) > 0 {
		// Recording them may take a while: not in the parker's way.
		go func() {
			for _, h := range expired {
				h.end(os.ErrDeadlineExceeded)
			}
		}()
	}
}

// closeAll stops parking and returns every parked connection, for
// Shutdown to end. It is safe on a nil parker.
func (p *parker) closeAll() []*h1conn {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	all := make([]*h1conn, 0, len(p.heap))
	for len(p.heap) > 0 {
		h := p.heap[len(p.heap)-1]
		p.unpark(h)
		all = append(all, h)
	}
	return all
}

// stop ends the parker's goroutine and closes the epoll instance, after
// closeAll. It is safe on a nil parker.
func (p *parker) stop() {
	if p == nil {
		return
	}
	p.closeAll() // nothing parks after it, so epfd is unused
	p.f.Close()
	<-p.done
}

// count returns the number of parked connections.
func (p *parker) count() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.heap)
}

// The heap of parked connections by deadline.

func (p *parker) less(i, j int) bool { return p.heap[i].due < p.heap[j].due }

func (p *parker) swap(i, j int) {
	p.heap[i], p.heap[j] = p.heap[j], p.heap[i]
	p.heap[i].hidx, p.heap[j].hidx = i, j
}

func (p *parker) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !p.less(j, i) {
			break
		}
		p.swap(i, j)
		j = i
	}
}

func (p *parker) down(i0 int) bool {
	i, n := i0, len(p.heap)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && p.less(r, j) {
			j = r
		}
		if !p.less(j, i) {
			break
		}
		p.swap(i, j)
		i = j
	}
	return i > i0
}

// readWake reads the first bytes of a request by h.until: into the
// connection's buffer when it takes one for the read (h.x is set then),
// else into sc.wake.
//
// A read that will find its bytes at once or soon (a keep-alive client
// asking again, a new connection's first request) takes a buffer, so that
// a whole request head comes in one read(2); a connection that stays
// quiet gives it back and is parked.
func (h *h1conn) readWake(resumed bool) (int, error) {
	p := h.s.park
	// A TLS connection is never parked: crypto/tls may hold a record
	// already read from the socket, which epoll cannot see.
	if p == nil || h.sc.p != protoHTTP || h.c != net.Conn(h.sc) {
		h.c.SetReadDeadline(h.until) //nolint:errcheck
		return h.c.Read(h.sc.wake[:])
	}
	if resumed {
		// The deadline is h.until, set before parking.
		h.acquire()
		if n, err, again := h.tryRead(); !again {
			return n, err
		}
		h.release()
	} else {
		h.acquire()
		linger := time.Now().Add(parkAfter)
		if !linger.Before(h.until) {
			h.c.SetReadDeadline(h.until) //nolint:errcheck
			return h.c.Read(h.x.buf)
		}
		h.c.SetReadDeadline(linger) //nolint:errcheck
		n, err := h.c.Read(h.x.buf)
		if n > 0 || !isTimeout(err) {
			if n > 0 && h.first {
				// The rest of the first head is due by h.until (later
				// ones: serve sets their deadline).
				h.c.SetReadDeadline(h.until) //nolint:errcheck
			}
			return n, err
		}
		h.release()
		h.c.SetReadDeadline(h.until) //nolint:errcheck
	}
	if h.parkable() && p.park(h) {
		return 0, errParked
	}
	return h.c.Read(h.sc.wake[:])
}

// parkable finds the descriptor of a plain connection (the first time it
// is about to be parked) and reports whether it has one.
func (h *h1conn) parkable() bool {
	if !h.rawDone {
		h.rawDone = true
		h.raw = rawConnOf(h.sc.Conn)
		h.readFn = h.rawRead
	}
	return h.raw != nil
}

// rawConnOf finds the TCP connection under the sink package's.
func rawConnOf(c net.Conn) syscall.RawConn {
	tc := sink.TCPConn(c)
	if tc == nil {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// tryRead reads what is there into the buffer without waiting; again means
// there was nothing. The connection's read deadline applies.
func (h *h1conn) tryRead() (n int, err error, again bool) {
	h.rn, h.rerr = 0, nil
	if err := h.raw.Read(h.readFn); err != nil {
		return 0, err, false // closed, or past the deadline
	}
	switch {
	case h.rerr == unix.EAGAIN || h.rerr == unix.EINTR:
		return 0, nil, true
	case h.rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", h.rerr)}, false
	case h.rn == 0:
		return 0, io.EOF, false
	}
	return h.rn, nil, false
}

// rawRead is one read(2), whatever it gives.
func (h *h1conn) rawRead(fd uintptr) bool {
	h.rn, h.rerr = unix.Read(int(fd), h.x.buf)
	if h.rerr != nil {
		h.rn = 0
	}
	return true
}

// tryWrite makes one send of b on a plain connection, one that does
// not wait for room in the socket, and returns how many bytes it sent.
func (h *h1conn) tryWrite(b []byte) int {
	if h.sc.p != protoHTTP || h.c != net.Conn(h.sc) || !h.parkable() {
		return 0
	}
	if h.writeFn == nil {
		h.writeFn = h.rawWrite
	}
	h.wb, h.wn = b, 0
	err := h.raw.Write(h.writeFn)
	h.wb = nil
	if err != nil {
		return 0 // closed, or past the deadline: the caller's write says
	}
	return h.wn
}

// rawWrite is one send of h.wb.
func (h *h1conn) rawWrite(fd uintptr) bool {
	if n, errno := send(int(fd), h.wb, h.last); errno == 0 {
		h.wn = int(n)
	}
	return true
}
