package xfr

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Transfer message sizing: records are packed uncompressed to measure them,
// so a message never exceeds the 64 KiB TCP limit even before compression.
const (
	maxMsgBytes = 32 << 10
	tsigReserve = 256
	maxUDPSize  = 1232
)

var _ dns.Handler = (*Server)(nil)

// ServeDNS answers one request: AXFR and IXFR of served zones, and queries
// for the apex of a served zone (secondaries and RPZ consumers ask for the
// SOA before they transfer). Everything else is refused: the server is not a
// resolver and serves no names below an apex.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	if r.Response || len(r.Question) != 1 {
		s.reply(w, r, nil, dns.RcodeFormatError, nil, nil)
		return
	}
	if misplacedOPT(r) {
		// RFC 6891 section 6.1.1; no OPT in the answer, which of the
		// client's would it answer?
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		if err := w.WriteMsg(m); err != nil {
			s.log.Debug("writing reply", "err", err)
		}
		return
	}
	q := r.Question[0]
	typ := transferType(q.Qtype)
	src := remoteAddr(w)
	if r.Opcode != dns.OpcodeQuery {
		s.reply(w, r, nil, dns.RcodeNotImplemented, nil, nil)
		return
	}
	if !containsAddr(s.allowFrom, src) {
		s.refused(w, r, nil, typ, refuseACL, src)
		return
	}
	tsig := r.IsTsig()
	if tsig != nil {
		if err := w.TsigStatus(); err != nil {
			s.notAuth(w, r, tsig, err)
			if typ != "" {
				s.met.transfer(typ, "notauth")
			}
			s.logRefusal(r, typ, refusal{refuseBadTSIG.code, "tsig: " + err.Error()}, src, "key", tsig.Hdr.Name)
			return
		}
	} else if !containsAddr(s.unsigned, src) {
		s.refused(w, r, nil, typ, refuseUnsigned, src)
		return
	}

	name := dns.CanonicalName(q.Name)
	switch q.Qtype {
	case dns.TypeAXFR:
		if isUDP(w) {
			// RFC 5936 section 4.2: AXFR is not defined over UDP.
			s.refused(w, r, tsig, typ, refuseAXFRUDP, src)
			return
		}
		s.transfer(w, r, tsig, name, typ, src, start)
	case dns.TypeIXFR:
		s.transfer(w, r, tsig, name, typ, src, start)
	default:
		s.query(w, r, tsig, name, q.Qtype, src)
	}
}

// misplacedOPT reports whether r breaks RFC 6891 section 6.1.1: more than
// one OPT record, one outside the additional section, or one whose owner
// is not the root.
func misplacedOPT(r *dns.Msg) bool {
	opts := 0
	for sec, rrs := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range rrs {
			if h := rr.Header(); h.Rrtype == dns.TypeOPT {
				opts++
				if sec < 2 || opts > 1 || h.Name != "." {
					return true
				}
			}
		}
	}
	return false
}

func transferType(t uint16) string {
	switch t {
	case dns.TypeAXFR:
		return "axfr"
	case dns.TypeIXFR:
		return "ixfr"
	}
	return ""
}

// content returns a served zone: the journal state and current version of
// a journaled zone, or the records of a Fallback zone as a version.
func (s *Server) content(name string) (st *state, c Content, soa *dns.SOA) {
	if z := s.zone(name); z != nil {
		st = z.st.Load()
		return st, st.cur.content, st.cur.soa
	}
	if s.cfg.Fallback == nil {
		return nil, nil, nil
	}
	rrs, ok := s.cfg.Fallback.ZoneRecords(name)
	if !ok || len(rrs) == 0 {
		return nil, nil, nil
	}
	soa, ok = rrs[0].(*dns.SOA)
	if !ok || !strings.EqualFold(soa.Hdr.Name, name) {
		s.log.Error("fallback zone does not start with its SOA", "zone", name)
		return nil, nil, nil
	}
	return nil, &rrList{apex: apexOf(name, rrs), rrs: rrs}, soa
}

