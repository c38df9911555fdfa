package httpsink

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// sinkConn is an accepted connection: it holds what every event of the
// connection shares, keeps every deadline at or before the connection's
// end of life, and, while a TLS handshake runs, records the first bytes
// the client sent.
type sinkConn struct {
	net.Conn // from the sink package's limits
	s        *Server
	p        proto
	start    time.Time
	hard     time.Time // no deadline is later than this
	src, dst netip.AddrPort

	// idle is set while the connection waits for a request to begin;
	// Shutdown closes such connections at once.
	idle atomic.Bool
	// requests counts the request events of the connection.
	requests atomic.Int64
	h2       atomic.Bool // served by net/http's HTTP/2 server

	// Written before the connection is handed to HTTP/2, read-only after.
	tls tlsInfo

	// raw records the first bytes read while recording is set (TLS
	// handshakes); rawN counts all bytes read meanwhile.
	recording bool
	raw       []byte
	rawN      int64

	// wake receives the first bytes of a request while the connection
	// holds no buffer (idle keep-alive connections cost little).
	wake [64]byte

	closeOnce sync.Once
}

type tlsInfo struct {
	sni, alpn, version, cipher, ja4 string
}

func (c *sinkConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.recording && n > 0 {
		c.rawN += int64(n)
		if room := cap(c.raw) - len(c.raw); room > 0 {
			c.raw = append(c.raw, b[:min(n, room)]...)
		}
	}
	return n, err
}

// Unwrap returns the connection underneath (sink.TCPConn finds the
// socket through it).
func (c *sinkConn) Unwrap() net.Conn { return c.Conn }

// clamp keeps deadlines within the connection's life: no deadline (zero)
// and later ones become the end of life.
func (c *sinkConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.hard) {
		return c.hard
	}
	return t
}

func (c *sinkConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *sinkConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *sinkConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

// Close closes the connection once, forgets it and, for an HTTP/2
// connection that carried no request, records that.
func (c *sinkConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.h2.Load() && c.requests.Load() == 0 {
			e := c.s.newEvent(c)
			e.Error = "connection closed before a request"
			c.s.record(e, nil)
			c.s.putEvent(e)
		}
		c.s.forget(c)
	})
	return err
}

// expired reports whether the connection has reached its end of life.
func (c *sinkConn) expired() bool { return !time.Now().Before(c.hard) }

// putEvent gives back an event of newEvent, handed to the Recorder.
func (s *Server) putEvent(e *event.Event) {
	*e = event.Event{}
	s.events.Put(e)
}

// newEvent returns an event with what the connection knows.
func (s *Server) newEvent(c *sinkConn) *event.Event {
	e := s.events.Get().(*event.Event)
	e.Time = s.now().UTC()
	e.Sensor = s.cfg.Sensor
	e.Protocol = protoEvent[c.p]
	e.Transport = event.TransportTCP
	e.SrcIP, e.SrcPort = c.src.Addr(), c.src.Port()
	e.DstIP, e.DstPort = c.dst.Addr(), c.dst.Port()
	if c.p == protoHTTPS {
		e.Domain = c.tls.sni
		e.TLSVersion = c.tls.version
		e.TLSCipher = c.tls.cipher
		e.TLSFingerprint = c.tls.ja4
		e.TLSALPN = c.tls.alpn
	}
	return e
}

var protoEvent = [...]event.Protocol{event.ProtoHTTP, event.ProtoHTTPS}
