package dnssink

import (
	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/servedset"
)

// answerSigned fills resp for a query with the DO bit at the apex or below
// it (wild) in a signed zone: the RRset with its RRSIGs; for a name below
// the apex also the NSEC that shows no closer name exists (the answer is
// the wildcard's, expanded); NODATA with the SOA and the NSEC records that
// show the type (and, below the apex, the name) does not exist, all signed.
// Everything comes from what the zone was signed with (sz.zk), so that the
// records match their signatures. It returns what the rate limiter keys
// the answer by: the apex, as for unsigned answers.
func (v *view) answerSigned(resp *dns.Msg, qu *query, zm servedset.Match, sz *signedZone, wild bool) []byte {
	zk := sz.zk
	a := zk.ans
	owner := qu.q.Name // as asked: 0x20 case survives
	apexFQDN := qu.q.Name[zm.Start:]
	signer := zm.Apex + "."
	rrlOwner := qu.lname[zm.Start:]
	order := 0
	if wild {
		order = starOrder(qu.lname[:zm.Start])
	}
	qt := qu.q.Qtype
	if qt == dns.TypeANY {
		// RFC 8482 section 4.1: one RRset of the name, signed (the
		// HINFO of the unsigned answer is made up and cannot be).
		qt = dns.TypeMX
		if len(a.a) > 0 {
			qt = dns.TypeA
		}
	}
	slot := zk.slotOf(qt, wild)
	if wild && qt == dns.TypeNSEC {
		slot = -1 // the wildcard's NSEC is not expanded
	}
	if slot >= 0 {
		for _, rr := range zk.rrset(slot, zm.Apex, sz.serial) {
			rr.Header().Name = owner
			resp.Answer = append(resp.Answer, rr)
		}
		resp.Answer = sz.appendRRSIGs(resp.Answer, slot, owner, zk.origTTL(slot), signer)
		switch qt {
		case dns.TypeMX:
			mx := "mx." + signer
			resp.Extra = a.appendA(nil, resp.Extra, mx, a.a)
			resp.Extra = a.appendAAAA(nil, resp.Extra, mx, a.aaaa)
		case dns.TypeNS:
			for i := range a.ns {
				resp.Extra = a.appendA(nil, resp.Extra, a.ns[i].fqdn, a.ns[i].v4)
				resp.Extra = a.appendAAAA(nil, resp.Extra, a.ns[i].fqdn, a.ns[i].v6)
			}
		}
		switch {
		case !wild || order == 0:
			// The apex, or *.<zone> itself: no expansion to prove.
		case order < 0:
			resp.Ns = sz.appendNSEC(resp.Ns, slotNSEC, apexFQDN, signer)
		default:
			resp.Ns = sz.appendNSEC(resp.Ns, slotWildNSEC, apexFQDN, signer)
		}
		return rrlOwner
	}
	// NODATA: the name exists (or the wildcard matches it), the type not.
	resp.Ns = append(resp.Ns, a.soa(apexFQDN, zm.Apex, sz.serial, a.negTTL))
	resp.Ns = sz.appendRRSIGs(resp.Ns, slotSOA, apexFQDN, a.negTTL, signer)
	if !wild || order < 0 {
		// The apex's NSEC: the type is not at the apex, or (order < 0)
		// the name sorts between the apex and *.<zone>, so no name
		// closer than the wildcard exists.
		resp.Ns = sz.appendNSEC(resp.Ns, slotNSEC, apexFQDN, signer)
	}
	if wild {
		// The wildcard's NSEC: it matches the name without the type
		// (and, for a name after *.<zone>, covers it).
		resp.Ns = sz.appendNSEC(resp.Ns, slotWildNSEC, apexFQDN, signer)
	}
	return rrlOwner
}

// appendNSEC appends the NSEC of a slot (slotNSEC at the apex, or
// slotWildNSEC) with its RRSIGs; apexFQDN is the apex as asked.
func (sz *signedZone) appendNSEC(rrs []dns.RR, slot int, apexFQDN, signer string) []dns.RR {
	zk := sz.zk
	var nsec *dns.NSEC
	if slot == slotNSEC {
		nsec = zk.nsec(apexFQDN, "*."+signer, zk.apexTypes)
	} else {
		nsec = zk.nsec("*."+apexFQDN, signer, zk.wildTypes)
	}
	rrs = append(rrs, nsec)
	return sz.appendRRSIGs(rrs, slot, nsec.Hdr.Name, zk.ans.negTTL, signer)
}

