package httpsink

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
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
	"github.com/takedown-project/takedown/internal/listen/sink"
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

	life   *sink.Lifecycle
	park   *parker // idle plain-HTTP connections; nil: none
	loops  *loops  // serve the plain-HTTP listeners; nil: accept does
	work   *workers
	h2done chan struct{}
	// lingering counts the connections whose close lingers now (the
	// connections_lingering gauge); past Config.MaxLingering a refused
	// connection is closed at once.
	lingering atomic.Int64

	// Per-request memory, reused.
	events      sync.Pool // *event.Event
	scratches   sync.Pool // *scratch
	h2scratches sync.Pool // *h2scratch
	date        atomic.Pointer[dateValue]

	// Set by the tests only, before Start.
	workerIdle time.Duration                // how long a worker waits for the next connection
	onAccept   atomic.Pointer[func(fd int)] // sees each descriptor a loop accepts
}

type listener struct {
	p      proto
	ln     *sink.Listener
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
	cfg.MaxConns = sink.Limit(cfg.MaxConns, DefaultMaxConns)
	cfg.MaxConnsPerIP = sink.Limit(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
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
	if cfg.MaxLingering == 0 {
		cfg.MaxLingering = DefaultMaxLingering
	}
	s := &Server{
		cfg:        cfg,
		log:        sink.Logger(cfg.Logger, "httpsink"),
		now:        cfg.Now,
		certs:      cfg.Certs,
		dflt:       classify.Response{Status: cfg.DefaultStatus},
		workerIdle: defaultWorkerIdle,
	}
	s.work = newWorkers(s)
	s.events.New = func() any { return new(event.Event) }
	s.scratches.New = func() any { return &scratch{buf: make([]byte, bufSize), hash: sha256.New()} }
	s.h2scratches.New = func() any { return &h2scratch{buf: make([]byte, bufSize)} }
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
	s.m = newMetrics(minted, func() float64 { return float64(s.lingering.Load()) })
	var err error
	s.life, err = sink.New(sink.Config{
		Name: "httpsink", Protocols: protoNames[:],
		Limits:  sink.Limits{Max: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP},
		Refused: s.refused, Logger: s.log,
		Registerer: cfg.Registerer, Collectors: s.m.collectors,
	})
	if err != nil {
		return nil, err
	}
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
	var lns []*listener
	return s.life.Start(func(b *sink.Binder) error {
		lc := s.listenConfig()
		bind := func(p proto, addrs []string, listen func(context.Context, string, string) (net.Listener, error)) error {
			all, err := b.ListenAll(ctx, int(p), addrs, listen)
			for _, ln := range all {
				lns = append(lns, &listener{p: p, ln: ln, addr: ln.Addr()})
			}
			return err
		}
		plain := lc.Listen
		if s.cfg.Loops >= 0 {
			plain = func(ctx context.Context, _, addr string) (net.Listener, error) { return listenHTTP(ctx, s, addr) }
		}
		if err := bind(protoHTTP, s.cfg.HTTP, plain); err != nil {
			return err
		}
		return bind(protoHTTPS, s.cfg.HTTPS, lc.Listen)
	}, func() { s.serveListeners(ctx, lns) })
}

// serveListeners starts what serves the bound listeners: the parker and
// the event loops for plain HTTP, accept loops for the rest, and the
// HTTP/2 server.
func (s *Server) serveListeners(ctx context.Context, lns []*listener) {
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
			} else {
				s.log.Info("plain HTTP served by event loops", "loops", s.loops.count())
			}
		}
	}
	for _, l := range lns {
		if !l.looped {
			s.life.Accept(int(l.p), l.ln, s.accepted(l.p))
		}
	}
	if s.h2 != nil && len(s.cfg.HTTPS) > 0 {
		s.h2done = make(chan struct{})
		go func() {
			defer close(s.h2done)
			s.h2.Serve(s.h2ln) //nolint:errcheck // returns ErrServerClosed on Shutdown
		}()
	}
}

// Addrs returns the bound addresses, HTTP then HTTPS, in the order of the
// Config (useful with port 0); nil before Start.
func (s *Server) Addrs() []net.Addr { return s.life.Addrs() }

// Shutdown stops accepting, closes idle connections, lets requests in
// progress finish until ctx ends and then closes the rest. It returns when
// every goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	var h2err chan error
	return s.life.Shutdown(ctx, sink.Stop{
		Halt: func(ctx context.Context) {
			// The loops end their connections, which all wait for a
			// request, and hand none over after this.
			s.loops.stopAll()
			h2err = make(chan error, 1)
			if s.h2done != nil {
				go func() { h2err <- s.h2.Shutdown(ctx) }()
			} else {
				h2err <- nil
			}
		},
		// HTTP/1 connections: the idle ones now, the busy ones as they
		// become idle, all of them when ctx ends.
		Wake: s.closeConns,
		Drained: func() error {
			err := <-h2err
			if s.h2done != nil {
				s.h2.Close()
				<-s.h2done
			}
			s.closeConns(true)
			s.park.stop()
			s.work.stop() // nothing hands a connection to a worker any more
			return err
		},
	})
}

// closeConns closes the idle HTTP/1 connections (all if force) and returns
// how many remain open. Parked connections are idle: the first call takes
// them all from the parker, which parks no more, and ends them here.
func (s *Server) closeConns(force bool) int {
	for _, h := range s.park.closeAll() {
		h.end(net.ErrClosed)
	}
	var close []*sinkConn
	n := s.life.Conns(func(c net.Conn) {
		if sc := c.(*sinkConn); force || (!sc.h2.Load() && sc.idle.Load()) {
			close = append(close, sc)
		}
	})
	for _, c := range close {
		c.Conn.Close() // the owner's Close finishes the bookkeeping
	}
	return n - len(close)
}

func (s *Server) isClosing() bool { return s.life.Closing() }

// accepted returns what takes over a connection accepted on a listener of
// p: a worker serves it.
func (s *Server) accepted(p proto) func(c net.Conn) {
	return func(c net.Conn) {
		now := time.Now()
		sc := &sinkConn{
			Conn:  c,
			s:     s,
			p:     p,
			start: now,
			hard:  now.Add(s.cfg.ConnTimeout),
			src:   sink.AddrPort(c.RemoteAddr()),
			dst:   sink.AddrPort(c.LocalAddr()),
		}
		c.SetDeadline(sc.hard) //nolint:errcheck // a closed conn fails its first read
		if !s.life.Track(sc) {
			c.Close()
			return
		}
		s.life.Opened(int(p))
		s.work.run(job{sc: sc})
	}
}

// forget drops a closed connection from the books.
func (s *Server) forget(c *sinkConn) {
	s.life.Closed(int(c.p))
	s.life.Untrack(c)
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
func (s *Server) refused(kind int, _ net.Conn, src, dst netip.AddrPort, reason string) {
	sc := sinkConn{p: proto(kind), src: src, dst: dst}
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
