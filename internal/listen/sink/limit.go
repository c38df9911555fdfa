package sink

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound the connections a listener keeps open. A sinkhole listener
// faces bots by the ten thousand and, now and then, someone who tries to
// exhaust it; over a limit a new connection is closed at once (after the
// sink has been told, so that it can record the refusal), and the listener
// keeps serving the others. Zero means no limit.
type Limits struct {
	// Max is the most connections open at once.
	Max int
	// MaxPerIP is the most connections open at once from one address.
	MaxPerIP int
}

// Reasons a connection is refused.
const (
	ReasonTotal = "too many connections"
	ReasonPerIP = "too many connections from this address"
)

// Listener is a net.Listener that keeps to its Limits. The Binder makes
// them; the sink accepts from them (Lifecycle.Accept) or, where it accepts
// by itself, admits what it accepted (Admit, Adopt).
type Listener struct {
	net.Listener
	n *counts
	// onReject sees each connection refused, with the reason, before it
	// is closed. It must not keep c.
	onReject func(c net.Conn, reason string)
}

// counts are the open connections of one or more Listeners.
type counts struct {
	lim  Limits
	open atomic.Int64

	mu    sync.Mutex
	perIP map[netip.Addr]int
}

// limit returns ln within the limits counted by n (new counts of lim when
// n is nil).
func limit(ln net.Listener, lim Limits, n *counts, onReject func(net.Conn, string)) *Listener {
	if n == nil {
		n = &counts{lim: lim, perIP: make(map[netip.Addr]int)}
	}
	return &Listener{Listener: ln, n: n, onReject: onReject}
}

// Accept returns the next connection within the limits; the ones over a
// limit are refused in between.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := AddrPort(c.RemoteAddr()).Addr()
		if reason := l.n.admit(ip); reason != "" {
			if l.onReject != nil {
				l.onReject(c, reason)
			}
			c.Close()
			continue
		}
		return &conn{Conn: c, n: l.n, ip: ip}, nil
	}
}

// Admit counts a connection from ip that the caller accepted itself, not
// through Accept, or returns why it is refused. The place of an admitted
// one is given back by Release, or by closing the connection that Adopt
// returns for it.
func (l *Listener) Admit(ip netip.Addr) string { return l.n.admit(ip.Unmap()) }

// Release gives back the place of a connection from ip that Admit let in.
func (l *Listener) Release(ip netip.Addr) { l.n.release(ip.Unmap()) }

// Adopt returns c, admitted from ip by Admit, as a connection that gives
// its place back on its first Close.
func (l *Listener) Adopt(c net.Conn, ip netip.Addr) net.Conn {
	return &conn{Conn: c, n: l.n, ip: ip.Unmap()}
}

// Open returns the number of connections open now.
func (l *Listener) Open() int { return int(l.n.open.Load()) }

// OpenFrom returns the number of connections open now from ip (counted
// only when MaxPerIP is set).
func (l *Listener) OpenFrom(ip netip.Addr) int {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	return l.n.perIP[ip.Unmap()]
}

// admit counts a new connection from ip, or returns why it is refused.
func (n *counts) admit(ip netip.Addr) string {
	if o := n.open.Add(1); n.lim.Max > 0 && o > int64(n.lim.Max) {
		n.open.Add(-1)
		return ReasonTotal
	}
	if n.lim.MaxPerIP <= 0 {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.perIP[ip] >= n.lim.MaxPerIP {
		n.open.Add(-1)
		return ReasonPerIP
	}
	n.perIP[ip]++
	return ""
}

func (n *counts) release(ip netip.Addr) {
	n.open.Add(-1)
	if n.lim.MaxPerIP <= 0 {
		return
	}
	n.mu.Lock()
	if o := n.perIP[ip]; o <= 1 {
		delete(n.perIP, ip)
	} else {
		n.perIP[ip] = o - 1
	}
	n.mu.Unlock()
}

// conn gives its place back once, on the first Close.
type conn struct {
	net.Conn
	n    *counts
	ip   netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.n.release(c.ip) })
	return err
}

// Unwrap returns the connection underneath (for TLS and for reading the
// original destination).
func (c *conn) Unwrap() net.Conn { return c.Conn }

// TCPConn returns the *net.TCPConn under c, through this package's wrapper
// and any other with an Unwrap method, or nil if there is none.
func TCPConn(c net.Conn) *net.TCPConn {
	for {
		if tc, ok := c.(*net.TCPConn); ok {
			return tc
		}
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return nil
		}
		c = u.Unwrap()
	}
}

// CloseLingering closes c so that what was last sent to the client reaches
// it. A socket closed with input it has not read sends a reset: the
// client's next write fails, and its kernel throws away what the client
// had not yet read, such as the reply that refused a request too large or
// the greeting of a session that a bot filled with garbage. So the sending
// side is shut first, and what still comes is read and discarded for at
// most wait, or until upTo bytes have come, before the close.
func CloseLingering(c net.Conn, wait time.Duration, upTo int64) error {
	if tc := TCPConn(c); tc != nil && tc.CloseWrite() == nil {
		c.SetReadDeadline(time.Now().Add(wait)) //nolint:errcheck // the close follows either way
		io.CopyN(io.Discard, c, upTo)           //nolint:errcheck
	}
	return c.Close()
}

// AddrPort returns the address and port of a, an IPv4 address mapped into
// IPv6 unmapped (as events carry it); the zero AddrPort if a has none.
func AddrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	case nil:
		return ap
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
