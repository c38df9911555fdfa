package smtpsink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/connlimit"
)

// Server is the SMTP sinkhole. Make it with New, start it with Start, stop
// it with Shutdown.
type Server struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	m   *metrics
	tls *tls.Config

	// Replies made once in New.
	greeting       string
	ehlo, ehloTLS  string
	tooLargeReply  string
	defaultDataMsg string

	closing atomic.Bool

	mu       sync.Mutex
	started  bool
	lns      []*connlimit.Listener
	addrs    []net.Addr
	sessions map[*session]struct{}
	wg       sync.WaitGroup // accept loops and sessions

	// bufs recycles the buffers that keep a message's start.
	bufs sync.Pool
}

// New checks cfg, fills in its defaults and returns a server that is not
// listening yet.
func New(cfg Config) (*Server, error) {
	if cfg.Hostname == "" {
		cfg.Hostname = DefaultHostname
	}
	for _, r := range cfg.Hostname {
		if r <= ' ' || r > '~' {
			return nil, fmt.Errorf("smtpsink: hostname %q is not printable ASCII without spaces", cfg.Hostname)
		}
	}
	switch {
	case cfg.HeadBytes == 0:
		cfg.HeadBytes = DefaultHeadBytes
	case cfg.HeadBytes < 0:
		cfg.HeadBytes = 0
	}
	if cfg.HeadBytes > maxHeaderBytes {
		return nil, fmt.Errorf("smtpsink: head bytes %d is more than %d", cfg.HeadBytes, maxHeaderBytes)
	}
	if cfg.MatchBytes <= 0 {
		cfg.MatchBytes = DefaultMatchBytes
	}
	cfg.MatchBytes = min(cfg.MatchBytes, maxHeaderBytes)
	pos := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pos(&cfg.MaxRecipients, DefaultMaxRecipients)
	pos(&cfg.MaxCommands, DefaultMaxCommands)
	pos(&cfg.MaxErrors, DefaultMaxErrors)
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
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

	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		sessions: map[*session]struct{}{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "smtpsink")
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.TLS != nil {
		s.tls = cfg.TLS.Clone()
	}
	size := strconv.FormatInt(cfg.MaxMessageBytes, 10)
	s.greeting = "220 " + cfg.Hostname + " ESMTP\r\n"
	ext := "250-" + cfg.Hostname + "\r\n250-PIPELINING\r\n250-SIZE " + size + "\r\n250-8BITMIME\r\n"
	s.ehlo = ext + "250 ENHANCEDSTATUSCODES\r\n"
	s.ehloTLS = ext + "250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"
	s.tooLargeReply = "552 5.3.4 Message size exceeds fixed limit of " + size + " bytes\r\n"
	s.bufs.New = func() any { b := make([]byte, 0, maxHeaderBytes); return &b }
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("smtpsink: %w", err)
	}
	s.m = m
	return s, nil
}

// Start binds every Config.Listen address and serves them until Shutdown.
// ctx bounds the binding only. A bind error names the address; nothing
// stays bound after an error.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("smtpsink: already started")
	}
	if s.closing.Load() {
		return errors.New("smtpsink: shut down")
	}
	var lc net.ListenConfig
	var lns []*connlimit.Listener
	for _, a := range s.cfg.Listen {
		ln, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("smtpsink: listening on %q: %w", a, err)
		}
		lns = append(lns, connlimit.Wrap(ln, connlimit.Config{
			Max:      s.cfg.MaxConns,
			MaxPerIP: s.cfg.MaxConnsPerIP,
			OnReject: s.refused,
		}))
	}
	s.started, s.lns = true, lns
	for _, l := range lns {
		s.addrs = append(s.addrs, l.Addr())
		s.wg.Add(1)
		go s.accept(l)
		s.log.Info("listening", "addr", l.Addr().String(), "starttls", s.tls != nil)
	}
	return nil
}

