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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/listen/sink"
)

// Defaults of Config fields left zero.
const (
	DefaultTTL            = 300
	DefaultNegativeTTL    = 60
	DefaultMaxUDPSize     = 1232
	DefaultMaxTCPConns    = 1024
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultRRLTableSize   = 1 << 16
)

// nameServer is a normalized Config.NameServers entry.
type nameServer struct {
	name   string // lower case, no trailing dot
	fqdn   string
	v4, v6 []net.IP
}

// Server is the authoritative DNS sinkhole. Make it with New, give it zones
// with SetZones (before or after Start), and stop it with Shutdown.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	rec    Recorder
	m      *metrics
	rrl    *rateLimiter
	ns     []nameServer
	a      []net.IP
	aaaa   []net.IP
	ttl    uint32
	negTTL uint32
	mbox   string // SOA RNAME; "" means hostmaster.<zone>
	maxUDP int
	// noBatch makes UDP workers read and write one datagram a system
	// call even where recvmmsg/sendmmsg are available (tests).
	noBatch bool
	// noRaw makes them wait in the runtime's poller instead of blocking
	// in the kernel (tests).
	noRaw bool
	// fast holds the pre-packed records of the fast path; noFast sends
	// every packet down the general path (tests compare the two).
	fast   fastRRs
	noFast bool

	cookieSecret [32]byte
	macPool      sync.Pool

	snap  atomic.Pointer[snapshot]
	setMu sync.Mutex // serializes SetZones

	// life binds, accepts, keeps the TCP connections and shuts down;
	// the blocking UDP readers (raw) leave when it is closing.
	life *sink.Lifecycle
	raw  []*rawUDP
}

// New checks cfg and returns a server that serves no zones yet.
func New(cfg Config) (*Server, error) {
	s := &Server{
		cfg:    cfg,
		log:    sink.Logger(cfg.Logger, "dnssink"),
		now:    cfg.Now,
		rec:    cfg.Recorder,
		ttl:    cfg.TTL,
		negTTL: cfg.NegativeTTL,
		maxUDP: cfg.MaxUDPSize,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.negTTL == 0 {
		s.negTTL = DefaultNegativeTTL
	}
	if s.maxUDP == 0 {
		s.maxUDP = DefaultMaxUDPSize
	}
	if s.maxUDP < dns.MinMsgSize || s.maxUDP > 4096 {
		return nil, fmt.Errorf("dnssink: max udp size %d is not from 512 to 4096", cfg.MaxUDPSize)
	}
	if len(cfg.NameServers) == 0 {
		return nil, errors.New("dnssink: no name servers")
	}
	for _, n := range cfg.NameServers {
		name, ok := normalizeName(n.Name)
		if !ok {
			return nil, fmt.Errorf("dnssink: name server %q is not a domain name", n.Name)
		}
		ns := nameServer{name: name, fqdn: name + "."}
		for _, a := range n.Addrs {
			switch a = a.Unmap(); {
			case a.Is4():
				ns.v4 = append(ns.v4, a.AsSlice())
			case a.Is6():
				ns.v6 = append(ns.v6, a.AsSlice())
			default:
				return nil, fmt.Errorf("dnssink: name server %q has an invalid address", n.Name)
			}
		}
		s.ns = append(s.ns, ns)
	}
	for _, a := range cfg.A {
		if !a.Unmap().Is4() {
			return nil, fmt.Errorf("dnssink: A address %q is not ipv4", a)
		}
		s.a = append(s.a, a.Unmap().AsSlice())
	}
	for _, a := range cfg.AAAA {
		if !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("dnssink: AAAA address %q is not ipv6", a)
		}
		s.aaaa = append(s.aaaa, a.AsSlice())
	}
	if h := strings.TrimSpace(cfg.Hostmaster); h != "" {
		if local, domain, ok := strings.Cut(h, "@"); ok {
			h = strings.ReplaceAll(local, ".", "\\.") + "." + domain
		}
		h = dns.Fqdn(strings.ToLower(h))
		if _, ok := dns.IsDomainName(h); !ok {
			return nil, fmt.Errorf("dnssink: hostmaster %q is not a domain name", cfg.Hostmaster)
		}
		s.mbox = h
	}
	s.packFast()

	rrl := cfg.RRL
	if rrl.ResponsesPerSecond < 0 || rrl.ErrorsPerSecond < 0 || rrl.Slip < 0 {
		return nil, fmt.Errorf("dnssink: rrl rates %d and %d and slip %d must not be negative", rrl.ResponsesPerSecond, rrl.ErrorsPerSecond, rrl.Slip)
	}
	for i, p := range rrl.Exempt {
		if !p.IsValid() {
			return nil, fmt.Errorf("dnssink: rrl exempt prefix %d is not a valid prefix", i)
		}
	}
	if rrl.IPv4PrefixLen == 0 {
		rrl.IPv4PrefixLen = 24
	}
	if rrl.IPv6PrefixLen == 0 {
		rrl.IPv6PrefixLen = 56
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
	sn, _ := buildSnapshot(nil, 0)
	s.snap.Store(sn)
	return s, nil
}

// SetZones makes zones the served set. The new snapshot is built aside and
// swapped in atomically: queries see the old set or the new one, never a
// mix, and never wait. If anything changed, the SOA serial increases (to
// the current unix time, or by one if that is not larger) and
// Config.OnChange is called. Zones with invalid names are skipped and
// logged; of duplicate names the first wins.
func (s *Server) SetZones(zones []Zone) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	start := time.Now()
	old := s.snap.Load()
	sn, skipped := buildSnapshot(zones, old.serial)
	if skipped > 0 {
		s.log.Warn("skipping zones with invalid names", "skipped", skipped)
	}
	if sameContent(old, sn) {
		return
	}
	serial := uint32(s.now().Unix())
	if int32(serial-old.serial) <= 0 { // RFC 1982 serial arithmetic
		serial = old.serial + 1
	}
	sn.serial = serial
	s.snap.Store(sn)
	s.m.swaps.Inc()
	s.m.zones.Set(float64(len(sn.zones)))
	s.m.serial.Set(float64(serial))
	s.log.Info("zones swapped", "zones", len(sn.zones), "serial", serial, "took", time.Since(start))
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(serial)
	}
}

