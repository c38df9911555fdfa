package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config sets up a Lifecycle.
type Config struct {
	// Name is the sink's package name ("httpsink"): it starts every error
	// of Start and is the subsystem of the metrics
	// (takedown_<Name>_connections_total, …).
	Name string
	// Protocols names the kinds of stream listener the sink binds, by the
	// protocol of their events ("http", "https"); a listener's kind is
	// its index here. It is the protocol label of the metrics and log
	// lines.
	Protocols []string
	// Limits bound the open connections of each listening address; a
	// connection over a limit is counted, handed to Refused and closed.
	// Zero: no limit.
	Limits Limits
	// SharedLimits makes Limits bound the connections of every listening
	// address together rather than of each.
	SharedLimits bool
	// Refused, if set, records a connection that a limit turned away as
	// an event; c is nil when the sink accepted it by itself (HTTP's
	// event loops), src and dst are its addresses. It must not keep c.
	Refused func(kind int, c net.Conn, src, dst netip.AddrPort, reason string)
	// Logger receives the start, stop and accept-error lines; it is the
	// sink's own (see Logger). Nil: discard.
	Logger *slog.Logger
	// Registerer receives the connection metrics and Collectors, the
	// sink's own; nil: not registered.
	Registerer prometheus.Registerer
	Collectors []prometheus.Collector
}

// Logger returns the logger of a sink's package: l (nil discards) with
// the component named once, by the package itself.
func Logger(l *slog.Logger, component string) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.With("component", component)
}

// Limit returns a connection limit of a sink's Config: v, or def when v
// is zero; a negative v means no limit (0).
func Limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Lifecycle is what every sink does around its protocol: bind every
// address or none, accept within the limits, record refusals, keep the
// open connections, shut down with a deadline, count it all. A sink makes
// one in New, binds and starts serving through Start and stops through
// Shutdown; its methods are safe for concurrent use.
type Lifecycle struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	// mu serializes Start and Shutdown, and guards started, socks and
	// addrs.
	mu      sync.Mutex
	started bool
	socks   []io.Closer // listeners and packet sockets, as bound
	addrs   []net.Addr

	// closing is set, under cmu, when Shutdown begins.
	closing atomic.Bool
	cmu     sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup // goroutines started by Go
}

// New returns the lifecycle of a sink that has not bound anything yet.
func New(cfg Config) (*Lifecycle, error) {
	l := &Lifecycle{cfg: cfg, log: cfg.Logger, conns: map[net.Conn]struct{}{}}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer, cfg.Name, cfg.Protocols, cfg.Collectors)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	l.m = m
	return l, nil
}

// Start binds the sink's addresses, all of them or none: bind binds each
// through b, and if it fails every socket it bound is closed and its
// error returned, prefixed with the sink's name. Then serve starts what
// serves the sockets (Accept, Serve, Go); Shutdown waits until it has
// returned. Start fails after Shutdown and when called twice.
func (l *Lifecycle) Start(bind func(b *Binder) error, serve func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return fmt.Errorf("%s: already started", l.cfg.Name)
	}
	if l.closing.Load() {
		return fmt.Errorf("%s: shut down", l.cfg.Name)
	}
	b := &Binder{l: l}
	if err := bind(b); err != nil {
		for _, c := range b.socks {
			c.Close()
		}
		return fmt.Errorf("%s: %w", l.cfg.Name, err)
	}
	l.started, l.socks, l.addrs = true, b.socks, b.addrs
	for i, a := range b.addrs {
		l.log.Info("listening", "protocol", b.protos[i], "network", a.Network(), "addr", a.String())
	}
	serve()
	return nil
}

// Addrs returns the bound addresses in the order they were bound, which
// is the order of the sink's Config (useful with port 0); nil before
// Start.
func (l *Lifecycle) Addrs() []net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]net.Addr(nil), l.addrs...)
}

// Closing reports whether Shutdown has begun.
func (l *Lifecycle) Closing() bool { return l.closing.Load() }

