package dnssink

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/listen/sink"
	"github.com/takedown-project/takedown/internal/servedset"
)

// Defaults of Config fields left zero.
const (
	DefaultTTL            = 300
	DefaultNegativeTTL    = 60
	DefaultMaxUDPSize     = 1232
	DefaultMaxTCPConns    = 1024
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultRRLTableSize   = 1 << 16
	DefaultRRLIPv4Prefix  = 24
	DefaultRRLIPv6Prefix  = 56
)

// Server is the authoritative DNS sinkhole. Make it with New, start it with
// Start, and stop it with Shutdown; it answers from Config.Served and
// follows its changes.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	rec    Recorder
	m      *metrics
	rrl    *rateLimiter
	maxUDP int
	// noBatch makes UDP workers read and write one datagram a system
	// call even where recvmmsg/sendmmsg are available (tests).
	noBatch bool
	// noRaw makes them wait in the runtime's poller instead of blocking
	// in the kernel (tests).
	noRaw bool
	// noFast sends every packet down the general path (tests compare the
	// fast path with it).
	noFast bool

	cookieSecret [32]byte
	macPool      sync.Pool

	// view is the served set as the answers read it; unsubscribe stops
	// following the set.
	view        atomic.Pointer[view]
	unsubscribe func()
	// own replaces the served set's A and AAAA (Config.A, Config.AAAA).
	own *servedset.Sinkhole
	// sign keeps the signed zones (a goroutine once a case signs).
	sign *signer

	// life binds, accepts, keeps the TCP connections and shuts down;
	// the blocking UDP readers (raw) leave when it is closing.
	life *sink.Lifecycle
	raw  []*rawUDP
}