// Zone tells whether name (a host name, any case, with or without the
// trailing dot) is in a served zone, and which: the zone, the case that
// seized it and the family that case names. The listeners use it to
// attribute a request for a seized name.
func (s *Server) Zone(name string) (zone, caseName, family string, ok bool) {
	var buf [256]byte
	if len(name) > 253 {
		return "", "", "", false
	}
	b := appendLower(buf[:0], name)
	if len(b) == 0 || b[len(b)-1] != '.' {
		b = append(b, '.')
	}
	sn := s.snap.Load()
	zm, found := sn.lookup(b)
	if !found {
		return "", "", "", false
	}
	return zm.apex, sn.cases[zm.meta.caseID], sn.families[zm.meta.caseID], true
}

// Serial returns the SOA serial of the served snapshot; 0 before the first
// SetZones with zones in it.
func (s *Server) Serial() uint32 { return s.snap.Load().serial }

// ZoneRecords returns the whole content of the served zone name (any case,
// trailing dot optional) for a zone transfer, and whether it is served:
// the SOA first, then NS, the glue of NS names inside the zone, apex A,
// AAAA, MX and TXT, and the wildcard *.<zone> A, AAAA, MX and TXT. The
// SOA carries the serial of the snapshot the records come from; use it
// rather than Serial, which may have moved on. Owner names are lower case.
func (s *Server) ZoneRecords(name string) ([]dns.RR, bool) {
	sn := s.snap.Load()
	apex, ok := normalizeName(name)
	if !ok {
		return nil, false
	}
	meta, ok := sn.zones[apex]
	if !ok {
		return nil, false
	}
	fqdn := apex + "."
	rrs := []dns.RR{s.soa(fqdn, apex, sn.serial, s.ttl)}
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
	txt := sn.txts[meta.txtID]
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
	rw := &responseWriter{s: s, udp: c, local: local}
	pi := packetInfo{dst: local, rw: rw}
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable surfacing as a read error
		}
		pi.src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		rw.remote = src
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
	rw := &responseWriter{s: s, tcp: c,
		local:  c.LocalAddr().(*net.TCPAddr).AddrPort(),
		remote: c.RemoteAddr().(*net.TCPAddr).AddrPort()}
	defer func() {
		if !rw.hijacked {
			c.Close()
		}
	}()
	pi := packetInfo{
		src: netip.AddrPortFrom(rw.remote.Addr().Unmap(), rw.remote.Port()),
		dst: netip.AddrPortFrom(rw.local.Addr().Unmap(), rw.local.Port()),
		tcp: true, rw: rw,
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
		if rw.closed || rw.hijacked {
			return
		}
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

// responseWriter is the dns.ResponseWriter that Config.Transfer gets.
type responseWriter struct {
	s             *Server
	udp           *net.UDPConn
	raw           *rawUDP // instead of udp, with blocking readers
	tcp           net.Conn
	local, remote netip.AddrPort

	rcode      int
	wrote      bool
	closed     bool
	hijacked   bool
	tsigStatus error
	tsigOnly   bool
	tsigMAC    string
}

var _ dns.ResponseWriter = (*responseWriter)(nil)

// begin resets w for the request req (raw is its wire form) and checks
// its TSIG.
func (w *responseWriter) begin(req *dns.Msg, raw []byte) {
	w.rcode, w.wrote, w.tsigStatus, w.tsigOnly, w.tsigMAC = dns.RcodeServerFailure, false, nil, false, ""
	if w.udp != nil || w.raw != nil {
		w.closed = false // Close means nothing on UDP; the socket is shared
	}
	if t := req.IsTsig(); t != nil {
		p := w.s.cfg.TsigProvider
		if p == nil {
			w.tsigStatus = dns.ErrSecret
			return
		}
		w.tsigStatus = dns.TsigVerifyWithProvider(raw, p, "", false)
		w.tsigMAC = t.MAC
	}
}

// LocalAddr returns the server address the request came to.
func (w *responseWriter) LocalAddr() net.Addr {
	if w.tcp != nil {
		return net.TCPAddrFromAddrPort(w.local)
	}
	return net.UDPAddrFromAddrPort(w.local)
}

// RemoteAddr returns the client address.
func (w *responseWriter) RemoteAddr() net.Addr {
	if w.tcp != nil {
		return net.TCPAddrFromAddrPort(w.remote)
	}
	return net.UDPAddrFromAddrPort(w.remote)
}

// WriteMsg packs m, signing it if it carries a TSIG RR, and sends it.
func (w *responseWriter) WriteMsg(m *dns.Msg) error {
	if !w.wrote {
		w.rcode, w.wrote = m.Rcode, true
	}
	p := w.s.cfg.TsigProvider
	if p != nil && m.IsTsig() != nil {
		data, mac, err := dns.TsigGenerateWithProvider(m, p, w.tsigMAC, w.tsigOnly)
		if err != nil {
			return fmt.Errorf("signing response: %w", err)
		}
		w.tsigMAC = mac
		_, err = w.Write(data)
		return err
	}
	data, err := m.Pack()
	if err != nil {
		return fmt.Errorf("packing response: %w", err)
	}
	_, err = w.Write(data)
	return err
}

// Write sends one packed message.
func (w *responseWriter) Write(b []byte) (int, error) {
	if w.closed {
		return 0, errors.New("write after close")
	}
	if !w.wrote && len(b) >= 4 {
		w.rcode, w.wrote = int(b[3]&0x0f), true
	}
	if w.raw != nil {
		return w.raw.sendTo(b, w.remote)
	}
	if w.udp != nil {
		return w.udp.WriteToUDPAddrPort(b, w.remote)
	}
	if len(b) > dns.MaxMsgSize {
		return 0, errors.New("message too large")
	}
	msg := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(msg, uint16(len(b)))
	copy(msg[2:], b)
	_ = w.tcp.SetWriteDeadline(time.Now().Add(w.s.cfg.TCPIdleTimeout))
	n, err := w.tcp.Write(msg)
	return max(0, n-2), err
}

// Close closes a TCP connection after the current request.
func (w *responseWriter) Close() error {
	w.closed = true
	if w.tcp != nil {
		return w.tcp.Close()
	}
	return nil
}

// TsigStatus is nil for a request without TSIG or with a valid one, else
// the verification error (dns.ErrSecret when no Config.TsigProvider is set).
func (w *responseWriter) TsigStatus() error { return w.tsigStatus }

// TsigTimersOnly makes the next signatures cover only the timers (RFC 8945
// section 5.3.1, for the messages of a long transfer).
func (w *responseWriter) TsigTimersOnly(b bool) { w.tsigOnly = b }

// Hijack hands a TCP connection to the handler: the server stops reading
// it and will not close it.
func (w *responseWriter) Hijack() { w.hijacked = true }
