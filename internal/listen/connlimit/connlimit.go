// Package connlimit bounds the connections a listener keeps open: in total
// and per source address. A sinkhole listener faces bots by the ten
// thousand and, now and then, someone who tries to exhaust it; over a limit
// a new connection is closed at once (after the caller has been told, so
// that it can record the refusal), and the listener keeps serving the
// others.
package connlimit

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the limits. Zero means no limit.
type Config struct {
	// Max is the most connections open at once.
	Max int
	// MaxPerIP is the most connections open at once from one address.
	MaxPerIP int
	// OnReject, if set, sees each connection refused, with the reason,
	// before it is closed. It must not keep c.
	OnReject func(c net.Conn, reason string)
}

// Reasons given to OnReject.
const (
	ReasonTotal = "too many connections"
	ReasonPerIP = "too many connections from this address"
)

// Listener is a net.Listener that enforces Config.
type Listener struct {
	net.Listener
	cfg Config

	open atomic.Int64

	mu    sync.Mutex
	perIP map[netip.Addr]int
}

// Wrap returns ln with the limits of cfg.
func Wrap(ln net.Listener, cfg Config) *Listener {
	return &Listener{Listener: ln, cfg: cfg, perIP: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the limits; the ones over a
// limit are refused in between.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrOf(c.RemoteAddr())
		if reason := l.admit(ip); reason != "" {
			if l.cfg.OnReject != nil {
				l.cfg.OnReject(c, reason)
			}
			c.Close()
			continue
		}
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

// Admit counts a connection from ip that the caller accepted itself, not
// through Accept, or returns why it is refused. The place of an admitted
// one is given back by Release, or by closing the connection that Adopt
// returns for it.
func (l *Listener) Admit(ip netip.Addr) string { return l.admit(ip.Unmap()) }

// Release gives back the place of a connection from ip that Admit let in.
func (l *Listener) Release(ip netip.Addr) { l.release(ip.Unmap()) }

// Adopt returns c, admitted from ip by Admit, as a connection that gives
// its place back on its first Close.
func (l *Listener) Adopt(c net.Conn, ip netip.Addr) net.Conn {
	return &conn{Conn: c, l: l, ip: ip.Unmap()}
}

// admit counts a new connection from ip, or returns why it is refused.
func (l *Listener) admit(ip netip.Addr) string {
	if n := l.open.Add(1); l.cfg.Max > 0 && n > int64(l.cfg.Max) {
		l.open.Add(-1)
		return ReasonTotal
	}
	if l.cfg.MaxPerIP <= 0 {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip] >= l.cfg.MaxPerIP {
		l.open.Add(-1)
		return ReasonPerIP
	}
	l.perIP[ip]++
	return ""
}

func (l *Listener) release(ip netip.Addr) {
	l.open.Add(-1)
	if l.cfg.MaxPerIP <= 0 {
		return
	}
	l.mu.Lock()
	if n := l.perIP[ip]; n <= 1 {
		delete(l.perIP, ip)
	} else {
		l.perIP[ip] = n - 1
	}
	l.mu.Unlock()
}

// Open returns the number of connections open now.
func (l *Listener) Open() int { return int(l.open.Load()) }

// OpenFrom returns the number of connections open now from ip (counted
// only when MaxPerIP is set).
func (l *Listener) OpenFrom(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perIP[ip.Unmap()]
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// conn gives its place back once, on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	ip   netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
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
