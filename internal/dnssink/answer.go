package dnssink

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/servedset"
)

// headSize is how many bytes of a malformed packet go into its event.
const headSize = 64

// packetInfo tells the packet handler where a request came from.
type packetInfo struct {
	src, dst netip.AddrPort
	tcp      bool
}

// reqState is what handlePacket needs for one request and can reuse for
// the next: the messages, the lower-case name, our OPT, the backing arrays
// of the sections and of the A/AAAA records. Nothing in it may be
// referenced after handlePacket returns.
type reqState struct {
	req, resp     dns.Msg
	name          [256]byte
	opt           dns.OPT
	question      [1]dns.Question
	answer, extra [4]dns.RR
	a             [4]dns.A
	aaaa          [4]dns.AAAA
	na, naaaa     int
}

var reqStates = sync.Pool{New: func() any { return new(reqState) }}

// newA returns a zeroed A record, from the arena while it lasts (st may be
// nil: then always a new one).
func (st *reqState) newA() *dns.A {
	if st != nil && st.na < len(st.a) {
		st.na++
		return &st.a[st.na-1]
	}
	return new(dns.A)
}

// newAAAA returns a zeroed AAAA record, from the arena while it lasts.
func (st *reqState) newAAAA() *dns.AAAA {
	if st != nil && st.naaaa < len(st.aaaa) {
		st.naaaa++
		return &st.aaaa[st.naaaa-1]
	}
	return new(dns.AAAA)
}

// reset clears st for reuse, dropping every reference it holds.
func (st *reqState) reset() {
	*st = reqState{}
}

// query is the parsed request with what the answer and the event need.
type query struct {
	raw   []byte
	req   *dns.Msg
	q     dns.Question
	lname []byte // qname in lower case, presentation format, with the dot
	st    *reqState
	opt   *dns.OPT
	do    bool
	ecs   *dns.EDNS0_SUBNET
	ecsS  string
	ck    *dns.EDNS0_COOKIE
	size  int // UDP payload size the client accepts
	now   time.Time
	// signed: the answer is a signed zone's, with its signatures (the DO
	// bit); answerZone sets it.
	signed bool
}

// handlePacket answers one raw DNS request: it returns the packed response
// appended to out[:0], or nil when nothing is to be sent (the request was
// a response, too short to have a header, or rate-limited). It records the
// events of the request.
// It is safe for concurrent use and is the function the listeners, the
// fuzz target and the benchmarks share.
func (s *Server) handlePacket(out, raw []byte, pi *packetInfo) []byte {
	now := s.now()
	if len(raw) < 12 {
		s.m.malformed.Inc()
		s.recordMalformed(raw, pi, now, "")
		return nil
	}
	if raw[2]&0x80 != 0 {
		// A response: never answer one, that is how loops start.
		return nil
	}
	if !s.noFast {
		if resp, ok := s.fastAnswer(out, raw, pi, now); ok {
			return resp
		}
	}
	st := reqStates.Get().(*reqState)
	defer func() {
		st.reset()
		reqStates.Put(st)
	}()
	req := &st.req
	if err := req.Unpack(raw); err != nil {
		s.m.malformed.Inc()
		s.recordMalformed(raw, pi, now, "FORMERR")
		return s.finishRaw(out, formErr(raw), pi, now)
	}
	if badOPT(req) {
		// RFC 6891 section 6.1.1: FORMERR, without an OPT (which of the
		// client's would it answer?), so never larger than the query.
		s.m.malformed.Inc()
		s.recordMalformed(raw, pi, now, "FORMERR")
		resp := new(dns.Msg)
		resp.SetRcode(req, dns.RcodeFormatError)
		if len(req.Question) != 1 {
			resp.Question = nil
		}
		return s.finish(out, resp, pi, dns.MinMsgSize, now, 0, nil, false)
	}
	if req.Opcode != dns.OpcodeQuery {
		resp := new(dns.Msg)
		resp.SetRcode(req, dns.RcodeNotImplemented)
		return s.finish(out, resp, pi, dns.MinMsgSize, now, 0, nil, false)
	}
	if len(req.Question) != 1 {
		s.m.malformed.Inc()
		s.recordMalformed(raw, pi, now, "FORMERR")
		resp := new(dns.Msg)
		resp.SetRcode(req, dns.RcodeFormatError)
		resp.Question = nil
		return s.finish(out, resp, pi, dns.MinMsgSize, now, 0, nil, false)
	}

	qu := query{raw: raw, req: req, q: req.Question[0], size: dns.MinMsgSize, now: now, st: st}
	qu.lname = appendLower(st.name[:0], qu.q.Name)

	// resp.SetReply(req), without allocating.
	resp := &st.resp
	resp.Id, resp.Response, resp.Opcode = req.Id, true, req.Opcode
	resp.RecursionDesired, resp.CheckingDisabled = req.RecursionDesired, req.CheckingDisabled
	resp.Rcode = dns.RcodeSuccess
	st.question[0] = req.Question[0]
	resp.Question = st.question[:]
	resp.Answer, resp.Extra = st.answer[:0], st.extra[:0]
	if opt := req.IsEdns0(); opt != nil {
		if rc := s.parseEDNS(&qu, opt); rc != dns.RcodeSuccess {
			// BADVERS or a malformed cookie: answer with our OPT only.
			resp.Rcode = rc
			s.addOPT(resp, &qu, pi)
			return s.finish(out, resp, pi, qu.size, now, 0, nil, false)
		}
	}

	v := s.view.Load()
	zm, served := v.set.Lookup(qu.lname)
	xfr := qu.q.Qtype == dns.TypeAXFR || qu.q.Qtype == dns.TypeIXFR
	var owner []byte // what the rate limiter keys the response by
	if !served || xfr || (qu.q.Qclass != dns.ClassINET && qu.q.Qclass != dns.ClassANY) {
		// Never a resolver: what is not ours is refused, and so are
		// transfers (the transfer server has a port of its own) and
		// other classes.
		resp.Rcode = dns.RcodeRefused
		if !served {
			s.m.refused.Inc()
		}
	} else {
		owner = v.answerZone(resp, &qu, zm)
	}
	s.addOPT(resp, &qu, pi)
	packed := s.finish(out, resp, pi, qu.size, now, qu.q.Qtype, owner, qu.signed)
	if served {
		s.recordQuery(pi, v.set, zm, qu.lname, qu.q.Qtype, len(qu.raw), qu.do, qu.ecsS, now, resp.Rcode)
	}
	return packed
}