func (s *Server) query(w dns.ResponseWriter, r *dns.Msg, tsig *dns.TSIG, name string, qtype uint16, src netip.Addr) {
	_, c, soa := s.content(name)
	if soa == nil {
		s.refused(w, r, tsig, "", refuseNotServed, src)
		return
	}
	var ans []dns.RR
	for _, rr := range c.Apex() {
		if qtype == dns.TypeANY || rr.Header().Rrtype == qtype {
			ans = append(ans, rr)
		}
	}
	if len(ans) == 0 {
		s.reply(w, r, tsig, dns.RcodeSuccess, nil, []dns.RR{soa})
		return
	}
	s.reply(w, r, tsig, dns.RcodeSuccess, ans, nil)
}

// transfer serves AXFR and IXFR.
func (s *Server) transfer(w dns.ResponseWriter, r *dns.Msg, tsig *dns.TSIG, name, typ string, src netip.Addr, start time.Time) {
	st, c, soa := s.content(name)
	if soa == nil {
		s.met.transfer(typ, "notfound")
		s.logRefusal(r, typ, refuseNotServed, src)
		s.reply(w, r, tsig, dns.RcodeNotAuth, nil, nil)
		return
	}
	attrs := []any{"zone", name, "type", typ, "client", src.String(), "serial", soa.Serial}
	if tsig != nil {
		attrs = append(attrs, "key", tsig.Hdr.Name)
	}
	var plan ixfrPlan
	if typ == "ixfr" {
		var clientSOA *dns.SOA
		for _, rr := range r.Ns {
			if x, ok := rr.(*dns.SOA); ok {
				clientSOA = x
			}
		}
		if clientSOA == nil {
			s.met.transfer(typ, "formerr")
			s.reply(w, r, tsig, dns.RcodeFormatError, nil, nil)
			return
		}
		attrs = append(attrs, "client_serial", clientSOA.Serial)
		if st != nil {
			plan = st.plan(clientSOA.Serial)
		} else {
			plan = ixfrPlan{upToDate: !serialLess(clientSOA.Serial, soa.Serial), full: true}
		}
		// RFC 1995 section 2: the current SOA alone tells a client that it
		// is up to date or, over UDP, that it must retry over TCP.
		if plan.upToDate || isUDP(w) {
			result := "uptodate"
			if !plan.upToDate {
				result = "tcp"
			}
			s.met.transfer(typ, result)
			s.reply(w, r, tsig, dns.RcodeSuccess, []dns.RR{soa}, nil)
			if !plan.upToDate {
				s.log.Debug("transfer", append(attrs, "result", result)...)
			}
			return
		}
	} else {
		plan.full = true
	}

	out := &streamer{w: w, req: r, tsig: tsig}
	result := "full"
	if plan.full {
		c.Records(func(rr dns.RR) bool {
			out.add(rr)
			return out.err == nil
		})
		out.add(soa)
	} else {
		result = "incremental"
		out.add(soa)
		out.add(plan.fromSOA)
		for _, rr := range plan.del {
			out.add(rr)
		}
		out.add(soa)
		for _, rr := range plan.add {
			out.add(rr)
		}
		out.add(soa)
		attrs = append(attrs, "steps", plan.steps, "deleted", len(plan.del), "added", len(plan.add))
	}
	out.flush()
	w.TsigTimersOnly(false) // the next request on this connection starts afresh
	attrs = append(attrs, "records", out.rrs, "messages", out.msgs, "duration", time.Since(start).Round(time.Microsecond))
	if out.err != nil {
		s.met.transfer(typ, "error")
		s.log.Warn("transfer failed", append(attrs, "err", out.err)...)
		return
	}
	s.met.transfer(typ, result)
	s.log.Info("transfer", append(attrs, "result", result)...)
}

// streamer sends a transfer as a sequence of messages.
type streamer struct {
	w    dns.ResponseWriter
	req  *dns.Msg
	tsig *dns.TSIG
	k    keyer

	pending []dns.RR
	size    int
	msgs    int
	rrs     int
	err     error
}

func (o *streamer) add(rr dns.RR) {
	if o.err != nil {
		return
	}
	b, err := o.k.pack(rr)
	if err != nil {
		o.err = err
		return
	}
	n := len(b)
	if len(o.pending) > 0 && o.size+n > maxMsgBytes-tsigReserve {
		o.flush()
	}
	o.pending = append(o.pending, rr)
	o.size += n
	o.rrs++
}