// starOrder tells where a name below the apex sorts against *.<zone> in
// the canonical order of RFC 4034 section 6.1: -1 before (its label right
// below the apex begins with a byte below '*'), 0 it is *.<zone>, 1 after.
// rel is the part of the lower-case name above the apex, with its dot.
func starOrder(rel []byte) int {
	rel = rel[:len(rel)-1]
	i := len(rel)
	for i > 0 && (rel[i-1] != '.' || isEscaped(rel, i-1)) {
		i--
	}
	label := rel[i:]
	c, n := label[0], 1
	if c == '\\' && len(label) >= 4 && isDigit(label[1]) && isDigit(label[2]) && isDigit(label[3]) {
		c, n = (label[1]-'0')*100+(label[2]-'0')*10+(label[3]-'0'), 4
	} else if c == '\\' && len(label) >= 2 {
		c, n = label[1], 2
	}
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	switch {
	case c < '*':
		return -1
	case c > '*' || n < len(label) || i > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isEscaped reports whether the byte at i is preceded by an odd number of
// backslashes.
func isEscaped(s []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// appendFast appends the answer of the fast path for a query with the DO
// bit at the apex or below it (wild) of a signed zone, after the question
// in b: what answerSigned makes, in wire format, from the zone's
// signatures and the packed records of its answers. It returns b and the
// counts of the answer and authority sections.
func (sz *signedZone) appendFast(b, raw []byte, fq *fastQuery, zm servedset.Match, wild bool) ([]byte, uint16, uint16) {
	zk := sz.zk
	a := zk.ans
	at := 12 + zm.Start // the apex in the question
	apexWire := raw[at : fq.qend-4]
	var sbuf [256]byte
	signer, labels := appendLowerWire(sbuf[:0], apexWire, fq.lname[zm.Start:])
	nk := uint16(len(zk.signers))
	var an, ns uint16
	slot := -1
	switch fq.qtype {
	case dns.TypeA:
		if a.fast.nA > 0 {
			b = append(b, a.fast.a...)
			an, slot = uint16(a.fast.nA), zk.slotOf(dns.TypeA, wild)
		}
	case dns.TypeAAAA:
		if a.fast.nAAAA > 0 {
			b = append(b, a.fast.aaaa...)
			an, slot = uint16(a.fast.nAAAA), zk.slotOf(dns.TypeAAAA, wild)
		}
	case dns.TypeTXT:
		if len(zk.txtWire) > 0 {
			b = append(b, 0xC0, 12)
			b = appendRRHeader(b, dns.TypeTXT, a.ttl, len(zk.txtWire))
			b = append(b, zk.txtWire...)
			an, slot = 1, zk.slotOf(dns.TypeTXT, wild)
		}
	}
	// The fast path's names are letters, digits, '-' and '_', all after
	// '*': a name below the apex sorts after *.<zone>, whose NSEC covers
	// it.
	if slot >= 0 {
		b = sz.appendFastRRSIGs(b, slot, 12, a.ttl, signer, labels)
		an += nk
		if wild {
			b = sz.appendFastNSEC(b, slotWildNSEC, at, signer, labels)
			ns = 1 + nk
		}
		return b, an, ns
	}
	b = a.appendFastSOA(b, raw, fq, zm, sz.serial)
	b = sz.appendFastRRSIGs(b, slotSOA, at, a.negTTL, signer, labels)
	nsec := slotNSEC
	if wild {
		nsec = slotWildNSEC
	}
	b = sz.appendFastNSEC(b, nsec, at, signer, labels)
	return b, 0, 2 + 2*nk
}

// appendFastNSEC appends the NSEC of a slot and its RRSIGs in wire format:
// the apex's owner a pointer to the apex in the question (at), the
// wildcard's "*" and that pointer; the next name in lower case.
func (sz *signedZone) appendFastNSEC(b []byte, slot, at int, signer []byte, labels int) []byte {
	zk := sz.zk
	negTTL := zk.ans.negTTL
	owner := len(b)
	if slot == slotNSEC {
		b = append(b, 0xC0|byte(at>>8), byte(at))
		b = appendRRHeader(b, dns.TypeNSEC, negTTL, 2+len(signer)+len(zk.apexBits))
		b = append(b, 1, '*')
		b = append(b, signer...)
		b = append(b, zk.apexBits...)
		return sz.appendFastRRSIGs(b, slot, at, negTTL, signer, labels)
	}
	b = append(b, 1, '*', 0xC0|byte(at>>8), byte(at))
	b = appendRRHeader(b, dns.TypeNSEC, negTTL, len(signer)+len(zk.wildBits))
	b = append(b, signer...)
	b = append(b, zk.wildBits...)
	return sz.appendFastRRSIGs(b, slot, owner, negTTL, signer, labels)
}

// appendLowerWire appends the wire form of a name given as asked (wire)
// with the bytes of lname, its lower-case presentation form; it returns
// the result and the number of labels.
func appendLowerWire(b, wire, lname []byte) ([]byte, int) {
	labels := 0
	for i := 0; i < len(wire); {
		l := int(wire[i])
		b = append(b, byte(l))
		if l == 0 {
			break
		}
		b = append(b, lname[i:i+l]...)
		i += 1 + l
		labels++
	}
	return b, labels
}
