// Package xfr is takedown's zone-transfer server: a hidden primary on its own
// listen addresses that serves AXFR and IXFR (RFC 5936, RFC 1995) of the RPZ
// feed and of the sinkhole zones to secondaries (NSD, Knot, BIND) and RPZ
// consumers (BIND, Unbound), sends NOTIFY (RFC 1996) on change, and requires
// TSIG (RFC 8945) and a source-address ACL by default.
//
// Journaled zones (SetZone, Publish) keep a bounded journal of differences
// so that a one-name change in an 800,000-name zone is sent as a few
// records. Other zones come from a Fallback Source and are served by full
// transfer only.
package xfr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Source provides the full content of zones that are not journaled, such as
// the sinkhole zones (*dnssink.Server satisfies it).
type Source interface {
	// ZoneRecords returns the zone's records, SOA first, and whether the
	// zone is served at all. name is fully qualified and lower-case.
	ZoneRecords(name string) ([]dns.RR, bool)
}

// Defaults of Config fields left zero.
const (
	DefaultJournalMax     = 1000
	DefaultNotifyAttempts = 5
	DefaultNotifyBackoff  = 500 * time.Millisecond
	DefaultNotifyTimeout  = 2 * time.Second
)

// DefaultAllowFrom returns the default of Config.AllowFrom: loopback only.
func DefaultAllowFrom() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// Config configures the transfer server. The zero value listens nowhere;
// with Listen set it refuses every client that is not on loopback or that
// does not sign with a key of TSIGKeys.
type Config struct {
	// Listen lists host:port addresses served over both UDP and TCP; port
	// 0 picks a free port (see Addrs).
	Listen []string
	// TSIGKeys maps key names (domain names, e.g. "takedown-xfr.") to
	// base64 secrets. Use hmac-sha256 on the clients.
	TSIGKeys map[string]string
	// AllowUnsigned lists the source prefixes that may query and transfer
	// without TSIG, e.g. a local Unbound, which cannot sign RPZ
	// transfers. Empty: TSIG is required from everyone.
	AllowUnsigned []netip.Prefix
	// AllowFrom is the source-address ACL checked before TSIG; default
	// loopback only (127.0.0.0/8 and ::1/128, DefaultAllowFrom).
	AllowFrom []netip.Prefix
	// Notify lists host:port addresses sent a NOTIFY after every SetZone.
	Notify []string
	// NotifyKey names the key of TSIGKeys that signs NOTIFY messages;
	// empty sends them unsigned.
	NotifyKey string
	// NotifyAttempts is how often a NOTIFY is sent to a target that does
	// not answer it, NotifyBackoff the wait before the second try (it
	// doubles for each further one) and NotifyTimeout how long each try
	// waits for the answer. Defaults 5, 500 ms and 2 s: a target that
	// stays silent is given up after about 17.5 s, and a newer version
	// of the zone cancels the tries for an older one at once.
	NotifyAttempts int
	NotifyBackoff  time.Duration
	NotifyTimeout  time.Duration
	// Fallback serves full transfers and SOA queries of zones that are not
	// journaled; nil serves journaled zones only.
	Fallback Source
	// JournalMax bounds the versions kept per zone; default
	// DefaultJournalMax. The journal is also cut when it holds more
	// records than the zone itself, as a full transfer is then cheaper.
	JournalMax int
	// Logger receives one line per transfer; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil does not register them.
	Registerer prometheus.Registerer
}

// Server is a zone-transfer server. Its methods are safe for concurrent use.
type Server struct {
	cfg        Config
	keys       map[string]string // canonical key name -> secret
	allowFrom  []netip.Prefix
	unsigned   []netip.Prefix
	log        *slog.Logger
	refusals   *refusalLog
	met        *metrics
	journalMax int

	mu    sync.RWMutex
	zones map[string]*zone // journaled zones by canonical name

	setMu sync.Mutex // serialises SetZone

	ctx          context.Context               // cancelled by Shutdown; bounds NOTIFY
	notifyCancel map[string]context.CancelFunc // by zone; guarded by mu
	notifySem    chan struct{}
	cancel       context.CancelFunc
	wg           sync.WaitGroup

	srvMu   sync.Mutex
	servers []*dns.Server
	addrs   []net.Addr
}

