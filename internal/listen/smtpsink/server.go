package smtpsink

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/sink"
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

	life *sink.Lifecycle

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
	cfg.MaxConns = sink.Limit(cfg.MaxConns, DefaultMaxConns)
	cfg.MaxConnsPerIP = sink.Limit(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)

	s := &Server{cfg: cfg, log: sink.Logger(cfg.Logger, "smtpsink"), now: cfg.Now, m: newMetrics()}
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
	var err error
	s.life, err = sink.New(sink.Config{
		Name: "smtpsink", Protocols: []string{"smtp"},
		Limits:  sink.Limits{Max: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP},
		Refused: s.refused, Logger: s.log,
		Registerer: cfg.Registerer, Collectors: s.m.collectors,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Start binds every Config.Listen address and serves them until Shutdown.
// ctx bounds the binding only. A bind error names the address; nothing
// stays bound after an error.
func (s *Server) Start(ctx context.Context) error {
	var lns []*sink.Listener
	return s.life.Start(func(b *sink.Binder) (err error) {
		var lc net.ListenConfig
		lns, err = b.ListenAll(ctx, 0, s.cfg.Listen, lc.Listen)
		return err
	}, func() {
		s.log.Info("serving", "starttls", s.tls != nil)
		for _, ln := range lns {
			s.life.Serve(0, ln, s.serve)
		}
	})
}

// Addrs returns the bound addresses in the order of Config.Listen (useful
// with port 0); nil before Start.
func (s *Server) Addrs() []net.Addr { return s.life.Addrs() }

// Shutdown stops accepting and ends every session: each gets "421
// shutting down" at its next read (a message in progress is recorded as
// incomplete). Sessions that have not ended when ctx ends are closed. It
// returns when every goroutine of the server has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.life.Shutdown(ctx, sink.Stop{Wake: s.wakeSessions})
}

// wakeSessions moves the deadline of every open session to now (closes
// them if force) and returns how many are open. Shutdown calls it again
// and again, since a session may set a later deadline between our look
// and its read.
func (s *Server) wakeSessions(force bool) int {
	now := time.Now()
	return s.life.Conns(func(c net.Conn) {
		if force {
			c.Close()
		} else {
			c.SetDeadline(now) //nolint:errcheck // closed: it ends anyway
		}
	})
}

// serve runs the session of c and closes c.
func (s *Server) serve(c net.Conn) {
	s.newSession(c).serve()
	sink.CloseLingering(c, lingerTime, lingerBytes) //nolint:errcheck // the session is over
}

// A session's connection lingers after its end for at most lingerTime, or
// until lingerBytes more have come (sink.CloseLingering): a bot that
// sent a burst of garbage still gets the greeting and the reply that ended
// its session.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 64 << 10
)

// refused records a connection a limit turned away.
func (s *Server) refused(_ int, _ net.Conn, src, dst netip.AddrPort, reason string) {
	if s.cfg.Recorder == nil {
		return
	}
	var e event.Event
	s.fillConn(&e, src, dst)
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
