package dnssink

import (
	"encoding/binary"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/servedset"
)

// The fast path answers what bots send nearly always — one question, class
// IN, a name of letters, digits, hyphens and underscores, at most an OPT
// record without options — straight from the wire, with no dns.Msg and no
// allocation: the answer is the request's header and question (so 0x20
// case survives byte for byte) followed by records whose owner is a
// compression pointer into that question and whose remaining bytes were
// packed when the server was made. Anything else, and anything the fast
// path would have to truncate, takes the general path in handlePacket,
// which is the reference the fast path is tested against.

// fastRRs are the answer records packed once per server: everything after
// the owner name.
type fastRRs struct {
	a, aaaa   []byte // one record per sinkhole address, each after a 0xC00C owner
	nA, nAAAA int
	mname     []byte // SOA MNAME in wire format
	mbox      []byte // SOA RNAME in wire format; nil means hostmaster.<zone>
}

// packFast prepares the records of the fast path; a has a name server.
func (a *answers) packFast() {
	f := &a.fast
	for _, ip := range a.a {
		f.a = append(f.a, 0xC0, 12)
		f.a = appendRRHeader(f.a, dns.TypeA, a.ttl, 4)
		f.a = append(f.a, ip.To4()...)
		f.nA++
	}
	for _, ip := range a.aaaa {
		f.aaaa = append(f.aaaa, 0xC0, 12)
		f.aaaa = appendRRHeader(f.aaaa, dns.TypeAAAA, a.ttl, 16)
		f.aaaa = append(f.aaaa, ip.To16()...)
		f.nAAAA++
	}
	f.mname = appendWireName(nil, a.ns[0].fqdn)
	if a.mbox != "" {
		f.mbox = appendWireName(nil, a.mbox)
	}
}

// appendRRHeader appends type, class IN, TTL and RDLENGTH.
func appendRRHeader(b []byte, t uint16, ttl uint32, rdlen int) []byte {
	b = binary.BigEndian.AppendUint16(b, t)
	b = binary.BigEndian.AppendUint16(b, dns.ClassINET)
	b = binary.BigEndian.AppendUint32(b, ttl)
	return binary.BigEndian.AppendUint16(b, uint16(rdlen))
}

// appendWireName appends a presentation-format FQDN without escapes in
// uncompressed wire format.
func appendWireName(b []byte, fqdn string) []byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(fqdn), buf, 0, nil, false)
	if err != nil {
		panic("dnssink: packing configured name " + fqdn + ": " + err.Error())
	}
	return append(b, buf[:n]...)
}

