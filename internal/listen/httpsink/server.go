package httpsink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/ja4"
	"github.com/takedown-project/takedown/internal/listen/certs"
	"github.com/takedown-project/takedown/internal/listen/connlimit"
)

// Server is the HTTP and HTTPS sinkhole. Make it with New, start it with
// Start, stop it with Shutdown.
type Server struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	m     *metrics
	certs *certs.Authority
	tls   *tls.Config
	h2    *http.Server // serves the connections that chose HTTP/2
	h2ln  *handoff     // hands them over
	dflt  classify.Response

	mu      sync.Mutex
	started bool
	closing bool
	// shut mirrors closing for the request path, which reads it twice a
	// request and should not take mu for that.
	shut   atomic.Bool
	lns    []*listener
	conns  map[*sinkConn]struct{}
	park   *parker        // idle plain-HTTP connections; nil: none
	loops  *loops         // serve the plain-HTTP listeners; nil: accept does
	work   *workers       // goroutines that serve connections
	wg     sync.WaitGroup // accept loops and connections
	h2done chan struct{}
	// lingering counts the connections whose close lingers now (the
	// connections_lingering gauge); past maxLingering a refused
	// connection is closed at once.
	lingering atomic.Int64
}

type listener struct {
	p      proto
	ln     *connlimit.Listener
	addr   net.Addr
	looped bool // served by the loops, not by accept
}

// New checks cfg, fills in its defaults and returns a server that is not
// listening yet.
func New(cfg Config) (*Server, error) {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	d(&cfg.WriteTimeout, DefaultWriteTimeout)
	d(&cfg.IdleTimeout, DefaultIdleTimeout)
	d(&cfg.ConnTimeout, DefaultConnTimeout)
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxHeaderBytes < 256 {
		return nil, fmt.Errorf("httpsink: max header bytes %d is below 256", cfg.MaxHeaderBytes)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.DeferAccept == 0 {
		cfg.DeferAccept = DefaultDeferAccept
	}
	switch {
	case cfg.HeadBytes == 0:
		cfg.HeadBytes = DefaultHeadBytes
	case cfg.HeadBytes < 0:
		cfg.HeadBytes = 0
	}
	if cfg.MatchBytes <= 0 {
		cfg.MatchBytes = DefaultMatchBytes
	}
	cfg.MatchBytes = max(cfg.MatchBytes, cfg.HeadBytes)
	switch {
	case cfg.MaxConns == 0:
		cfg.MaxConns = DefaultMaxConns
	case cfg.MaxConns < 0:
		cfg.MaxConns = 0 // connlimit: no limit
	}
	switch {
	case cfg.MaxConnsPerIP == 0:
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	case cfg.MaxConnsPerIP < 0:
		cfg.MaxConnsPerIP = 0
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	switch cfg.DefaultStatus {
	case 0:
		cfg.DefaultStatus = DefaultStatus
	case http.StatusOK, http.StatusNotFound:
	default:
		return nil, fmt.Errorf("httpsink: default status %d is not 200 or 404", cfg.DefaultStatus)
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		now:   cfg.Now,
		certs: cfg.Certs,
		dflt:  classify.Response{Status: cfg.DefaultStatus},
		conns: map[*sinkConn]struct{}{},
	}
	s.work = newWorkers(s)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "httpsink")
	if s.now == nil {
		s.now = time.Now
	}
	if len(cfg.HTTPS) > 0 && s.certs == nil {
		a, err := certs.Open(certs.Config{})
		if err != nil {
			return nil, fmt.Errorf("httpsink: %w", err)
		}
		s.certs = a
	}
	var minted func() float64
	if s.certs != nil {
		minted = func() float64 { n, _ := s.certs.Minted(); return float64(n) }
		s.tls = s.certs.TLSConfig()
		s.tls.NextProtos = []string{"h2", "http/1.1"}
		s.tls.GetConfigForClient = s.sawHello
	}
	m, err := newMetrics(cfg.Registerer, minted, func() float64 { return float64(s.lingering.Load()) })
	if err != nil {
		return nil, fmt.Errorf("httpsink: %w", err)
	}
	s.m = m
	if s.tls != nil {
		s.h2ln = &handoff{ch: make(chan net.Conn), done: make(chan struct{})}
		var protos http.Protocols
		protos.SetHTTP1(true) // needed by net/http to accept the conns at all
		protos.SetHTTP2(true)
		s.h2 = &http.Server{
			Handler:           http.HandlerFunc(s.serveH2),
			Protocols:         &protos,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ConnTimeout,
			WriteTimeout:      cfg.ConnTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams: cfg.MaxStreams,
				CountError:           func(string) { s.m.h2errors.Inc() },
			},
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				if sc := sinkOf(c); sc != nil {
					return context.WithValue(ctx, connKey{}, sc)
				}
				return ctx
			},
			// One line per bad client would be a log line per packet:
			// every failure is an event or a metric instead.
			ErrorLog: log.New(io.Discard, "", 0),
		}
	}
	return s, nil
}