// Go runs f on a goroutine that Shutdown waits for. Once Shutdown has
// begun it runs nothing and reports false.
func (l *Lifecycle) Go(f func()) bool {
	l.cmu.Lock()
	if l.closing.Load() {
		l.cmu.Unlock()
		return false
	}
	l.wg.Add(1)
	l.cmu.Unlock()
	go func() {
		defer l.wg.Done()
		f()
	}()
	return true
}

// Accept takes ln's connections on a goroutine of its own until ln is
// closed, and hands each to accepted, on that goroutine: accepted starts
// what serves the connection and returns. Errors such as running out of
// file descriptors are waited out with a pause that grows to a second.
func (l *Lifecycle) Accept(kind int, ln net.Listener, accepted func(c net.Conn)) {
	l.Go(func() {
		var pause time.Duration
		for {
			c, err := ln.Accept()
			if err != nil {
				if l.closing.Load() || errors.Is(err, net.ErrClosed) {
					return
				}
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				l.log.Warn("accept failed; pausing", "protocol", l.cfg.Protocols[kind], "err", err, "pause", pause.String())
				time.Sleep(pause)
				continue
			}
			pause = 0
			accepted(c)
		}
	})
}

// Serve accepts ln's connections as Accept does and serves each with
// serve on a goroutine of its own, counted open and kept (Track) until
// serve returns; serve closes c.
func (l *Lifecycle) Serve(kind int, ln net.Listener, serve func(c net.Conn)) {
	l.Accept(kind, ln, func(c net.Conn) {
		if !l.Track(c) {
			c.Close()
			return
		}
		l.Opened(kind)
		go func() {
			defer l.Untrack(c)
			defer l.Closed(kind)
			serve(c)
		}()
	})
}

// Track keeps c among the open connections that Shutdown wakes and waits
// for, until Untrack. Once Shutdown has begun it keeps nothing and
// reports false: the caller closes c.
func (l *Lifecycle) Track(c net.Conn) bool {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if l.closing.Load() {
		return false
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	return true
}

// Untrack forgets c, which has ended.
func (l *Lifecycle) Untrack(c net.Conn) {
	l.cmu.Lock()
	delete(l.conns, c)
	l.cmu.Unlock()
	l.wg.Done()
}

// Conns calls f for every open connection and returns how many there
// are. f runs with the connections locked: it must not block, nor Track
// or Untrack.
func (l *Lifecycle) Conns(f func(c net.Conn)) int {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	for c := range l.conns {
		f(c)
	}
	return len(l.conns)
}

// Opened counts a connection of kind accepted within the limits and open.
func (l *Lifecycle) Opened(kind int) {
	l.m.conns[kind].Inc()
	l.m.open[kind].Inc()
}

// Closed counts a connection of kind closed.
func (l *Lifecycle) Closed(kind int) { l.m.open[kind].Dec() }

// Refuse counts a connection of kind that a limit turned away, for
// reason, and hands it to Config.Refused; c is nil where the sink
// accepted it by itself.
func (l *Lifecycle) Refuse(kind int, c net.Conn, src, dst netip.AddrPort, reason string) {
	i := 0
	if reason == ReasonPerIP {
		i = 1
	}
	l.m.refused[kind][i].Inc()
	if l.cfg.Refused != nil {
		l.cfg.Refused(kind, c, src, dst, reason)
	}
}

// Stop is what a sink's Shutdown does beside the lifecycle's own steps.
type Stop struct {
	// Halt, if set, runs once the bound sockets are closed, before the
	// connections are woken: the sink stops there what serves without
	// them (event loops; an HTTP/2 server, which drains alongside).
	Halt func(ctx context.Context)
	// Wake makes the open connections end: the idle ones at once, the
	// busy ones as soon as they can; with force, all of them now. It
	// returns how many are open (Conns). Nil closes them all at once.
	Wake func(force bool) int
	// Drained, if set, runs once no connection is open or the deadline
	// has closed the rest, before Shutdown waits for the goroutines; its
	// error is Shutdown's if the deadline was kept.
	Drained func() error
}

// Shutdown stops the sink: it stops accepting and reading (it closes every
// bound socket), runs stop.Halt, calls stop.Wake every 20 ms until no
// connection is open or ctx ends, when stop.Wake(true) ends the rest,
// runs stop.Drained and waits for every goroutine started by Go. It logs
// how long it took, and returns ctx's error if the deadline cut
// connections short. Only the first call does anything; after a Shutdown
// before Start, Start fails.
func (l *Lifecycle) Shutdown(ctx context.Context, stop Stop) error {
	start := time.Now()
	l.mu.Lock()
	l.cmu.Lock()
	if l.closing.Load() {
		l.cmu.Unlock()
		l.mu.Unlock()
		return nil
	}
	l.closing.Store(true)
	l.cmu.Unlock()
	for _, c := range l.socks {
		c.Close()
	}
	l.mu.Unlock()
	if stop.Halt != nil {
		stop.Halt(ctx)
	}
	wake := stop.Wake
	if wake == nil {
		wake = l.closeAll
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for wake(false) > 0 {
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
			err = ctx.Err()
			wake(true)
		}
		break
	}
	if stop.Drained != nil {
		if e := stop.Drained(); err == nil {
			err = e
		}
	}
	l.wg.Wait()
	l.log.Info("stopped", "took", time.Since(start).String())
	return err
}

// closeAll closes every open connection and returns how many are open.
func (l *Lifecycle) closeAll(bool) int {
	return l.Conns(func(c net.Conn) { c.Close() })
}

// Binder binds a sink's addresses for Start, which closes them all if
// one fails.
type Binder struct {
	l      *Lifecycle
	socks  []io.Closer
	addrs  []net.Addr
	protos []string
	shared *counts // with Config.SharedLimits, once a listener is bound
}

// Listen binds a stream listener of kind on addr with listen (such as a
// net.ListenConfig's Listen) and returns it within the limits. An error
// names the protocol and the address.
func (b *Binder) Listen(ctx context.Context, kind int, addr string, listen func(ctx context.Context, network, addr string) (net.Listener, error)) (*Listener, error) {
	ln, err := listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener on %q: %w", b.l.cfg.Protocols[kind], addr, err)
	}
	return b.Adopt(kind, ln), nil
}