// New validates cfg and returns a server that is not yet listening; SetZone
// may be called before Start.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, zones: make(map[string]*zone), journalMax: cfg.JournalMax,
		notifyCancel: make(map[string]context.CancelFunc), notifySem: make(chan struct{}, maxNotifyInFlight)}
	if s.journalMax <= 0 {
		s.journalMax = DefaultJournalMax
	}
	if s.cfg.NotifyAttempts <= 0 {
		s.cfg.NotifyAttempts = DefaultNotifyAttempts
	}
	if s.cfg.NotifyBackoff <= 0 {
		s.cfg.NotifyBackoff = DefaultNotifyBackoff
	}
	if s.cfg.NotifyTimeout <= 0 {
		s.cfg.NotifyTimeout = DefaultNotifyTimeout
	}
	s.keys = make(map[string]string, len(cfg.TSIGKeys))
	for name, secret := range cfg.TSIGKeys {
		if _, ok := dns.IsDomainName(name); !ok || name == "" {
			return nil, fmt.Errorf("xfr config: bad tsig key name %q", name)
		}
		if _, err := base64.StdEncoding.DecodeString(secret); err != nil || secret == "" {
			return nil, fmt.Errorf("xfr config: tsig key %q: secret is not base64", name)
		}
		s.keys[dns.CanonicalName(name)] = secret
	}
	if cfg.NotifyKey != "" {
		if _, ok := s.keys[dns.CanonicalName(cfg.NotifyKey)]; !ok {
			return nil, fmt.Errorf("xfr config: notify key %q is not in tsig keys", cfg.NotifyKey)
		}
	}
	for _, n := range cfg.Notify {
		if _, _, err := net.SplitHostPort(n); err != nil {
			return nil, fmt.Errorf("xfr config: notify target %q: %w", n, err)
		}
	}
	s.allowFrom = cfg.AllowFrom
	if len(s.allowFrom) == 0 {
		s.allowFrom = DefaultAllowFrom()
	}
	s.unsigned = cfg.AllowUnsigned
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "xfr")
	s.refusals = newRefusalLog()
	var err error
	if s.met, err = newMetrics(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("xfr metrics: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start listens on every cfg.Listen address over UDP and TCP and serves in
// the background until Shutdown. ctx bounds the start-up only.
func (s *Server) Start(ctx context.Context) error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if len(s.servers) > 0 {
		return errors.New("xfr: already started")
	}
	tsig := make(map[string]string, len(s.keys))
	for k, v := range s.keys {
		tsig[k] = v
	}
	var started []chan struct{}
	fail := func(err error) error {
		for _, srv := range s.servers {
			_ = srv.Shutdown()
		}
		s.servers, s.addrs = nil, nil
		return err
	}
	for _, addr := range s.cfg.Listen {
		pc, ln, err := bindPair(ctx, addr)
		if err != nil {
			return fail(err)
		}
		for _, srv := range []*dns.Server{
			{PacketConn: pc, Handler: s, TsigSecret: tsig},
			{Listener: ln, Handler: s, TsigSecret: tsig, WriteTimeout: 30 * time.Second, ReadTimeout: 10 * time.Second},
		} {
			ch := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(ch) }
			started = append(started, ch)
			s.servers = append(s.servers, srv)
			s.wg.Go(func() {
				if err := srv.ActivateAndServe(); err != nil {
					s.log.Error("serving", "err", err)
				}
			})
		}
		s.addrs = append(s.addrs, pc.LocalAddr(), ln.Addr())
	}
	for _, ch := range started {
		select {
		case <-ch:
		case <-ctx.Done():
			return fail(fmt.Errorf("xfr start: %w", ctx.Err()))
		}
	}
	s.log.Info("listening", "addrs", fmt.Sprint(s.addrs))
	return nil
}

// Addrs returns the bound addresses, UDP and TCP for each Listen entry.
func (s *Server) Addrs() []net.Addr {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// Shutdown stops the listeners, cancels pending NOTIFYs and waits for the
// server's goroutines, at most until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	s.srvMu.Lock()
	var errs []error
	for _, srv := range s.servers {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.servers = nil
	s.srvMu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xfr shutdown: %w", err)
	}
	return nil
}

func (s *Server) zone(name string) *zone {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.zones[name]
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(w dns.ResponseWriter) netip.Addr {
	var ap netip.AddrPort
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		if a != nil {
			ap, _ = netip.ParseAddrPort(a.String())
		}
	}
	return ap.Addr().Unmap()
}

func isUDP(w dns.ResponseWriter) bool {
	_, tcp := w.LocalAddr().(*net.TCPAddr)
	return !tcp && !strings.HasPrefix(w.LocalAddr().Network(), "tcp")
}

// bindPair binds addr on UDP and TCP with the same port. When the port is 0
// the kernel picks the UDP port, which another process may hold on TCP: then
// it tries again with another, a few times.
func bindPair(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("xfr listen address %q: %w", addr, err)
	}
	for attempt := 0; ; attempt++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("xfr listening on udp %s: %w", addr, err)
		}
		tcpAddr := pc.LocalAddr().String()
		ln, err := lc.Listen(ctx, "tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt >= 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("xfr listening on tcp %s: %w", tcpAddr, err)
		}
	}
}
