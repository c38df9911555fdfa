//go:build linux

package httpsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/takedown-project/takedown/internal/listen/sink"
	"github.com/takedown-project/takedown/internal/procs"
)

// loops serve the plain-HTTP listeners the way nginx's workers do: each
// loop is a thread blocked in epoll_wait on an epoll instance of its own,
// which holds the loop's listening sockets (see loopListener) and the
// connections that loop accepted. A connection whose whole request has
// arrived is read, classified, recorded and answered on the loop's thread,
// with one read(2) and one send and no goroutine: no hand-off to the
// scheduler, no runtime poller. A bot's callback (connect, one small
// request, close) costs accept4, read, sendto, shutdown and close (see
// send).
//
// Whatever does not fit that, a head or body in several pieces, a chunked
// body, a response that does not go out at once, is handed to the
// goroutine path (serve), which reads it with its deadlines and limits as
// before: the connection leaves the loop for good. The loops' connections
// that wait for a request are timed out by a sweep, up to sweepEvery late.
//
// The system calls are raw, as the DNS readers' are: the runtime is not
// told when the loop blocks, so the loop keeps its P, and each loop lends
// the scheduler one (package procs). A signal (the runtime's preemption
// among them) ends epoll_wait with EINTR, and the loop yields there, so a
// stop-the-world does not wait for the next connection.
type loops struct {
	s    *Server
	ls   []*evloop
	lns  []*loopListener
	efd  int // eventfd, written once by stop: wakes every loop
	stop atomic.Bool
	wg   sync.WaitGroup
	once sync.Once
}

// loopListener is a listening address the loops accept on. Each loop has
// a socket of its own, bound with SO_REUSEPORT (the kernel spreads new
// connections over them by a hash of the client's address and port, and
// wakes only the loop whose socket got one), the first a duplicate of the
// net.Listener's, which is closed. A loop whose socket could not be bound
// shares the first, where loops are woken one at a time (EPOLLEXCLUSIVE).
// There is no stealing: a loop held up (by a slow Recorder, say) holds up
// the new connections of its socket.
type loopListener struct {
	l     *listener
	fds   []int          // by loop; -1 until opened
	local netip.AddrPort // the bound address, when it is not a wildcard
}

// evloop is one loop.
type evloop struct {
	s      *Server
	all    *loops
	idx    int // in all.ls
	epfd   int
	evs    []unix.EpollEvent
	tab    []*lconn    // the loop's connections by descriptor
	gen    int32       // of the last connection registered
	now    time.Time   // after the last epoll_wait
	paused []time.Time // per listener: out of the epoll set until then
	free   []*lconn    // closed connections, for the next ones
}

// maxFree bounds a loop's list of closed connections kept for reuse.
const maxFree = 256

// lconn is a connection a loop holds: its sinkConn and h1conn in one
// allocation.
type lconn struct {
	sc      sinkConn
	h       h1conn
	fd      int
	gen     int32
	inEpoll bool
	ln      *loopListener
}

// Epoll event tags (EpollEvent.Pad): connections carry their generation,
// which is positive; the wake-up and the listeners are negative.
const (
	padWake     = -1
	padListener = -2 // listener i is padListener - i
)

// acceptBatch bounds the connections a loop accepts per wake-up, so that
// a burst of new connections does not keep the loop's other connections
// waiting (and, on a shared socket, is shared among the loops).
const acceptBatch = 8