// parseEDNS reads the client's OPT record into qu; it returns the rcode to
// answer at once (BADVERS, FORMERR for a bad cookie) or RcodeSuccess.
func (s *Server) parseEDNS(qu *query, opt *dns.OPT) int {
	qu.opt = opt
	qu.do = opt.Do()
	qu.size = clamp(int(opt.UDPSize()), dns.MinMsgSize, s.maxUDP)
	for _, o := range opt.Option {
		switch o := o.(type) {
		case *dns.EDNS0_SUBNET:
			qu.ecs = o
			if a, ok := netip.AddrFromSlice(o.Address); ok {
				a = a.Unmap()
				if o.Family == 2 && a.Is4() {
					a = netip.AddrFrom16(a.As16())
				}
				if p, err := a.Prefix(int(o.SourceNetmask)); err == nil {
					qu.ecsS = p.String()
				}
			}
		case *dns.EDNS0_COOKIE:
			// RFC 7873: a client cookie of 8 bytes, optionally followed
			// by a server cookie of 8 to 32 bytes. Hex in miekg/dns.
			if n := len(o.Cookie); n != 16 && (n < 32 || n > 80 || n%2 != 0) {
				return dns.RcodeFormatError
			}
			qu.ck = o
		}
	}
	if opt.Version() != 0 {
		return dns.RcodeBadVers
	}
	return dns.RcodeSuccess
}

// addOPT gives resp our OPT record if the request had one: our buffer
// size, the DO bit copied, the client subnet echoed with scope 0 (the
// answer is the same for every network), and the cookie completed with a
// server cookie.
func (s *Server) addOPT(resp *dns.Msg, qu *query, pi *packetInfo) {
	if qu.opt == nil {
		return
	}
	var opt *dns.OPT
	if qu.st != nil {
		opt = &qu.st.opt
	} else {
		opt = new(dns.OPT)
	}
	opt.Hdr = dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}
	opt.SetUDPSize(uint16(s.maxUDP))
	if qu.do {
		opt.SetDo()
	}
	if qu.ecs != nil {
		qu.ecs.SourceScope = 0
		opt.Option = append(opt.Option, qu.ecs)
	}
	if qu.ck != nil {
		if c, ok := s.cookie(qu.ck.Cookie, pi.src.Addr(), qu.now); ok {
			qu.ck.Cookie = c
			opt.Option = append(opt.Option, qu.ck)
		}
	}
	resp.Extra = append(resp.Extra, opt)
}