// Certs returns the certificate authority of the HTTPS listener (nil
// without one), for the SMTP listener's STARTTLS: Certs().TLSConfig().
func (s *Server) Certs() *certs.Authority { return s.certs }

// TLSConfig returns a new TLS configuration with the HTTPS listener's
// certificates (nil without HTTPS), for STARTTLS elsewhere.
func (s *Server) TLSConfig() *tls.Config {
	if s.certs == nil {
		return nil
	}
	return s.certs.TLSConfig()
}

// Start binds every address and serves them until Shutdown. A bind error
// names the address; nothing stays bound after an error.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("httpsink: already started")
	}
	lc := s.listenConfig()
	var lns []*listener
	bind := func(p proto, addrs []string) error {
		for _, a := range addrs {
			var ln net.Listener
			var err error
			if p == protoHTTP && s.cfg.Loops >= 0 {
				ln, err = listenHTTP(ctx, s, a)
			} else {
				ln, err = lc.Listen(ctx, "tcp", a)
			}
			if err != nil {
				return fmt.Errorf("httpsink: %s listener on %q: %w", protoNames[p], a, err)
			}
			l := &listener{p: p, addr: ln.Addr()}
			l.ln = connlimit.Wrap(ln, connlimit.Config{
				Max:      s.cfg.MaxConns,
				MaxPerIP: s.cfg.MaxConnsPerIP,
				OnReject: func(c net.Conn, reason string) {
					s.refused(p, addrPort(c.RemoteAddr()), addrPort(c.LocalAddr()), reason)
				},
			})
			lns = append(lns, l)
		}
		return nil
	}
	err := bind(protoHTTP, s.cfg.HTTP)
	if err == nil {
		err = bind(protoHTTPS, s.cfg.HTTPS)
	}
	if err != nil {
		for _, l := range lns {
			l.ln.Close()
		}
		return err
	}
	s.started, s.lns = true, lns
	if len(s.cfg.HTTP) > 0 {
		p, err := newParker(s)
		if err != nil {
			s.log.Warn("idle connections keep a goroutine: no parker", "err", err)
		}
		s.park = p
		if s.cfg.Loops >= 0 {
			var plain []*listener
			for _, l := range lns {
				if l.p == protoHTTP {
					plain = append(plain, l)
				}
			}
			if s.loops, err = startLoops(ctx, s, plain, s.cfg.Loops); err != nil {
				s.log.Warn("plain HTTP served by goroutines: no event loops", "err", err)
			}
		}
	}
	for _, l := range lns {
		if l.looped {
			s.log.Info("listening", "protocol", protoNames[l.p], "addr", l.addr.String(), "loops", s.loops.count())
			continue
		}
		s.wg.Add(1)
		go s.accept(l)
		s.log.Info("listening", "protocol", protoNames[l.p], "addr", l.addr.String())
	}
	if s.h2 != nil && len(s.cfg.HTTPS) > 0 {
		s.h2done = make(chan struct{})
		go func() {
			defer close(s.h2done)
			s.h2.Serve(s.h2ln) //nolint:errcheck // returns ErrServerClosed on Shutdown
		}()
	}
	return nil
}