// startLoops starts n loops (one per two CPUs when n is 0) on the plain-HTTP
// listeners lns, whose net.Listeners it closes (duplicates of their sockets
// stay open). On an error nothing is started and lns are untouched.
func startLoops(ctx context.Context, s *Server, lns []*listener, n int) (_ *loops, err error) {
	if n <= 0 {
		n = max(1, procs.Base()/2)
	}
	lp := &loops{s: s, efd: -1}
	defer func() {
		if err != nil {
			lp.release()
		}
	}()
	if lp.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	for _, l := range lns {
		ll := &loopListener{l: l, fds: make([]int, n)}
		for i := range ll.fds {
			ll.fds[i] = -1
		}
		lp.lns = append(lp.lns, ll)
		if ll.fds[0], err = dupListener(l.ln.Listener); err != nil {
			return nil, err
		}
		for i := 1; i < n; i++ {
			if ll.fds[i], err = reusePortSibling(ctx, s, l.addr.String()); err != nil {
				s.log.Warn("event loops share a listening socket", "addr", l.addr.String(), "err", err)
				ll.fds[i] = -1
			}
		}
		if a := sink.AddrPort(l.addr); !a.Addr().IsUnspecified() {
			ll.local = a
		}
	}
	for i := range n {
		e := &evloop{s: s, all: lp, idx: i, epfd: -1, evs: make([]unix.EpollEvent, 128), paused: make([]time.Time, len(lns))}
		lp.ls = append(lp.ls, e)
		if e.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Pad: padWake}
		if err := unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, lp.efd, &ev); err != nil {
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
		for j := range lp.lns {
			if err := e.listen(j); err != nil {
				return nil, fmt.Errorf("epoll_ctl: %w", err)
			}
		}
	}
	// From here on the loops accept: the runtime's poller should not see
	// the listening sockets any more (it would wake for every connection).
	for _, ll := range lp.lns {
		ll.l.ln.Listener.Close()
		ll.l.looped = true
	}
	for _, e := range lp.ls {
		procs.Add(1)
		lp.wg.Add(1)
		go e.run()
	}
	return lp, nil
}

// lfd returns the loop's socket of listener i: its own, or the shared
// first one.
func (lp *evloop) lfd(i int) int {
	if fd := lp.all.lns[i].fds[lp.idx]; fd >= 0 {
		return fd
	}
	return lp.all.lns[i].fds[0]
}

// listen puts the loop's socket of listener i into its epoll set; on a
// shared socket the loops are woken one at a time for a new connection.
func (lp *evloop) listen(i int) error {
	fd := lp.lfd(i)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: int32(padListener - i)}
	if fd == lp.all.lns[i].fds[0] {
		ev.Events |= unix.EPOLLEXCLUSIVE
	}
	return unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

// dupListener returns a duplicate of ln's descriptor, which stays open
// when ln is closed.
func dupListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("listener %s has no descriptor", ln.Addr())
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(sfd uintptr) {
		fd, derr = unix.FcntlInt(sfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("duplicating the listening socket: %w", derr)
	}
	return fd, nil
}

// reusePortSibling binds another listening socket on addr, which a
// listener bound with SO_REUSEPORT holds, and returns its descriptor.
func reusePortSibling(ctx context.Context, s *Server, addr string) (int, error) {
	lc := s.listenConfig(reusePort)
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return -1, err
	}
	defer ln.Close()
	return dupListener(ln)
}

// listenHTTP binds a plain-HTTP address for the loops: with SO_REUSEPORT,
// so that each loop can bind a socket of its own beside it. The address is
// first bound without it, which fails as a plain listener would if
// anything holds the address (another takedown with SO_REUSEPORT would
// otherwise share it without a word), and gives port 0 its number.
func listenHTTP(ctx context.Context, s *Server, addr string) (net.Listener, error) {
	lc := s.listenConfig()
	probe, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	bound := probe.Addr().String()
	probe.Close()
	lc = s.listenConfig(reusePort)
	return lc.Listen(ctx, "tcp", bound)
}

var reusePort = sockOpt{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1}

// deferAccept returns the listening socket's TCP_DEFER_ACCEPT for d
// (Config.DeferAccept), none when d is negative.
func deferAccept(d time.Duration) []sockOpt {
	if d <= 0 {
		return nil
	}
	return []sockOpt{{unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, int((d + time.Second - 1) / time.Second)}}
}

// stopAll makes every loop end its connections (recording those that
// carried no request) and return, waits for them and closes their
// descriptors. It is safe on a nil *loops and more than once.
func (l *loops) stopAll() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		l.stop.Store(true)
		one := [8]byte{1}         // any non-zero count, whatever the byte order
		unix.Write(l.efd, one[:]) //nolint:errcheck // never read: stays readable
		l.wg.Wait()
		l.release()
	})
}

