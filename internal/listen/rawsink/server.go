package rawsink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/sink"
)

// Server is the TCP and UDP catch-all. Make it with New, start it with
// Start, stop it with Shutdown.
type Server struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	m    *metrics
	life *sink.Lifecycle

	bufs sync.Pool // *[]byte of MaxBytes, for TCP connections
}

// shutdownDrain is how long a connection woken by Shutdown may still read
// what has arrived.
const shutdownDrain = 20 * time.Millisecond

// New checks cfg, fills in its defaults and returns a server that is not
// listening yet.
func New(cfg Config) (*Server, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxBytes > maxDatagram {
		return nil, fmt.Errorf("rawsink: max bytes %d is more than %d", cfg.MaxBytes, maxDatagram)
	}
	switch {
	case cfg.HeadBytes == 0:
		cfg.HeadBytes = DefaultHeadBytes
	case cfg.HeadBytes < 0:
		cfg.HeadBytes = 0
	}
	cfg.HeadBytes = min(cfg.HeadBytes, cfg.MaxBytes)
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.UDPReaders <= 0 {
		cfg.UDPReaders = 2
	}
	if len(cfg.UDPReply) > maxDatagram {
		return nil, fmt.Errorf("rawsink: udp reply of %d bytes is too long", len(cfg.UDPReply))
	}
	cfg.MaxConns = sink.Limit(cfg.MaxConns, DefaultMaxConns)
	cfg.MaxConnsPerIP = sink.Limit(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	cfg.Banner = append([]byte(nil), cfg.Banner...)
	cfg.UDPReply = append([]byte(nil), cfg.UDPReply...)
	s := &Server{cfg: cfg, log: sink.Logger(cfg.Logger, "rawsink"), now: cfg.Now, m: newMetrics()}
	if s.now == nil {
		s.now = time.Now
	}
	s.bufs.New = func() any { b := make([]byte, cfg.MaxBytes); return &b }
	var err error
	s.life, err = sink.New(sink.Config{
		Name: "rawsink", Protocols: []string{"tcp"},
		Limits:  sink.Limits{Max: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP},
		Refused: s.refused, Logger: s.log,
		Registerer: cfg.Registerer, Collectors: s.m.collectors,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Start binds every address and serves them until Shutdown. ctx bounds
// the binding only. A bind error names the address; nothing stays bound
// after an error.
func (s *Server) Start(ctx context.Context) error {
	var tcp []*sink.Listener
	var udp []*net.UDPConn
	return s.life.Start(func(b *sink.Binder) (err error) {
		var lc net.ListenConfig
		if tcp, err = b.ListenAll(ctx, 0, s.cfg.TCP, lc.Listen); err != nil {
			return err
		}
		ulc := net.ListenConfig{Control: recvOrigDst}
		for _, a := range s.cfg.UDP {
			pc, err := b.ListenPacket(ctx, "udp", a, ulc.ListenPacket)
			if err != nil {
				return err
			}
			udp = append(udp, pc.(*net.UDPConn))
		}
		return nil
	}, func() {
		for _, ln := range tcp {
			s.life.Serve(0, ln, s.serveTCP)
		}
		for _, c := range udp {
			for range s.cfg.UDPReaders {
				s.life.Go(func() { s.readUDP(c) })
			}
		}
	})
}

// Addrs returns the bound addresses, TCP then UDP, in the order of the
// Config (useful with port 0); nil before Start.
func (s *Server) Addrs() []net.Addr { return s.life.Addrs() }

// Shutdown stops accepting and reading; TCP connections in progress are
// recorded with what they sent so far (Error "shutdown") and closed; those
// not done when ctx ends are closed unrecorded. It returns when every
// goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	// Wake the connections in progress once: one that sets its own
	// deadline after this sees the server closing and wakes itself.
	woken := false
	return s.life.Shutdown(ctx, sink.Stop{Wake: func(force bool) int {
		now := time.Now()
		n := s.life.Conns(func(c net.Conn) {
			switch {
			case force:
				c.Close()
			case !woken:
				c.SetReadDeadline(now) //nolint:errcheck // a closed conn ends anyway
			}
		})
		woken = true
		return n
	}})
}

// serveTCP reads the first MaxBytes (or what comes within ReadTimeout),
// records them and closes c.
func (s *Server) serveTCP(c net.Conn) {
	defer c.Close()
	src, dst := sink.AddrPort(c.RemoteAddr()), sink.AddrPort(c.LocalAddr())
	if od, ok := originalDst(c); ok {
		dst = od
	}
	c.SetDeadline(time.Now().Add(s.cfg.ReadTimeout)) //nolint:errcheck // seen at Read
	if s.life.Closing() {
		c.SetReadDeadline(time.Now()) //nolint:errcheck
	}
	if len(s.cfg.Banner) > 0 {
		c.Write(s.cfg.Banner) //nolint:errcheck // a bot that is gone still gets recorded
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	n, err := io.ReadFull(c, buf)
	if err != nil && s.life.Closing() && isTimeout(err) {
		// Woken by Shutdown: take what has arrived already.
		c.SetReadDeadline(time.Now().Add(shutdownDrain)) //nolint:errcheck
		m, _ := io.ReadFull(c, buf[n:])
		n += m
	}
	var why string
	switch {
	case err == nil:
		why = "size limit"
		s.m.limitSize.Inc()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
	case s.life.Closing():
		why = "shutdown"
	case isTimeout(err):
		why = "read timeout"
		s.m.limitTime.Inc()
	case errors.Is(err, syscall.ECONNRESET):
		why = "connection reset"
	default:
		why = "read error"
	}
	s.m.bytes[0].Add(float64(n))
	var e event.Event
	s.fill(&e, event.TransportTCP, src, dst, buf[:n], int64(n))
	e.Error = why
	s.record(&e, buf[:n])
}

// readUDP reads datagrams from c until it is closed. Each reader owns one
// buffer and one event: a flood costs CPU, never memory.
func (s *Server) readUDP(c *net.UDPConn) {
	buf := make([]byte, maxDatagram)
	oob := make([]byte, 128)
	local := sink.AddrPort(c.LocalAddr())
	var e event.Event
	var pause time.Duration
	for {
		n, oobn, _, src, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if s.life.Closing() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.m.readErrors.Inc()
			pause = min(max(2*pause, time.Millisecond), 100*time.Millisecond)
			time.Sleep(pause)
			continue
		}
		pause = 0
		dst := local
		if od, ok := origDstFromOOB(oob[:oobn]); ok {
			dst = od
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		s.datagram(c, &e, buf[:n], src, dst)
	}
}

// datagram records one datagram and sends the static reply if there is
// one and it is no longer than the datagram.
func (s *Server) datagram(c *net.UDPConn, e *event.Event, p []byte, src, dst netip.AddrPort) {
	s.m.datagrams.Inc()
	s.m.bytes[1].Add(float64(len(p)))
	*e = event.Event{}
	s.fill(e, event.TransportUDP, src, dst, p, int64(len(p)))
	body := p
	if len(p) > s.cfg.MaxBytes {
		s.m.limitBig.Inc()
		body = p[:s.cfg.MaxBytes]
	}
	s.record(e, body)
	if r := s.cfg.UDPReply; len(r) > 0 && len(r) <= len(p) && c != nil {
		if _, err := c.WriteToUDPAddrPort(r, src); err == nil {
			s.m.replies.Inc()
		}
	}
}

// fill sets the fields of an event for payload p (n bytes in all; p may be
// the start of it, and is then not hashed).
func (s *Server) fill(e *event.Event, tr event.Transport, src, dst netip.AddrPort, p []byte, n int64) {
	e.Time = s.now().UTC()
	e.Sensor = s.cfg.Sensor
	e.Transport = tr
	e.Protocol = event.ProtoTCP
	if tr == event.TransportUDP {
		e.Protocol = event.ProtoUDP
	}
	e.SrcIP, e.SrcPort = src.Addr(), src.Port()
	e.DstIP, e.DstPort = dst.Addr(), dst.Port()
	fillPayload(e, p, n, s.cfg.HeadBytes)
}

// fillPayload sets Bytes, PayloadSHA256 (when p is all n bytes) and
// PayloadHead (the first head bytes of p, shared with p).
func fillPayload(e *event.Event, p []byte, n int64, head int) {
	e.Bytes = n
	if n == 0 {
		return
	}
	if int64(len(p)) == n {
		sum := sha256.Sum256(p)
		e.PayloadSHA256 = hex.EncodeToString(sum[:])
	}
	e.PayloadHead = p[:min(len(p), head)]
}

// record classifies the payload body and hands e to the recorder.
func (s *Server) record(e *event.Event, body []byte) {
	r := classify.Request{Protocol: e.Protocol, Transport: e.Transport, Port: e.DstPort, Body: body}
	switch {
	case s.cfg.Classifier != nil:
		res := s.cfg.Classifier.Classify(&r)
		e.Family, e.Tag, e.BotID = res.Family, res.Tag, res.BotID
	default:
		e.Family = classify.Unknown
	}
	if s.cfg.Recorder != nil {
		s.cfg.Recorder.Record(e)
		s.m.events.Inc()
	}
}

// refused records a connection a limit turned away.
func (s *Server) refused(_ int, c net.Conn, src, dst netip.AddrPort, reason string) {
	if s.cfg.Recorder == nil {
		return
	}
	if od, ok := originalDst(c); ok {
		dst = od
	}
	var e event.Event
	s.fill(&e, event.TransportTCP, src, dst, nil, 0)
	e.Error = "refused: " + reason
	s.record(&e, nil)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