// Addrs returns the bound addresses in the order of Config.Listen (useful
// with port 0); nil before Start.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// Shutdown stops accepting and ends every session: each gets "421
// shutting down" at its next read (a message in progress is recorded as
// incomplete). Sessions that have not ended when ctx ends are closed. It
// returns when every goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	start := time.Now()
	if s.closing.Swap(true) {
		return nil
	}
	s.mu.Lock()
	for _, l := range s.lns {
		l.Close()
	}
	s.mu.Unlock()

	// Wake every session blocked in a read; repeat, since a session may
	// set a later deadline between our look and its read.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for s.wakeSessions(false) > 0 {
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
			err = ctx.Err()
			s.wakeSessions(true)
		}
		break
	}
	s.wg.Wait()
	s.log.Info("stopped", "took", time.Since(start).String())
	return err
}

// wakeSessions moves the deadline of every open session to now (closes
// them if force) and returns how many are open.
func (s *Server) wakeSessions(force bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for ss := range s.sessions {
		if force {
			ss.raw.Close()
		} else {
			ss.raw.SetDeadline(now) //nolint:errcheck // closed: it ends anyway
		}
	}
	return len(s.sessions)
}

// accept serves one listener until it is closed. Errors such as running
// out of file descriptors are waited out with a growing pause.
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
		ss := s.newSession(c)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.sessions[ss] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.m.sessions.Inc()
			s.m.open.Inc()
			ss.serve()
			connlimit.CloseLingering(ss.raw, lingerTime, lingerBytes) //nolint:errcheck // the session is over
			s.m.open.Dec()
			s.mu.Lock()
			delete(s.sessions, ss)
			s.mu.Unlock()
		}()
	}
}

// A session's connection lingers after its end for at most lingerTime, or
// until lingerBytes more have come (connlimit.CloseLingering): a bot that
// sent a burst of garbage still gets the greeting and the reply that ended
// its session.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 64 << 10
)

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
	var e event.Event
	s.fillConn(&e, addrPort(c.RemoteAddr()), addrPort(c.LocalAddr()))
	e.Error = "refused: " + reason
	s.record(&e, &classify.Request{})
}

// fillConn sets what every event of a connection carries.
func (s *Server) fillConn(e *event.Event, src, dst netip.AddrPort) {
	e.Time = s.now().UTC()
	e.Sensor = s.cfg.Sensor
	e.Protocol = event.ProtoSMTP
	e.Transport = event.TransportTCP
	e.SrcIP, e.SrcPort = src.Addr(), src.Port()
	e.DstIP, e.DstPort = dst.Addr(), dst.Port()
}

// record attributes e to a zone by the domains given (the first one in a
// seized zone wins; without one, e.Domain is the first), classifies r,
// which it completes from e, and hands e to the recorder. It returns the
// classification.
func (s *Server) record(e *event.Event, r *classify.Request, domains ...string) classify.Result {
	r.Protocol, r.Transport, r.Port = e.Protocol, e.Transport, e.DstPort
	if len(domains) > 0 {
		e.Domain = domains[0]
	}
	if s.cfg.Zones != nil {
		for _, d := range domains {
			if zone, kase, fam, ok := s.cfg.Zones.Zone(d); ok {
				e.Domain, e.Zone, e.Case = d, zone, kase
				r.Zone, r.Case, r.CaseFamily = zone, kase, fam
				break
			}
		}
	}
	r.Domain = e.Domain
	var res classify.Result
	switch {
	case s.cfg.Classifier != nil:
		res = s.cfg.Classifier.Classify(r)
	case r.CaseFamily != "":
		res.Family = r.CaseFamily
	default:
		res.Family = classify.Unknown
	}
	e.Family, e.Tag, e.BotID = res.Family, res.Tag, res.BotID
	if s.cfg.Recorder != nil {
		s.cfg.Recorder.Record(e)
		s.m.events.Inc()
	}
	return res
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