// count returns the number of loops (0 on a nil *loops).
func (l *loops) count() int {
	if l == nil {
		return 0
	}
	return len(l.ls)
}

// release closes the loops' descriptors.
func (l *loops) release() {
	for _, e := range l.ls {
		if e.epfd >= 0 {
			unix.Close(e.epfd)
		}
	}
	for _, ll := range l.lns {
		for _, fd := range ll.fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	if l.efd >= 0 {
		unix.Close(l.efd)
	}
}

// run serves the loop's listeners and connections until stopAll.
func (lp *evloop) run() {
	defer lp.all.wg.Done()
	defer procs.Add(-1)
	next := time.Now().Add(sweepEvery)
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(lp.epfd), uintptr(unsafe.Pointer(&lp.evs[0])),
			uintptr(len(lp.evs)), uintptr(sweepEvery.Milliseconds()), 0, 0)
		n := int(r)
		if errno != 0 {
			n = 0
			if errno != unix.EINTR {
				lp.s.log.Error("epoll_wait failed", "err", errno)
				time.Sleep(sweepEvery)
			}
			// Nothing in the raw call or in this loop lets the runtime
			// stop the goroutine: yield, or a stop-the-world would wait.
			runtime.Gosched()
		}
		if lp.all.stop.Load() {
			lp.closeAll()
			return
		}
		lp.now = time.Now()
		for i := range n {
			ev := &lp.evs[i]
			switch {
			case ev.Pad > 0:
				if lc := lp.lookup(ev.Fd, ev.Pad); lc != nil {
					lp.serve(lc)
				}
			case ev.Pad <= padListener:
				lp.accept(int(padListener - ev.Pad))
			}
		}
		if !lp.now.Before(next) {
			lp.sweep()
			next = lp.now.Add(sweepEvery)
		}
	}
}

func (lp *evloop) lookup(fd, gen int32) *lconn {
	if fd < 0 || int(fd) >= len(lp.tab) {
		return nil
	}
	if lc := lp.tab[fd]; lc != nil && lc.gen == gen {
		return lc
	}
	return nil
}

// accept takes up to acceptBatch new connections from listener i and
// serves what each has sent already.
func (lp *evloop) accept(i int) {
	s, ll, lfd := lp.s, lp.all.lns[i], lp.lfd(i)
	for range acceptBatch {
		if s.isClosing() {
			return
		}
		var rsa unix.RawSockaddrAny
		sl := uint32(unix.SizeofSockaddrAny)
		r, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)),
			uintptr(unsafe.Pointer(&sl)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		default:
			// Out of descriptors or memory: this loop stops accepting
			// on the listener for a while (the runtime's accept loop
			// pauses the same way).
			lp.paused[i] = lp.now.Add(time.Second)
			unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, lfd, nil) //nolint:errcheck
			s.log.Warn("accept failed; pausing", "protocol", "http", "err", errno, "pause", "1s")
			return
		}
		fd := int(r)
		if f := s.onAccept.Load(); f != nil {
			(*f)(fd)
		}
		src := rawAddrPort(&rsa)
		dst := ll.local
		if !dst.IsValid() {
			if sa, err := unix.Getsockname(fd); err == nil {
				dst = sockaddrAddrPort(sa)
			}
		}
		if reason := ll.l.ln.Admit(src.Addr()); reason != "" {
			unix.Close(fd)
			s.life.Refuse(int(protoHTTP), nil, src, dst, reason)
			continue
		}
		lc := lp.newConn()
		lc.fd, lc.ln = fd, ll
		lc.sc = sinkConn{s: s, p: protoHTTP, start: lp.now, hard: lp.now.Add(s.cfg.ConnTimeout), src: src, dst: dst}
		lc.h = h1conn{s: s, sc: &lc.sc, first: true, lc: lc}
		lc.h.until = lc.sc.clamp(lp.now.Add(s.cfg.ReadHeaderTimeout))
		lp.gen++
		if lp.gen <= 0 {
			lp.gen = 1
		}
		lc.gen = lp.gen
		if fd >= len(lp.tab) {
			lp.tab = append(lp.tab, make([]*lconn, max(fd+1-len(lp.tab), len(lp.tab)))...)
		}
		lp.tab[fd] = lc
		s.life.Opened(int(protoHTTP))
		s.m.parked.Inc()
		lp.serve(lc)
	}
}