// ListenAll binds a stream listener of kind on every address of addrs, as
// Listen does.
func (b *Binder) ListenAll(ctx context.Context, kind int, addrs []string, listen func(ctx context.Context, network, addr string) (net.Listener, error)) ([]*Listener, error) {
	var lns []*Listener
	for _, a := range addrs {
		ln, err := b.Listen(ctx, kind, a, listen)
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// Adopt takes ln, bound by the sink itself, as a listener of kind and
// returns it within the limits.
func (b *Binder) Adopt(kind int, ln net.Listener) *Listener {
	l := b.l
	var n *counts
	if l.cfg.SharedLimits {
		n = b.shared
	}
	lim := limit(ln, l.cfg.Limits, n, func(c net.Conn, reason string) {
		l.Refuse(kind, c, AddrPort(c.RemoteAddr()), AddrPort(c.LocalAddr()), reason)
	})
	b.shared = lim.n
	b.add(l.cfg.Protocols[kind], lim, ln.Addr())
	return lim
}

// ListenPacket binds a packet socket of protocol (for log lines and
// errors) on addr with listen (such as a net.ListenConfig's
// ListenPacket). An error names the protocol and the address.
func (b *Binder) ListenPacket(ctx context.Context, protocol, addr string, listen func(ctx context.Context, network, addr string) (net.PacketConn, error)) (net.PacketConn, error) {
	pc, err := listen(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener on %q: %w", protocol, addr, err)
	}
	b.AdoptPacket(protocol, pc)
	return pc, nil
}

// AdoptPacket takes pc, bound by the sink itself, as a packet socket of
// protocol.
func (b *Binder) AdoptPacket(protocol string, pc net.PacketConn) {
	b.add(protocol, pc, pc.LocalAddr())
}

func (b *Binder) add(protocol string, c io.Closer, a net.Addr) {
	b.socks = append(b.socks, c)
	b.addrs = append(b.addrs, a)
	b.protos = append(b.protos, protocol)
}