// node kinds inside a zone.
const (
	nodeApex     = iota
	nodeWildcard // any name below the apex that the zone does not name
	nodeHost     // an NS name inside the zone: its glue addresses
	nodeEmpty    // an empty non-terminal above an in-zone NS name
	nodeNX       // below an in-zone NS name, where the wildcard does not reach
)

// classify places the relative part of the query name (lower case, with
// its trailing dot, "" at the apex) in the zone.
func (a *answers) classify(apex string, rel []byte) (kind, host int) {
	if len(rel) == 0 {
		return nodeApex, -1
	}
	rel = rel[:len(rel)-1]
	for i := range a.ns {
		h, ok := inZone(a.ns[i].name, apex)
		if !ok {
			continue
		}
		switch {
		case string(rel) == h:
			return nodeHost, i
		case len(h) > len(rel) && h[len(h)-len(rel)-1] == '.' && h[len(h)-len(rel):] == string(rel):
			kind = nodeEmpty
		case len(rel) > len(h) && rel[len(rel)-len(h)-1] == '.' && string(rel[len(rel)-len(h):]) == h:
			return nodeNX, i
		}
	}
	if kind == nodeEmpty {
		return nodeEmpty, -1
	}
	return nodeWildcard, -1
}

// inZone returns the part of name (lower case, no trailing dot) below
// apex, and whether name is strictly below apex.
func inZone(name, apex string) (string, bool) {
	n := len(name) - len(apex)
	if n < 2 || name[n-1] != '.' || name[n:] != apex {
		return "", false
	}
	return name[:n-1], true
}

// answerZone fills resp with the answer for a name in a served zone. It
// returns the name the rate limiter counts the answer by (lower case): the
// zone apex, for the apex and for every name the wildcard answers, or the
// name of an in-zone name server.
func (v *view) answerZone(resp *dns.Msg, qu *query, zm servedset.Match) []byte {
	s := v.ans
	serial := v.set.Serial()
	resp.Authoritative = true
	owner := qu.q.Name // as asked: 0x20 case survives
	apexFQDN := qu.q.Name[zm.Start:]
	rrlOwner := qu.lname[zm.Start:]
	kind, host := s.classify(zm.Apex, qu.lname[:zm.Start])
	if kind == nodeNX {
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, s.soa(apexFQDN, zm.Apex, serial, s.negTTL))
		return rrlOwner
	}
	if kind == nodeHost {
		rrlOwner = qu.lname
	}
	var sz *signedZone
	if kind == nodeApex || kind == nodeWildcard {
		sz = v.signedOrAsk(zm)
	}
	if sz != nil {
		// A signed zone's serial is the one it was signed at.
		serial = sz.serial
		if qu.do {
			qu.signed = true
			return v.answerSigned(resp, qu, zm, sz, kind == nodeWildcard)
		}
	}
	qt := qu.q.Qtype
	if qt == dns.TypeANY && kind != nodeEmpty {
		// RFC 8482 section 4.2: one synthesized HINFO instead of the set.
		resp.Answer = append(resp.Answer, &dns.HINFO{
			Hdr: s.hdr(owner, dns.TypeHINFO), Cpu: "RFC8482",
		})
		return rrlOwner
	}
	switch {
	case kind == nodeEmpty:
	case kind == nodeHost:
		switch qt {
		case dns.TypeA:
			resp.Answer = s.appendA(qu.st, resp.Answer, owner, s.ns[host].v4)
		case dns.TypeAAAA:
			resp.Answer = s.appendAAAA(qu.st, resp.Answer, owner, s.ns[host].v6)
		}
	default:
		switch qt {
		case dns.TypeA:
			resp.Answer = s.appendA(qu.st, resp.Answer, owner, s.a)
		case dns.TypeAAAA:
			resp.Answer = s.appendAAAA(qu.st, resp.Answer, owner, s.aaaa)
		case dns.TypeMX:
			mx := "mx." + zm.Apex + "."
			resp.Answer = append(resp.Answer, &dns.MX{Hdr: s.hdr(owner, dns.TypeMX), Preference: 10, Mx: mx})
			v4, v6 := s.addrsAt(zm.Apex, "mx")
			resp.Extra = s.appendA(nil, resp.Extra, mx, v4)
			resp.Extra = s.appendAAAA(nil, resp.Extra, mx, v6)
		case dns.TypeTXT:
			if txt := v.txts[zm.Case]; len(txt) > 0 {
				resp.Answer = append(resp.Answer, &dns.TXT{Hdr: s.hdr(owner, dns.TypeTXT), Txt: txt})
			}
		case dns.TypeSOA:
			if kind == nodeApex {
				resp.Answer = append(resp.Answer, s.soa(owner, zm.Apex, serial, s.ttl))
			}
		case dns.TypeDNSKEY:
			if kind == nodeApex && sz != nil {
				for i := range sz.zk.keys {
					k := sz.zk.keys[i].DNSKEY(zm.Apex, s.ttl)
					k.Hdr.Name = owner
					resp.Answer = append(resp.Answer, k)
				}
			}
		case dns.TypeNS:
			if kind == nodeApex {
				for i := range s.ns {
					resp.Answer = append(resp.Answer, &dns.NS{Hdr: s.hdr(owner, dns.TypeNS), Ns: s.ns[i].fqdn})
				}
				for i := range s.ns {
					resp.Extra = s.appendA(nil, resp.Extra, s.ns[i].fqdn, s.ns[i].v4)
					resp.Extra = s.appendAAAA(nil, resp.Extra, s.ns[i].fqdn, s.ns[i].v6)
				}
			}
		}
	}
	if len(resp.Answer) == 0 {
		// NODATA: the name exists, the type does not.
		resp.Ns = append(resp.Ns, s.soa(apexFQDN, zm.Apex, serial, s.negTTL))
		return qu.lname[zm.Start:]
	}
	return rrlOwner
}