// New checks cfg and returns a server that answers from cfg.Served.
func New(cfg Config) (*Server, error) {
	s := &Server{
		cfg:    cfg,
		log:    sink.Logger(cfg.Logger, "dnssink"),
		now:    cfg.Now,
		rec:    cfg.Recorder,
		maxUDP: cfg.MaxUDPSize,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.Served == nil {
		return nil, errors.New("dnssink: no served set")
	}
	if s.maxUDP == 0 {
		s.maxUDP = DefaultMaxUDPSize
	}
	if s.maxUDP < dns.MinMsgSize || s.maxUDP > 4096 {
		return nil, fmt.Errorf("dnssink: max udp size %d is not from 512 to 4096", cfg.MaxUDPSize)
	}
	rrl := cfg.RRL
	if rrl.ResponsesPerSecond < 0 || rrl.ErrorsPerSecond < 0 || rrl.SignedPerSecond < 0 || rrl.Slip < 0 {
		return nil, fmt.Errorf("dnssink: rrl rates %d, %d and %d and slip %d must not be negative", rrl.ResponsesPerSecond, rrl.ErrorsPerSecond, rrl.SignedPerSecond, rrl.Slip)
	}
	for i, p := range rrl.Exempt {
		if !p.IsValid() {
			return nil, fmt.Errorf("dnssink: rrl exempt prefix %d is not a valid prefix", i)
		}
	}
	if rrl.IPv4PrefixLen == 0 {
		rrl.IPv4PrefixLen = DefaultRRLIPv4Prefix
	}
	if rrl.IPv6PrefixLen == 0 {
		rrl.IPv6PrefixLen = DefaultRRLIPv6Prefix
	}
	if rrl.IPv4PrefixLen < 0 || rrl.IPv4PrefixLen > 32 || rrl.IPv6PrefixLen < 0 || rrl.IPv6PrefixLen > 128 {
		return nil, fmt.Errorf("dnssink: rrl prefix lengths /%d and /%d are out of range", rrl.IPv4PrefixLen, rrl.IPv6PrefixLen)
	}
	tableSize := cfg.RRLTableSize
	if tableSize <= 0 {
		tableSize = DefaultRRLTableSize
	}
	s.rrl = newRateLimiter(rrl, tableSize)
	s.cfg.RRL = rrl

	if s.cfg.UDPWorkers <= 0 {
		// One per CPU: a P above that (serve keeps one for the store
		// writer) would only make the readers take turns.
		s.cfg.UDPWorkers = min(runtime.NumCPU(), runtime.GOMAXPROCS(0))
	}
	if s.cfg.MaxTCPConns <= 0 {
		s.cfg.MaxTCPConns = DefaultMaxTCPConns
	}
	if s.cfg.TCPIdleTimeout <= 0 {
		s.cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	}

	if _, err := rand.Read(s.cookieSecret[:]); err != nil {
		return nil, fmt.Errorf("dnssink: making the cookie secret: %w", err)
	}
	s.macPool.New = s.newMAC

	s.m = newMetrics()
	var err error
	s.life, err = sink.New(sink.Config{
		Name: "dnssink", Protocols: []string{"dns"},
		Limits: sink.Limits{Max: s.cfg.MaxTCPConns}, SharedLimits: true,
		Logger: s.log, Registerer: cfg.Registerer, Collectors: s.m.collectors,
	})
	if err != nil {
		return nil, err
	}
	// Follow the served set from now on; then take its current snapshot
	// (a step in between is taken twice, which changes nothing).
	signed := newSignedZones()
	signed.urgent = make(chan string, urgentQueue)
	s.sign = newSigner(s, signed, DefaultResignCheck)
	s.unsubscribe = cfg.Served.Subscribe(func(u servedset.Update) { s.follow(u.New, u.Delta) })
	if len(cfg.A)+len(cfg.AAAA) > 0 {
		s.own = &servedset.Sinkhole{A: cfg.A, AAAA: cfg.AAAA}
	}
	v, err := newView(cfg.Served.Load(), nil, s.own, s.sign.zones)
	if err != nil {
		s.unsubscribe()
		return nil, fmt.Errorf("dnssink: served set: %w", err)
	}
	s.setView(v)
	s.sign.note(nil, v)
	return s, nil
}

// follow makes the sinkhole answer from set, a new snapshot of the served
// set. What cannot be answered from (the served set checks what it takes,
// so it never happens) is logged and the answers stay as they were.
func (s *Server) follow(set *servedset.Snapshot, d *servedset.Delta) {
	start := time.Now()
	v, err := newView(set, s.view.Load(), s.own, s.sign.zones)
	if err != nil {
		s.log.Error("served set refused", "serial", set.Serial(), "err", err)
		return
	}
	s.setView(v)
	s.sign.note(d, v)
	s.log.Info("zones swapped", "zones", set.Len(), "serial", set.Serial(), "took", time.Since(start))
}

func (s *Server) setView(v *view) {
	s.view.Store(v)
	s.m.swaps.Inc()
	s.m.zones.Set(float64(v.set.Len()))
	s.m.serial.Set(float64(v.set.Serial()))
}

// Serial returns the SOA serial of the served snapshot; 0 before the served
// set has one.
func (s *Server) Serial() uint32 { return s.view.Load().set.Serial() }

// ZoneRecords returns the whole content of the served zone name (any case,
// trailing dot optional) for a zone transfer, and whether it is served:
// the SOA first, then NS, the glue of NS names inside the zone, apex A,
// AAAA, MX and TXT, and the wildcard *.<zone> A, AAAA, MX and TXT; a
// signed zone also its DNSKEY, the NSEC chain <zone> → *.<zone> → <zone>
// and every RRset's RRSIGs. The SOA carries the serial of the snapshot the
// records come from (of a signed zone: the serial it was signed at); use
// it rather than Serial, which may have moved on. Owner names are lower
// case.
func (s *Server) ZoneRecords(name string) ([]dns.RR, bool) {
	return s.view.Load().zoneRecords(name)
}

// ZoneSource gives the zone-transfer server the content of the sinkhole
// zones straight from the served set, whether or not a sinkhole answers
// queries in this process (a central with `dns.listen: []` still serves
// its secondaries); its ZoneRecords is Server.ZoneRecords. It signs the
// zones of signing cases when a transfer (or a query of the transfer
// server) first asks for them, and again when their keys, TXT or answers
// changed or half their signatures' validity has passed.
type ZoneSource struct {
	served *servedset.Set
	now    func() time.Time
	view   atomic.Pointer[view] // of the last snapshot asked for
	signed *signedZones
	mu     sync.Mutex // serialises the signing
}

// NewZoneSource returns the zone source of served.
func NewZoneSource(served *servedset.Set) *ZoneSource {
	return &ZoneSource{served: served, now: time.Now, signed: newSignedZones()}
}

// ZoneRecords is Server.ZoneRecords for the current snapshot of the set.
func (z *ZoneSource) ZoneRecords(name string) ([]dns.RR, bool) {
	set, v := z.served.Load(), z.view.Load()
	if v == nil || v.set != set {
		var err error
		if v, err = newView(set, v, nil, z.signed); err != nil {
			return nil, false
		}
		z.view.Store(v)
		z.forget(v)
	}
	if m, ok := v.set.Lookup([]byte(lowerName(name))); ok && m.Start == 0 && int(m.Case) < len(v.signs) {
		if zk := v.signs[m.Case]; zk != nil && !zk.ans.holdsNS(m.Apex) {
			z.mu.Lock()
			now := z.now()
			if prev := z.signed.get(m.Apex); prev == nil || prev.zk != zk || prev.refreshDue(now) {
				if sz, err := zk.sign(m.Apex, nextSerial(prev, set.Serial()), now); err == nil {
					z.signed.put(m.Apex, sz)
				}
			}
			z.mu.Unlock()
		}
	}
	return v.zoneRecords(name)
}

// forget drops the signed zones that v no longer signs.
func (z *ZoneSource) forget(v *view) {
	if z.signed.n.Load() == 0 {
		return
	}
	for _, apex := range z.signed.apexes() {
		if m, ok := v.set.Lookup([]byte(apex)); !ok || m.Start != 0 || int(m.Case) >= len(v.signs) || v.signs[m.Case] == nil {
			z.signed.del(apex)
		}
	}
}

func (v *view) zoneRecords(name string) ([]dns.RR, bool) {
	c, ok := v.set.Has(name)
	if !ok {
		return nil, false
	}
	s := v.ans
	apex := lowerName(name)
	if m, ok := v.set.Lookup([]byte(apex)); ok && m.Start == 0 {
		if sz := v.signedFor(m); sz != nil {
			return sz.records(m.Apex), true
		}
	}
	fqdn := apex + "."
	rrs := []dns.RR{s.soa(fqdn, apex, v.set.Serial(), s.ttl)}
	for i := range s.ns {
		rrs = append(rrs, &dns.NS{Hdr: s.hdr(fqdn, dns.TypeNS), Ns: s.ns[i].fqdn})
	}
	for i := range s.ns {
		if _, in := inZone(s.ns[i].name, apex); in {
			rrs = s.appendA(nil, rrs, s.ns[i].fqdn, s.ns[i].v4)
			rrs = s.appendAAAA(nil, rrs, s.ns[i].fqdn, s.ns[i].v6)
		}
	}
	mx := "mx." + fqdn
	txt := splitTXT(c.TXT)
	for _, owner := range []string{fqdn, "*." + fqdn} {
		rrs = s.appendA(nil, rrs, owner, s.a)
		rrs = s.appendAAAA(nil, rrs, owner, s.aaaa)
		rrs = append(rrs, &dns.MX{Hdr: s.hdr(owner, dns.TypeMX), Preference: 10, Mx: mx})
		if len(txt) > 0 {
			rrs = append(rrs, &dns.TXT{Hdr: s.hdr(owner, dns.TypeTXT), Txt: txt})
		}
	}
	return rrs, true
}

// Start binds every Config.Listen address on UDP and TCP (the same port on
// both; port 0 picks a free one) and serves until Shutdown. ctx bounds the
// binding only. If any address fails, nothing stays bound.
func (s *Server) Start(ctx context.Context) error {
	if len(s.cfg.Listen) == 0 {
		return errors.New("dnssink: no listen addresses")
	}
	var udp []*net.UDPConn
	var tcp []*sink.Listener
	return s.life.Start(func(b *sink.Binder) error {
		for _, addr := range s.cfg.Listen {
			u, t, err := bindPair(ctx, addr)
			if err != nil {
				return err
			}
			b.AdoptPacket("dns", u)
			udp, tcp = append(udp, u), append(tcp, b.Adopt(0, t))
		}
		return nil
	}, func() {
		for _, u := range udp {
			local := sink.AddrPort(u.LocalAddr())
			if !s.noBatch && !s.noRaw && s.startRaw(u, local) {
				continue
			}
			for range s.cfg.UDPWorkers {
				s.life.Go(func() { s.serveUDP(u, local) })
			}
		}
		for _, l := range tcp {
			s.life.Serve(0, l, s.serveConn)
		}
	})
}

// bindPair binds addr on UDP and on TCP with the same port. For port 0 it
// retries with another port when TCP finds the UDP port taken.
func bindPair(ctx context.Context, addr string) (*net.UDPConn, *net.TCPListener, error) {
	var lc net.ListenConfig
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	for attempt := 0; ; attempt++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("binding udp %s: %w", addr, err)
		}
		u := pc.(*net.UDPConn)
		taddr := addr
		if port == "0" {
			host, _, _ := net.SplitHostPort(addr)
			taddr = net.JoinHostPort(host, fmt.Sprint(u.LocalAddr().(*net.UDPAddr).Port))
		}
		l, err := lc.Listen(ctx, "tcp", taddr)
		if err == nil {
			return u, l.(*net.TCPListener), nil
		}
		u.Close()
		if port != "0" || attempt >= 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("binding tcp %s: %w", taddr, err)
		}
	}
}