// serve reads what lc's client has sent and serves every whole request in
// it; it leaves lc waiting in the epoll set, hands it to the goroutine
// path, or closes it.
func (lp *evloop) serve(lc *lconn) {
	s, h := lp.s, &lc.h
	if !lp.now.Before(lc.sc.hard) {
		lp.end(lc, os.ErrDeadlineExceeded)
		return
	}
	h.acquire()
	r, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(lc.fd), uintptr(unsafe.Pointer(&h.x.buf[h.w])), uintptr(len(h.x.buf)-h.w))
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		lp.wait(lc)
		return
	case errno != 0:
		lp.end(lc, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)})
		return
	case r == 0:
		lp.end(lc, io.EOF)
		return
	}
	h.w += int(r)
	for {
		var hs headScan
		n, err := h.scanHead(&hs)
		if n == 0 && err == nil && h.r == h.w {
			lp.wait(lc)
			return
		}
		if err != nil || n == 0 {
			lp.handoff(lc) // the rest of the head is on its way, or it is too large
			return
		}
		perr := h.parse(n)
		if req := &h.x.req; perr == nil && (req.chunked || req.length > int64(h.w-h.r)) {
			h.r -= n // the goroutine path reads the body, and the head again
			lp.handoff(lc)
			return
		}
		e := s.newEvent(&lc.sc)
		lc.sc.requests.Add(1)
		h.first = false
		keep := h.serveHead(e, perr)
		s.putEvent(e)
		switch {
		case h.pend != nil:
			h.pendKeep = keep
			lp.handoff(lc)
			return
		case h.linger:
			lp.handoff(lc) // a worker lingers at the close
			return
		case !keep || s.isClosing():
			lp.close(lc)
			return
		}
		h.until = lc.sc.clamp(lp.now.Add(s.cfg.IdleTimeout))
	}
}

// wait leaves lc in the epoll set until its client sends more, giving back
// its buffer.
func (lp *evloop) wait(lc *lconn) {
	if lc.h.r == lc.h.w {
		lc.h.release()
	}
	if lc.inEpoll {
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lc.fd), Pad: lc.gen}
	if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, lc.fd, &ev); err != nil {
		lp.handoff(lc) // the goroutine path waits without epoll of ours
		return
	}
	lc.inEpoll = true
}

// end closes lc, which ended (by err) while it waited for a request.
func (lp *evloop) end(lc *lconn, err error) {
	if lc.sc.requests.Load() == 0 {
		lc.h.noRequest(err)
	}
	lp.close(lc)
}

// close closes lc and gives back its place; lc is kept for a new
// connection.
func (lp *evloop) close(lc *lconn) {
	lc.h.release()
	lp.forget(lc)
	// Out of the epoll set with it: nothing else holds the socket. The
	// close of a socket without SO_LINGER does not wait (the FIN goes out
	// after it), so it is a raw call, like the loop's reads and writes.
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(lc.fd), 0, 0)
	lp.closed(lc)
	if len(lp.free) < maxFree {
		*lc = lconn{}
		lp.free = append(lp.free, lc)
	}
}

// newConn returns a closed connection to reuse, or a new one: a bot's
// connection lasts one request, and a new one each time would be most of
// what the loop allocates.
func (lp *evloop) newConn() *lconn {
	if n := len(lp.free); n > 0 {
		lc := lp.free[n-1]
		lp.free[n-1] = nil
		lp.free = lp.free[:n-1]
		return lc
	}
	return new(lconn)
}

// forget takes lc out of the loop's table.
func (lp *evloop) forget(lc *lconn) {
	lp.tab[lc.fd] = nil
	lp.s.m.parked.Dec()
}

