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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/connlimit"
)

// Server is the TCP and UDP catch-all. Make it with New, start it with
// Start, stop it with Shutdown.
type Server struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	m   *metrics

	closing atomic.Bool

	mu      sync.Mutex
	started bool
	tcp     []*connlimit.Listener
	udp     []*net.UDPConn
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup

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
	conns := func(v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0 // connlimit: no limit
		}
	}
	conns(&cfg.MaxConns, DefaultMaxConns)
	conns(&cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	cfg.Banner = append([]byte(nil), cfg.Banner...)
	cfg.UDPReply = append([]byte(nil), cfg.UDPReply...)
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, conns: map[net.Conn]struct{}{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "rawsink")
	if s.now == nil {
		s.now = time.Now
	}
	s.bufs.New = func() any { b := make([]byte, cfg.MaxBytes); return &b }
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("rawsink: %w", err)
	}
	s.m = m
	return s, nil
}

// Start binds every address and serves them until Shutdown. ctx bounds
// the binding only. A bind error names the address; nothing stays bound
// after an error.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("rawsink: already started")
	}
	if s.closing.Load() {
		return errors.New("rawsink: shut down")
	}
	lc := net.ListenConfig{}
	var tcp []*connlimit.Listener
	var udp []*net.UDPConn
	fail := func(err error) error {
		for _, l := range tcp {
			l.Close()
		}
		for _, c := range udp {
			c.Close()
		}
		return err
	}
	for _, a := range s.cfg.TCP {
		ln, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			return fail(fmt.Errorf("rawsink: tcp listener on %q: %w", a, err))
		}
		tcp = append(tcp, connlimit.Wrap(ln, connlimit.Config{
			Max: s.cfg.MaxConns, MaxPerIP: s.cfg.MaxConnsPerIP, OnReject: s.refused,
		}))
	}
	ulc := net.ListenConfig{Control: recvOrigDst}
	for _, a := range s.cfg.UDP {
		pc, err := ulc.ListenPacket(ctx, "udp", a)
		if err != nil {
			return fail(fmt.Errorf("rawsink: udp listener on %q: %w", a, err))
		}
		udp = append(udp, pc.(*net.UDPConn))
	}
	s.started, s.tcp, s.udp = true, tcp, udp
	for _, l := range tcp {
		s.wg.Add(1)
		go s.accept(l)
		s.log.Info("listening", "transport", "tcp", "addr", l.Addr().String())
	}
	for _, c := range udp {
		for range s.cfg.UDPReaders {
			s.wg.Add(1)
			go s.readUDP(c)
		}
		s.log.Info("listening", "transport", "udp", "addr", c.LocalAddr().String())
	}
	return nil
}

// Addrs returns the bound TCP and UDP addresses in the order of the Config
// (useful with port 0); nil before Start.
func (s *Server) Addrs() (tcp, udp []net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.tcp {
		tcp = append(tcp, l.Addr())
	}
	for _, c := range s.udp {
		udp = append(udp, c.LocalAddr())
	}
	return tcp, udp
}

// Shutdown stops accepting and reading; TCP connections in progress are
// recorded with what they sent so far (Error "shutdown") and closed; those
// not done when ctx ends are closed unrecorded. It returns when every
// goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	start := time.Now()
	if s.closing.Swap(true) {
		return nil
	}
	s.mu.Lock()
	for _, l := range s.tcp {
		l.Close()
	}
	for _, c := range s.udp {
		c.Close()
	}
	s.mu.Unlock()
	// Wake the connections in progress once: one that sets its own
	// deadline after this sees closing and wakes itself.
	s.mu.Lock()
	now := time.Now()
	for c := range s.conns {
		c.SetReadDeadline(now) //nolint:errcheck // a closed conn ends anyway
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.log.Info("stopped", "took", time.Since(start).String())
	return err
}

// accept serves one TCP listener until it is closed. Errors such as
// running out of file descriptors are waited out with a growing pause.
func (s *Server) accept(l *connlimit.Listener) {
	defer s.wg.Done()
	var pause time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; pausing", "err", err, "pause", pause.String())
			time.Sleep(pause)
			continue
		}
		pause = 0
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.m.conns.Inc()
			s.m.open.Inc()
			s.serveTCP(c)
			c.Close()
			s.m.open.Dec()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// serveTCP reads the first MaxBytes (or what comes within ReadTimeout)
// and records them.
func (s *Server) serveTCP(c net.Conn) {
	src, dst := addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())
	if od, ok := originalDst(c); ok {
		dst = od
	}
	c.SetDeadline(time.Now().Add(s.cfg.ReadTimeout)) //nolint:errcheck // seen at Read
	if s.closing.Load() {
		c.SetReadDeadline(time.Now()) //nolint:errcheck
	}
	if len(s.cfg.Banner) > 0 {
		c.Write(s.cfg.Banner) //nolint:errcheck // a bot that is gone still gets recorded
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	n, err := io.ReadFull(c, buf)
	if err != nil && s.closing.Load() && isTimeout(err) {
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
	case s.closing.Load():
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
	defer s.wg.Done()
	buf := make([]byte, maxDatagram)
	oob := make([]byte, 128)
	local := addrPort(c.LocalAddr())
	var e event.Event
	var pause time.Duration
	for {
		n, oobn, _, src, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
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
func (s *Server) refused(c net.Conn, reason string) {
	limit := "total"
	if reason == connlimit.ReasonPerIP {
		limit = "per_ip"
	}
	s.m.refused.WithLabelValues(limit).Inc()
	if s.cfg.Recorder == nil {
		return
	}
	dst := addrPort(c.LocalAddr())
	if od, ok := originalDst(c); ok {
		dst = od
	}
	var e event.Event
	s.fill(&e, event.TransportTCP, addrPort(c.RemoteAddr()), dst, nil, 0)
	e.Error = "refused: " + reason
	s.record(&e, nil)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