func (o *streamer) flush() {
	if o.err != nil || len(o.pending) == 0 {
		return
	}
	m := new(dns.Msg)
	m.SetReply(o.req)
	m.Authoritative = true
	m.Compress = true
	m.Answer = o.pending
	if o.tsig != nil {
		m.SetTsig(o.tsig.Hdr.Name, o.tsig.Algorithm, 300, time.Now().Unix())
	}
	if err := o.w.WriteMsg(m); err != nil {
		o.err = err
		return
	}
	if o.tsig != nil {
		o.w.TsigTimersOnly(true)
	}
	o.msgs++
	o.pending = o.pending[:0:0]
	o.size = 0
}

// reply sends a single-message answer, signed if the request was.
func (s *Server) reply(w dns.ResponseWriter, r *dns.Msg, tsig *dns.TSIG, rcode int, ans, ns []dns.RR) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.Authoritative = rcode == dns.RcodeSuccess
	m.Answer, m.Ns = ans, ns
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(maxUDPSize, false)
	}
	if isUDP(w) {
		m.Truncate(udpSize(r))
	}
	if tsig != nil {
		m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, time.Now().Unix())
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("writing reply", "err", err)
	}
}

func udpSize(r *dns.Msg) int {
	if opt := r.IsEdns0(); opt != nil {
		return max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize)) - tsigReserve
	}
	return dns.MinMsgSize
}

// refused answers REFUSED, counts it and logs it (at most once per source
// and reason every refusalLogEvery).
func (s *Server) refused(w dns.ResponseWriter, r *dns.Msg, tsig *dns.TSIG, typ string, why refusal, src netip.Addr) {
	if typ != "" {
		s.met.transfer(typ, "refused")
	}
	s.logRefusal(r, typ, why, src)
	s.reply(w, r, tsig, dns.RcodeRefused, nil, nil)
}

// logRefusal counts a refused request of src (a transfer of type typ, or
// a query when typ is "") and logs it if the refusal log lets it, with
// attrs added to the line.
func (s *Server) logRefusal(r *dns.Msg, typ string, why refusal, src netip.Addr, attrs ...any) {
	s.met.refused.WithLabelValues(why.code).Inc()
	ok, quiet, unlogged := s.refusals.allow(src, typ, why)
	if !ok {
		return
	}
	msg := "transfer refused"
	if typ == "" {
		msg = "query refused"
		typ = strings.ToLower(dns.TypeToString[r.Question[0].Qtype])
	}
	line := []any{"zone", r.Question[0].Name, "type", typ, "client", src.String(), "reason", why.text}
	line = append(line, attrs...)
	if quiet > 0 {
		line = append(line, "suppressed", quiet)
	}
	if unlogged > 0 {
		line = append(line, "unlogged_other_sources", unlogged)
	}
	s.log.Warn(msg, line...)
}

// notAuth answers a request whose TSIG failed verification with NOTAUTH and
// an unsigned TSIG record that carries the TSIG error (RFC 8945 section
// 5.2): BADKEY for an unknown key or algorithm, BADTIME for a stale
// signature, BADSIG otherwise.
func (s *Server) notAuth(w dns.ResponseWriter, r *dns.Msg, t *dns.TSIG, verr error) {
	code := dns.RcodeBadSig
	switch {
	case errors.Is(verr, dns.ErrSecret), errors.Is(verr, dns.ErrKeyAlg):
		code = dns.RcodeBadKey
	case errors.Is(verr, dns.ErrTime):
		code = dns.RcodeBadTime
	}
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeNotAuth)
	m.Extra = append(m.Extra, &dns.TSIG{
		Hdr:        dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  t.Algorithm,
		TimeSigned: t.TimeSigned,
		Fudge:      t.Fudge,
		OrigId:     r.Id,
		Error:      uint16(code),
	})
	buf, err := m.Pack()
	if err == nil {
		_, err = w.Write(buf)
	}
	if err != nil {
		s.log.Debug("writing notauth", "err", err)
	}
}
