//go:build linux

package dnssink

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/takedown-project/takedown/internal/procs"
)

// rawUDP is a UDP socket whose readers block in the kernel, each on a
// thread of its own, the way a C server's threads do, instead of parking in
// the Go runtime's netpoller.
//
// With the netpoller a datagram that arrives at an idle server wakes the
// thread polling for the runtime, which hands the reader's goroutine to a
// P and wakes a second thread to look for more work: two or three thread
// wake-ups a query, and at 20,000 queries/s three-quarters of a CPU spent
// on them, with the tail latency that such hand-offs bring. A reader
// blocked in recvmmsg is woken by the kernel itself, once, and answers on
// the thread it wakes on.
//
// The system calls are raw: the runtime is not told that the goroutine
// enters one, so it keeps its P (lent by startRaw, package procs) instead
// of the runtime's monitor taking the P away and handing it back, which
// with a reader waking 10,000 times a second kept the scheduler's idle
// threads busy trading Ps. A raw call cannot be preempted by the runtime,
// but a signal ends it: the socket has a receive timeout, and with one
// set recvmmsg(2) fails with EINTR on any signal instead of restarting,
// so the runtime's preemption signal (a garbage collection stopping the
// world, say) returns the reader to Go code at once, where it yields.
//
// The readers use a duplicate of the socket's descriptor put in blocking
// mode, and the net.UDPConn that bound it is closed at once: as long as
// the runtime's poller watches the socket, every datagram also wakes the
// poller's thread for nothing (at 20,000 queries/s that was 14,000
// futile wake-ups a second). The closed UDPConn still tells the bound
// address. The duplicate is closed by the last reader to leave, so no
// reader ever uses a number that the process has reused for another file.
type rawUDP struct {
	fd      int
	readers atomic.Int32 // the readers still serving; the last closes fd
	once    sync.Once
}

// rawTimeout is how long a reader blocks before it looks whether the
// server is closing, should the shutdown(2) that wakes it not reach it.
const rawTimeout = 500 * time.Millisecond

// newRawUDP prepares c for blocking readers.
func newRawUDP(c *net.UDPConn) (*rawUDP, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(sfd uintptr) {
		fd, derr = unix.FcntlInt(sfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	tv := unix.NsecToTimeval(rawTimeout.Nanoseconds())
	if err := errors.Join(unix.SetNonblock(fd, false),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c.Close() // out of the poller; fd keeps the socket
	return &rawUDP{fd: fd}, nil
}

// startRaw starts Config.UDPWorkers blocking readers on c, each lending
// the Go scheduler a P while it lasts (package procs: a reader blocked in
// the kernel keeps its P for up to 10 ms). It reports false, having
// started nothing, when c cannot be read that way; the caller then serves
// it through the netpoller.
func (s *Server) startRaw(c *net.UDPConn, local netip.AddrPort) bool {
	r, err := newRawUDP(c)
	if err != nil {
		s.log.Warn("udp: blocking readers unavailable, using the runtime's poller", "err", err)
		return false
	}
	s.raw = append(s.raw, r)
	r.readers.Store(int32(s.cfg.UDPWorkers))
	for range s.cfg.UDPWorkers {
		procs.Add(1)
		s.life.Go(func() { s.serveRawUDP(r, local) })
	}
	return true
}

// wake makes the blocked readers return; they see the server closing and
// leave. shutdown(2) on an unbound-peer UDP socket reports ENOTCONN but
// still wakes them.
func (r *rawUDP) wake() { r.once.Do(func() { unix.Shutdown(r.fd, unix.SHUT_RDWR) }) } //nolint:errcheck

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2); Go pads it as
// C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// serveRawUDP reads and answers up to udpBatch datagrams a system call
// until the server closes.
func (s *Server) serveRawUDP(r *rawUDP, local netip.AddrPort) {
	defer func() {
		if r.readers.Add(-1) == 0 {
			unix.Close(r.fd)
		}
		procs.Add(-1)
	}()
	var (
		rh    = make([]mmsghdr, udpBatch)
		wh    = make([]mmsghdr, 0, udpBatch)
		names = make([]unix.RawSockaddrInet6, udpBatch)
		riov  = make([]unix.Iovec, udpBatch)
		wiov  = make([]unix.Iovec, udpBatch)
		bufs  = make([]byte, udpBatch*dns.MaxMsgSize)
		outs  = make([][]byte, udpBatch)
	)
	for i := range rh {
		riov[i].Base = &bufs[i*dns.MaxMsgSize]
		riov[i].SetLen(dns.MaxMsgSize)
		rh[i].hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
		rh[i].hdr.Iov = &riov[i]
		rh[i].hdr.SetIovlen(1)
		outs[i] = make([]byte, 0, 4096)
	}
	pi := packetInfo{dst: local}
	for {
		for i := range rh {
			rh[i].hdr.Namelen = unix.SizeofSockaddrInet6
			rh[i].hdr.Flags = 0
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&rh[0])),
			udpBatch, unix.MSG_WAITFORONE, 0, 0)
		if s.life.Closing() || errno == unix.EBADF {
			return
		}
		if errno == unix.EINTR || errno == unix.EAGAIN {
			// A signal (the runtime's preemption among them) or the
			// timeout. The raw call and this loop have no point where
			// the runtime can stop the goroutine, so yield here, or a
			// stop-the-world would wait for the next datagram.
			runtime.Gosched()
			continue
		}
		if errno != 0 {
			continue // e.g. ICMP port unreachable surfacing as a read error
		}
		wh = wh[:0]
		for i := range rh[:n] {
			src, ok := sockaddrPort(&names[i])
			if !ok {
				continue
			}
			pi.src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
			pkt := bufs[i*dns.MaxMsgSize : i*dns.MaxMsgSize+int(rh[i].n)]
			resp := s.handlePacket(outs[i], pkt, &pi)
			if len(resp) == 0 {
				continue
			}
			outs[i] = resp[:0]
			wiov[i].Base = &resp[0]
			wiov[i].SetLen(len(resp))
			var m mmsghdr
			m.hdr.Name = rh[i].hdr.Name
			m.hdr.Namelen = rh[i].hdr.Namelen
			m.hdr.Iov = &wiov[i]
			m.hdr.SetIovlen(1)
			wh = append(wh, m)
		}
		s.sendRaw(r.fd, wh)
	}
}

// sendRaw sends every message of wh, skipping one that sendmmsg refuses
// first (a datagram to an address that cannot be reached, say).
func (s *Server) sendRaw(fd int, wh []mmsghdr) {
	for len(wh) > 0 {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&wh[0])),
			uintptr(len(wh)), 0, 0, 0)
		switch {
		case errno == unix.EINTR:
		case errno == unix.EBADF:
			return
		case errno != 0 || n == 0:
			wh = wh[1:]
		default:
			wh = wh[n:]
		}
	}
}

// sockaddrPort reads the address that recvmmsg stored in sa.
func sockaddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	port := func(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port)), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}