// packTXT packs the RDATA of a TXT record.
func packTXT(strs []string) []byte {
	var b []byte
	for _, s := range strs {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

// fastQuery is what the fast path reads from the wire.
type fastQuery struct {
	lname [256]byte // the name in lower case, presentation format, with the dot
	n     int       // length of lname
	qend  int       // offset just after the question
	qtype uint16
	opt   bool
	do    bool
	size  int
}

// parseFast reads raw into fq; it reports false when the general path must
// take the packet.
func (s *Server) parseFast(raw []byte, fq *fastQuery) bool {
	if len(raw) < 17 {
		return false
	}
	// Opcode QUERY, no TC; exactly one question; no answers, no authority;
	// at most the OPT record in the additional section.
	if raw[2]&0x7A != 0 || raw[4] != 0 || raw[5] != 1 || raw[6]|raw[7]|raw[8]|raw[9]|raw[10] != 0 || raw[11] > 1 {
		return false
	}
	i, n := 12, 0
	for {
		if i >= len(raw) {
			return false
		}
		l := int(raw[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 || i+1+l > len(raw) || n+l+1 > 254 {
			return false
		}
		for _, c := range raw[i+1 : i+1+l] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				return false
			}
			fq.lname[n] = c
			n++
		}
		fq.lname[n] = '.'
		n++
		i += 1 + l
	}
	if n == 0 || i+4 > len(raw) {
		return false
	}
	fq.n = n
	fq.qtype = binary.BigEndian.Uint16(raw[i:])
	if binary.BigEndian.Uint16(raw[i+2:]) != dns.ClassINET {
		return false
	}
	i += 4
	fq.qend = i
	fq.size = dns.MinMsgSize
	if raw[11] == 0 {
		return i == len(raw)
	}
	// The OPT record: root owner, type OPT, class = UDP size, TTL = extended
	// rcode, version and flags, and no options (a cookie or a client subnet
	// takes the general path).
	if len(raw) != i+11 || raw[i] != 0 || binary.BigEndian.Uint16(raw[i+1:]) != dns.TypeOPT ||
		raw[i+6] != 0 || raw[i+9]|raw[i+10] != 0 {
		return false
	}
	fq.opt = true
	fq.do = raw[i+7]&0x80 != 0
	fq.size = clamp(int(binary.BigEndian.Uint16(raw[i+3:])), dns.MinMsgSize, s.maxUDP)
	return true
}

// fastAnswer answers raw if the fast path can; it reports false when the
// general path must. It is handlePacket's first step.
func (s *Server) fastAnswer(out, raw []byte, pi *packetInfo, now time.Time) ([]byte, bool) {
	var fq fastQuery
	if !s.parseFast(raw, &fq) {
		return nil, false
	}
	switch fq.qtype {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMX, dns.TypeNS, dns.TypeSOA, dns.TypeOPT:
		return nil, false
	}
	lname := fq.lname[:fq.n]
	v := s.view.Load()
	zm, served := v.set.Lookup(lname)
	ans := v.ans

	b := append(out[:0], raw[:fq.qend]...)
	b[2] = 0x80 | raw[2]&0x01 // QR, opcode QUERY, RD copied
	b[3] = raw[3] & 0x10      // CD copied, rcode below
	var an, ns uint16
	signed := false // a signed zone's answer with signatures (DO)
	rcode := dns.RcodeSuccess
	if !served {
		rcode = dns.RcodeRefused
		s.m.refused.Inc()
	} else {
		kind, _ := ans.classify(zm.Apex, lname[:zm.Start])
		if kind != nodeApex && kind != nodeWildcard {
			return nil, false
		}
		serial := v.set.Serial()
		sz := v.signedOrAsk(zm)
		if sz != nil {
			switch fq.qtype {
			case dns.TypeDNSKEY, dns.TypeNSEC, dns.TypeRRSIG:
				return nil, false
			}
			serial = sz.serial
		}
		b[2] |= 0x04 // AA
		switch {
		case sz != nil && fq.do:
			b, an, ns = sz.appendFast(b, raw, &fq, zm, kind == nodeWildcard)
			signed = true
		case fq.qtype == dns.TypeA:
			b = append(b, ans.fast.a...)
			an = uint16(ans.fast.nA)
		case fq.qtype == dns.TypeAAAA:
			b = append(b, ans.fast.aaaa...)
			an = uint16(ans.fast.nAAAA)
		case fq.qtype == dns.TypeTXT:
			if txt := v.txtWire[zm.Case]; len(txt) > 0 {
				b = append(b, 0xC0, 12)
				b = appendRRHeader(b, dns.TypeTXT, ans.ttl, len(txt))
				b = append(b, txt...)
				an = 1
			}
		}
		if an == 0 && ns == 0 {
			b = ans.appendFastSOA(b, raw, &fq, zm, serial)
			ns = 1
		}
	}
	b[3] |= byte(rcode)
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	var ar uint16
	if fq.opt {
		b = append(b, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT&0xff)) // root owner, type OPT
		b = binary.BigEndian.AppendUint16(b, uint16(s.maxUDP))
		var flags byte
		if fq.do {
			flags = 0x80
		}
		b = append(b, 0, 0, flags, 0, 0, 0)
		ar = 1
	}
	binary.BigEndian.PutUint16(b[10:], ar)
	if !pi.tcp && len(b) > fq.size {
		return nil, false // the general path truncates
	}

	s.m.query(pi.tcp, rcode)
	if !pi.tcp {
		// The fast path answers the apex and the wildcard only: the
		// rate limiter counts both by the apex.
		class, owner := rrlError, []byte(nil)
		if served {
			class, owner = classOf(rcode, an > 0), lname[zm.Start:]
		}
		class, act := s.rrl.limit(pi.src.Addr(), class, fq.qtype, owner, signed, now)
		switch act {
		case rrlDrop:
			s.m.rrlDrop[class].Inc()
			b = nil
		case rrlSlip:
			s.m.rrlSlip[class].Inc()
			// Header, question and our OPT; TC tells the client to retry
			// over TCP.
			opt := b[len(b)-11*int(ar):]
			b = append(b[:fq.qend], opt...)
			b[2] |= 0x02
			b[6], b[7], b[8], b[9] = 0, 0, 0, 0
		}
	}
	if served {
		s.recordQuery(pi, v.set, zm, lname, fq.qtype, len(raw), fq.do, "", now, rcode)
	}
	return b, true
}

// appendFastSOA appends the zone's SOA for the authority section of a
// NODATA answer: owner a pointer to the apex in the question, MNAME the
// first name server, RNAME the configured mailbox or hostmaster.<zone>.
func (a *answers) appendFastSOA(b, raw []byte, fq *fastQuery, zm servedset.Match, serial uint32) []byte {
	at := 12 + zm.Start // the name starts right after the header
	b = append(b, 0xC0|byte(at>>8), byte(at))
	apexWire := raw[at : fq.qend-4] // the apex labels as asked, with the root
	rdlen := len(a.fast.mname) + 20
	if a.fast.mbox != nil {
		rdlen += len(a.fast.mbox)
	} else {
		rdlen += 11 + len(apexWire)
	}
	b = appendRRHeader(b, dns.TypeSOA, a.negTTL, rdlen)
	b = append(b, a.fast.mname...)
	if a.fast.mbox != nil {
		b = append(b, a.fast.mbox...)
	} else {
		b = append(b, 10, 'h', 'o', 's', 't', 'm', 'a', 's', 't', 'e', 'r')
		// The apex in lower case, as the general path writes it.
		for i := 0; i < len(apexWire); {
			l := int(apexWire[i])
			b = append(b, byte(l))
			b = append(b, fq.lname[zm.Start+i:zm.Start+i+l]...)
			i += 1 + l
		}
	}
	b = binary.BigEndian.AppendUint32(b, serial)
	b = binary.BigEndian.AppendUint32(b, soaRefresh)
	b = binary.BigEndian.AppendUint32(b, soaRetry)
	b = binary.BigEndian.AppendUint32(b, soaExpire)
	return binary.BigEndian.AppendUint32(b, a.negTTL)
}