// Addrs returns the bound addresses of the HTTP and HTTPS listeners, in
// the order of the Config (useful with port 0).
func (s *Server) Addrs() (http, https []net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lns {
		if l.p == protoHTTP {
			http = append(http, l.addr)
		} else {
			https = append(https, l.addr)
		}
	}
	return http, https
}

// Shutdown stops accepting, closes idle connections, lets requests in
// progress finish until ctx ends and then closes the rest. It returns when
// every goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	start := time.Now()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.shut.Store(true)
	for _, l := range s.lns {
		l.ln.Close()
	}
	park := s.park
	s.mu.Unlock()
	// The loops end their connections, which all wait for a request,
	// and hand none over after this.
	s.loops.stopAll()

	h2err := make(chan error, 1)
	if s.h2done != nil {
		go func() { h2err <- s.h2.Shutdown(ctx) }()
	} else {
		h2err <- nil
	}
	// HTTP/1 connections: the idle ones now, the busy ones as they become
	// idle, all of them when ctx ends.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if s.closeConns(false) == 0 {
			break
		}
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
			err = ctx.Err()
			s.closeConns(true)
		}
		break
	}
	if e := <-h2err; err == nil && e != nil {
		err = e
	}
	if s.h2done != nil {
		s.h2.Close()
		<-s.h2done
	}
	s.closeConns(true)
	park.stop()
	s.wg.Wait()
	s.work.stop()
	s.log.Info("stopped", "took", time.Since(start).String())
	return err
}

// closeConns closes the idle HTTP/1 connections (all if force) and returns
// how many remain open. Parked connections are idle: the first call takes
// them all from the parker, which parks no more, and ends them here.
func (s *Server) closeConns(force bool) int {
	for _, h := range s.park.closeAll() {
		h.end(net.ErrClosed)
	}
	s.mu.Lock()
	var close []*sinkConn
	n := 0
	for c := range s.conns {
		if force || (!c.h2.Load() && c.idle.Load()) {
			close = append(close, c)
		} else {
			n++
		}
	}
	s.mu.Unlock()
	for _, c := range close {
		c.Conn.Close() // the owner's Close finishes the bookkeeping
	}
	return n
}

func (s *Server) isClosing() bool { return s.shut.Load() }

// accept serves one listener until it is closed. Errors such as running
// out of file descriptors are waited out with a growing pause.
func (s *Server) accept(l *listener) {
	defer s.wg.Done()
	var pause time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if s.isClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; pausing", "protocol", protoNames[l.p], "err", err, "pause", pause.String())
			time.Sleep(pause)
			continue
		}
		pause = 0
		now := time.Now()
		sc := &sinkConn{
			Conn:  c,
			s:     s,
			p:     l.p,
			start: now,
			hard:  now.Add(s.cfg.ConnTimeout),
			src:   addrPort(c.RemoteAddr()),
			dst:   addrPort(c.LocalAddr()),
		}
		c.SetDeadline(sc.hard) //nolint:errcheck // a closed conn fails its first read
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[sc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.m.open[l.p].Inc()
		s.m.conns[l.p].Inc()
		s.work.run(job{sc: sc})
	}
}

// forget drops a closed connection from the books.
func (s *Server) forget(c *sinkConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.m.open[c.p].Dec()
	s.wg.Done()
}

func (s *Server) serve(sc *sinkConn) {
	if sc.p == protoHTTP {
		h := &h1conn{s: s, sc: sc, c: sc, first: true}
		if !h.serve(false) {
			h.close()
		}
		return
	}
	tc, ok := s.handshake(sc)
	if !ok {
		sc.Close()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		sc.h2.Store(true)
		if !s.h2ln.give(tc) {
			tc.Close()
		}
		return // net/http closes it
	}
	defer tc.Close()
	h := &h1conn{s: s, sc: sc, c: tc, first: true}
	h.serve(false) // never parks: tls.Conn may hold buffered records
	if h.linger {
		// close_notify, then the lingering close of the TCP connection
		// under it.
		tc.CloseWrite() //nolint:errcheck // the close follows either way
		h.close()
	}
}