// addrsAt returns the addresses of rel.apex: the glue of an in-zone NS name,
// else the sinkhole addresses of the wildcard.
func (s *answers) addrsAt(apex, rel string) (v4, v6 []net.IP) {
	for i := range s.ns {
		if h, ok := inZone(s.ns[i].name, apex); ok && h == rel {
			return s.ns[i].v4, s.ns[i].v6
		}
	}
	return s.a, s.aaaa
}

func (s *answers) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.ttl}
}

// appendA appends an A record per address, taken from st's arena while it
// lasts (st may be nil).
func (s *answers) appendA(st *reqState, rrs []dns.RR, name string, ips []net.IP) []dns.RR {
	for _, ip := range ips {
		a := st.newA()
		a.Hdr, a.A = s.hdr(name, dns.TypeA), ip
		rrs = append(rrs, a)
	}
	return rrs
}

// appendAAAA is appendA for AAAA records.
func (s *answers) appendAAAA(st *reqState, rrs []dns.RR, name string, ips []net.IP) []dns.RR {
	for _, ip := range ips {
		a := st.newAAAA()
		a.Hdr, a.AAAA = s.hdr(name, dns.TypeAAAA), ip
		rrs = append(rrs, a)
	}
	return rrs
}

// soa returns the SOA of apex with owner name owner.
func (s *answers) soa(owner, apex string, serial, ttl uint32) *dns.SOA {
	mbox := s.mbox
	if mbox == "" {
		mbox = "hostmaster." + apex + "."
	}
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  s.ns[0].fqdn, Mbox: mbox, Serial: serial,
		Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: s.negTTL,
	}
}

// finish applies rate limiting and truncation to resp, counts it and packs
// it into out. qtype and owner key an answer, NODATA or NXDOMAIN for the
// rate limiter (see classOf); errors are keyed by the client alone. A
// signed answer (signed) also counts against the client's budget of
// signed answers.
func (s *Server) finish(out []byte, resp *dns.Msg, pi *packetInfo, size int, now time.Time, qtype uint16, owner []byte, signed bool) []byte {
	s.m.query(pi.tcp, resp.Rcode)
	if !pi.tcp {
		class, act := s.rrl.limit(pi.src.Addr(), classOf(resp.Rcode, len(resp.Answer) > 0), qtype, owner, signed, now)
		switch act {
		case rrlDrop:
			s.m.rrlDrop[class].Inc()
			return nil
		case rrlSlip:
			s.m.rrlSlip[class].Inc()
			resp.Answer, resp.Ns = nil, nil
			extra := resp.Extra[:0]
			for _, rr := range resp.Extra {
				if rr.Header().Rrtype == dns.TypeOPT {
					extra = append(extra, rr)
				}
			}
			resp.Extra = extra
			resp.Truncated = true
		}
		resp.Truncate(size)
	} else {
		resp.Compress = true
	}
	packed, err := resp.PackBuffer(out[:cap(out)])
	if err != nil {
		s.log.Error("packing response", "err", err)
		return nil
	}
	return packed
}