// Addrs returns the bound addresses: for each Config.Listen address its
// UDP then its TCP socket.
func (s *Server) Addrs() []net.Addr { return s.life.Addrs() }

// UDPAddr returns the i-th bound UDP address, in Config.Listen order.
func (s *Server) UDPAddr(i int) netip.AddrPort {
	return s.Addrs()[2*i].(*net.UDPAddr).AddrPort()
}

// TCPAddr returns the i-th bound TCP address, in Config.Listen order.
func (s *Server) TCPAddr(i int) netip.AddrPort {
	return s.Addrs()[2*i+1].(*net.TCPAddr).AddrPort()
}

// Shutdown closes the sockets and the open TCP connections and waits for
// the serving goroutines; connections that have not ended when ctx ends
// are closed again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.unsubscribe()
	s.sign.shutdown()
	return s.life.Shutdown(ctx, sink.Stop{Halt: func(context.Context) {
		for _, r := range s.raw {
			r.wake()
		}
	}})
}

func (s *Server) serveUDP(c *net.UDPConn, local netip.AddrPort) {
	if !s.noBatch && s.serveUDPBatch(c, local) {
		return
	}
	buf := make([]byte, dns.MaxMsgSize)
	out := make([]byte, 0, 4096)
	pi := packetInfo{dst: local}
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable surfacing as a read error
		}
		pi.src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		resp := s.handlePacket(out, buf[:n], &pi)
		if resp != nil {
			_, _ = c.WriteToUDPAddrPort(resp, src)
			out = resp[:0]
		}
	}
}

// serveConn answers the queries of one TCP connection in order (RFC 7766
// allows that) until the client closes it or is idle too long, and closes
// it unless a handler took it over.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	pi := packetInfo{
		src: netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()),
		dst: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()),
		tcp: true,
	}
	var lenBuf [2]byte
	buf := make([]byte, 0, 512)
	out := make([]byte, 2, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		resp := s.handlePacket(out[2:2], buf, &pi)
		if resp == nil {
			continue
		}
		// resp lives in out[2:] unless it outgrew it; prefix the length.
		if len(resp) > 0 && &resp[0] != &out[2:3][0] {
			out = append(out[:2], resp...)
		} else {
			out = out[:2+len(resp)]
		}
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		_ = c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}