// refused records a connection a limit turned away.
func (s *Server) refused(p proto, src, dst netip.AddrPort, reason string) {
	limit := "total"
	if reason == connlimit.ReasonPerIP {
		limit = "per_ip"
	}
	s.m.refused.WithLabelValues(protoNames[p], limit).Inc()
	sc := sinkConn{p: p, src: src, dst: dst}
	e := s.newEvent(&sc)
	e.Error = "refused: " + reason
	s.record(e, nil)
	s.putEvent(e)
}

// classify attributes e's domain to a zone and classifies the request r,
// which it completes from e; it fills the event's family and returns the
// result. r may be nil.
func (s *Server) classify(e *event.Event, r *classify.Request) classify.Result {
	if r == nil {
		r = new(classify.Request) // escapes (Classify is an interface method): only when needed
	}
	r.Protocol, r.Transport, r.Port = e.Protocol, e.Transport, e.DstPort
	r.Domain = e.Domain
	r.TLSFingerprint = e.TLSFingerprint
	if e.Protocol == event.ProtoHTTPS {
		r.SNI = strings.TrimSuffix(strings.ToLower(e.Domain), ".")
	}
	if e.Domain != "" && s.cfg.Zones != nil {
		if zone, kase, fam, ok := s.cfg.Zones.Zone(e.Domain); ok {
			e.Zone, e.Case = zone, kase
			r.Zone, r.Case, r.CaseFamily = zone, kase, fam
		}
	}
	var res classify.Result
	if s.cfg.Classifier != nil {
		res = s.cfg.Classifier.Classify(r)
	} else if r.CaseFamily != "" {
		res.Family = r.CaseFamily
	} else {
		res.Family = classify.Unknown
	}
	e.Family, e.Tag, e.BotID = res.Family, res.Tag, res.BotID
	return res
}

// record classifies e (when r is nil: from what e holds) unless done, and
// hands it to the recorder.
func (s *Server) record(e *event.Event, r *classify.Request) {
	if e.Family == "" {
		s.classify(e, r)
	}
	if s.cfg.Recorder != nil {
		s.cfg.Recorder.Record(e)
		s.m.events.Inc()
	}
}

// handoff is the net.Listener through which net/http's HTTP/2 server
// receives the TLS connections that negotiated h2.
type handoff struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (h *handoff) give(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return &net.TCPAddr{} }

type connKey struct{}

// sinkOf finds the sinkConn under a connection net/http holds.
func sinkOf(c net.Conn) *sinkConn {
	for {
		switch v := c.(type) {
		case *sinkConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		case *ja4.Conn:
			c = v.Conn
		default:
			return nil
		}
	}
}

var _ net.Listener = (*handoff)(nil)

// listenConfig returns how the listeners bind, with the options given
// set on each socket too. No TCP keep-alive probes: every connection has
// an idle timeout, and the probes' four setsockopt calls per connection
// cost more than the rest of accepting it.
func (s *Server) listenConfig(opts ...sockOpt) net.ListenConfig {
	opts = append(deferAccept(s.cfg.DeferAccept), opts...)
	lc := net.ListenConfig{KeepAlive: -1}
	if len(opts) > 0 {
		lc.Control = sockopts(opts...)
	}
	return lc
}

// sockOpt is an integer socket option.
type sockOpt struct{ level, name, value int }

// sockopts returns a Control function (of net.ListenConfig or net.Dialer)
// that sets integer socket options before the bind.
func sockopts(opts ...sockOpt) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if serr = syscall.SetsockoptInt(int(fd), o.level, o.name, o.value); serr != nil {
					serr = fmt.Errorf("setsockopt(%d, %d): %w", o.level, o.name, serr)
					return
				}
			}
		}); err != nil {
			return err
		}
		return serr
	}
}