// finishRaw is finish for a response that is already packed (FORMERR for
// a packet that did not parse).
func (s *Server) finishRaw(out, resp []byte, pi *packetInfo, now time.Time) []byte {
	s.m.query(pi.tcp, int(resp[3]&0x0f))
	if !pi.tcp {
		switch s.rrl.check(pi.src.Addr(), rrlMalformed, 0, nil, now) {
		case rrlDrop:
			s.m.rrlDrop[rrlMalformed].Inc()
			return nil
		case rrlSlip:
			s.m.rrlSlip[rrlMalformed].Inc()
			resp[2] |= 0x02 // TC
		}
	}
	return append(out[:0], resp...)
}

// badOPT reports whether req breaks RFC 6891 section 6.1.1: more than one
// OPT record, an OPT outside the additional section, or one whose owner is
// not the root.
func badOPT(req *dns.Msg) bool {
	n := 0
	for _, rr := range req.Extra {
		if h := rr.Header(); h.Rrtype == dns.TypeOPT {
			if n++; n > 1 || h.Name != "." {
				return true
			}
		}
	}
	for _, sec := range [][]dns.RR{req.Answer, req.Ns} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				return true
			}
		}
	}
	return false
}

// formErr builds a FORMERR response from the header of a packet that does
// not parse: same ID, opcode and RD, no sections.
func formErr(raw []byte) []byte {
	return []byte{raw[0], raw[1], 0x80 | raw[2]&0x79, dns.RcodeFormatError, 0, 0, 0, 0, 0, 0, 0, 0}
}

// recordQuery hands the event of a query for a served name to the
// recorder. (Its arguments are separate values, not the query, so that the
// fast path's name buffer stays on the stack.)
func (s *Server) recordQuery(pi *packetInfo, set *servedset.Snapshot, zm servedset.Match, lname []byte, qtype uint16, size int, do bool, ecs string, now time.Time, rcode int) {
	if s.rec == nil {
		return
	}
	if n := len(lname); n > 1 && lname[n-1] == '.' {
		lname = lname[:n-1]
	}
	e := s.baseEvent(pi, now)
	e.Domain = string(lname)
	c := set.Case(zm.Case)
	e.Zone = zm.Apex
	e.Case = c.Name
	e.Family = c.Family
	e.DNSQType = qtypeString(qtype)
	e.DNSRcode = rcodeString(rcode)
	e.Bytes = int64(size)
	e.DNSDO = do
	e.DNSClientSubnet = ecs
	s.rec.Record(e)
	s.putEvent(e)
	s.m.recorded.Inc()
}

// recordMalformed records a packet that failed to parse or was not a
// single-question query; rcode is what was answered, "" for nothing.
func (s *Server) recordMalformed(raw []byte, pi *packetInfo, now time.Time, rcode string) {
	if s.rec == nil {
		return
	}
	e := s.baseEvent(pi, now)
	e.Malformed = true
	e.DNSRcode = rcode
	e.Bytes = int64(len(raw))
	sum := sha256.Sum256(raw)
	e.PayloadSHA256 = hex.EncodeToString(sum[:])
	e.PayloadHead = append([]byte(nil), raw[:min(len(raw), headSize)]...)
	s.rec.Record(e)
	s.putEvent(e)
	s.m.recorded.Inc()
}

func (s *Server) baseEvent(pi *packetInfo, now time.Time) *event.Event {
	tr := event.TransportUDP
	if pi.tcp {
		tr = event.TransportTCP
	}
	e := events.Get().(*event.Event)
	*e = event.Event{
		Time:      now.UTC(),
		Sensor:    s.cfg.Sensor,
		Protocol:  event.ProtoDNS,
		Transport: tr,
		SrcIP:     pi.src.Addr(),
		SrcPort:   pi.src.Port(),
		DstIP:     pi.dst.Addr(),
		DstPort:   pi.dst.Port(),
	}
	return e
}

// events recycles the events handed to the Recorder, which may not keep
// them.
var events = sync.Pool{New: func() any { return new(event.Event) }}

func (s *Server) putEvent(e *event.Event) {
	*e = event.Event{}
	events.Put(e)
}

// appendLower appends name to b in ASCII lower case.
func appendLower(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}