// closed gives back the place of lc, whose socket is closed.
func (lp *evloop) closed(lc *lconn) {
	lc.ln.l.ln.Release(lc.sc.src.Addr())
	lp.s.life.Closed(int(protoHTTP))
}

// handoff moves lc to the goroutine path, which carries on with what is in
// its buffer (and first sends what a write left over): a net.Conn is made
// of its socket, in the runtime's poller. The connection stays counted as
// open; its Close gives its place back.
func (lp *evloop) handoff(lc *lconn) {
	s, h := lp.s, &lc.h
	if lc.inEpoll {
		unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, lc.fd, nil) //nolint:errcheck
		lc.inEpoll = false
	}
	lp.forget(lc)
	s.m.handoffs.Inc()
	f := os.NewFile(uintptr(lc.fd), "")
	c, err := net.FileConn(f) // a duplicate
	f.Close()
	if err != nil {
		s.log.Warn("handing a connection to a goroutine failed", "err", err)
		h.release()
		if lc.sc.requests.Load() == 0 {
			h.noRequest(err)
		}
		lp.closed(lc)
		return
	}
	sc := &lc.sc
	sc.Conn = lc.ln.l.ln.Adopt(c, sc.src.Addr())
	c.SetDeadline(sc.hard) //nolint:errcheck // a closed conn fails its first read
	h.lc, h.c = nil, sc
	if h.first {
		// The first head is due ReadHeaderTimeout after the accept.
		h.headBy, h.headDue = sc.clamp(sc.start.Add(s.cfg.ReadHeaderTimeout)), true
	}
	if !s.life.Track(sc) {
		// Shutting down: end it here, as the loop would have.
		h.release()
		if sc.requests.Load() == 0 {
			h.noRequest(net.ErrClosed)
		}
		sc.Conn.Close() // gives its place back
		s.life.Closed(int(protoHTTP))
		return
	}
	s.work.run(job{h: h, carry: true})
}

// sweep ends the connections whose wait for a request is over, and
// listens again on listeners paused long enough.
func (lp *evloop) sweep() {
	for _, lc := range lp.tab {
		if lc != nil && !lp.now.Before(lc.h.until) {
			lp.end(lc, os.ErrDeadlineExceeded)
		}
	}
	for i, t := range lp.paused {
		if !t.IsZero() && !lp.now.Before(t) {
			lp.paused[i] = time.Time{}
			if err := lp.listen(i); err != nil && !errors.Is(err, unix.EEXIST) {
				lp.s.log.Error("listening again failed", "err", err)
			}
		}
	}
}

// closeAll ends every connection of the loop: the server is shutting down.
func (lp *evloop) closeAll() {
	for _, lc := range lp.tab {
		if lc != nil {
			lp.end(lc, net.ErrClosed)
		}
	}
}

// loopWrite sends b on a loop's connection with one send; what does
// not go out at once waits in h.pend for the goroutine path.
func (h *h1conn) loopWrite(b []byte) error {
	if h.pend != nil {
		h.pend = append(h.pend, b...)
		return nil
	}
	r, errno := send(h.lc.fd, b, h.last)
	n := int(r)
	switch errno {
	case 0:
	case unix.EAGAIN, unix.EINTR:
		n = 0
	default:
		return &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", errno)}
	}
	if n < len(b) {
		h.pend = append([]byte(nil), b[n:]...)
	}
	return nil
}

// send makes one write of b on the socket fd, which does not wait. The last
// response of a connection is held back (MSG_MORE) until the shutdown that
// follows it, which sends it and the FIN in one segment: on a bot's
// one-request connection that is a segment, and the client's ACK of it,
// fewer. The shutdown also has it sent whole should the client's further
// bytes turn the close into a reset.
func send(fd int, b []byte, last bool) (uintptr, syscall.Errno) {
	flags := 0
	if last {
		flags = unix.MSG_MORE
	}
	r, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(flags), 0, 0)
	if errno == 0 && int(r) == len(b) && last {
		unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
	}
	return r, errno
}

// rawAddrPort reads an address accept4 returned.
func rawAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
