package xfr

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/zeebo/xxh3"
)

// rrKey identifies a record by a 128-bit hash of its uncompressed wire
// form (owner, type, class, TTL, RDATA). A collision among the 1.6 million
// records of an 800,000-name RPZ has a probability near 2^-88; a map of
// fixed-size keys costs a third of the memory of a map keyed by RR strings
// and needs no allocation per record.
type rrKey = xxh3.Uint128

// keyer packs records into a reused buffer to hash and measure them. It
// packs through a one-record Msg because dns.PackRR writes the record's
// Rdlength, a data race with a transfer packing the same record.
type keyer struct {
	buf []byte
	msg dns.Msg
	one [1]dns.RR
}

// pack returns the uncompressed wire form of rr, valid until the next call.
func (k *keyer) pack(rr dns.RR) ([]byte, error) {
	if k.buf == nil {
		k.buf = make([]byte, dns.MaxMsgSize+dns.MinMsgSize)
	}
	k.one[0] = rr
	k.msg.Answer = k.one[:]
	b, err := k.msg.PackBuffer(k.buf)
	k.one[0] = nil
	if err != nil {
		return nil, err
	}
	return b[headerLen:], nil // skip the 12-byte header
}

func (k *keyer) key(rr dns.RR) (rrKey, error) {
	b, err := k.pack(rr)
	if err != nil {
		return rrKey{}, err
	}
	return xxh3.Hash128(b), nil
}

const headerLen = 12 // DNS message header

// serialLess reports a < b in RFC 1982 serial number arithmetic.
func serialLess(a, b uint32) bool { return a != b && int32(b-a) > 0 }

// Content is one version of a zone whose records its publisher makes
// when a transfer asks for them, from a model it holds anyway (the RPZ
// from the served set): the server keeps no copy of them. A Content must
// not change once published.
type Content interface {
	// SOA is the version's SOA record.
	SOA() *dns.SOA
	// Apex returns the records owned by the apex, the SOA first.
	Apex() []dns.RR
	// Len is the number of records, the SOA included.
	Len() int
	// Records yields every record, the SOA first, the same ones at every
	// call.
	Records(yield func(dns.RR) bool)
}

// rrList is the Content of a zone given as a list of records (SetZone, the
// Fallback zones).
type rrList struct {
	apex []dns.RR // records owned by the apex, SOA first
	rrs  []dns.RR // the whole zone, SOA first
}

func (l *rrList) SOA() *dns.SOA  { return l.rrs[0].(*dns.SOA) }
func (l *rrList) Apex() []dns.RR { return l.apex }
func (l *rrList) Len() int       { return len(l.rrs) }

func (l *rrList) Records(yield func(dns.RR) bool) {
	for _, rr := range l.rrs {
		if !yield(rr) {
			return
		}
	}
}

// apexOf returns the records of rrs (SOA first) owned by the apex name.
func apexOf(name string, rrs []dns.RR) []dns.RR {
	var apex []dns.RR
	for _, rr := range rrs {
		if h := rr.Header(); len(h.Name) == len(name) && strings.EqualFold(h.Name, name) {
			apex = append(apex, rr)
		}
	}
	return apex
}

// version is one immutable version of a journaled zone.
type version struct {
	soa     *dns.SOA
	content Content
}

// delta is one journal step: what changed from serial from to serial to.
// Its slices are never modified after it is published.
type delta struct {
	fromSOA, toSOA *dns.SOA
	del, add       []dns.RR
	delKey, addKey []rrKey
}

func (d *delta) size() int { return len(d.del) + len(d.add) }

// state is what readers see of a zone, swapped atomically.
type state struct {
	cur     *version
	journal []*delta // oldest first, consecutive serials
}

type zone struct {
	name string
	st   atomic.Pointer[state]

	// Owned by SetZone and Publish (Server.setMu).
	gen   uint32
	index map[rrKey]indexEntry // SetZone's: every non-SOA record of the current version; nil after Publish
	keyer keyer
}

type indexEntry struct {
	rr  dns.RR
	gen uint32
}

// SetZone publishes rrs, the full new content of the journaled zone name
// (SOA first), journals the difference to the previous version and sends
// NOTIFY to cfg.Notify in the background. The SOA serial must be greater than
// the current one (RFC 1982) unless the content is unchanged, in which case
// SetZone does nothing. The server keeps rrs: the caller must not modify the
// slice or the records afterwards.
//
// The cost is one pass over rrs (pack, hash, map lookup) plus the size of
// the change; the diff never compares records pairwise.
func (s *Server) SetZone(name string, rrs []dns.RR) error {
	name = dns.CanonicalName(name)
	if len(rrs) == 0 {
		return fmt.Errorf("setting zone %s: no records", name)
	}
	soa, ok := rrs[0].(*dns.SOA)
	if !ok || !strings.EqualFold(soa.Hdr.Name, name) {
		return fmt.Errorf("setting zone %s: first record is not the zone's SOA", name)
	}

	s.setMu.Lock()
	defer s.setMu.Unlock()

	z := s.zone(name)
	if z == nil {
		z = &zone{name: name}
	}
	var prev *state
	if p := z.st.Load(); p != nil {
		if p.cur.soa.Serial != soa.Serial && !serialLess(p.cur.soa.Serial, soa.Serial) {
			return fmt.Errorf("setting zone %s: serial %d is not after %d", name, soa.Serial, p.cur.soa.Serial)
		}
		if z.index != nil {
			prev = p
		}
	}
	if z.index == nil {
		// A new zone, or one that Publish kept: no index to diff against,
		// so the journal starts afresh.
		z.index = make(map[rrKey]indexEntry, len(rrs))
	}

	gen := z.gen + 1
	var (
		add     []dns.RR
		addKey  []rrKey
		matched int
		dedup   []dns.RR // set when rrs holds duplicates
	)
	rollback := func(err error) error {
		added := make(map[rrKey]struct{}, len(addKey))
		for _, k := range addKey {
			added[k] = struct{}{}
		}
		for k, e := range z.index {
			_, isNew := added[k]
			switch {
			case e.gen != gen:
			case isNew:
				delete(z.index, k)
			default:
				z.index[k] = indexEntry{e.rr, z.gen}
			}
		}
		return fmt.Errorf("setting zone %s: %w", name, err)
	}
	for i, rr := range rrs[1:] {
		h := rr.Header()
		if h.Rrtype == dns.TypeSOA {
			return rollback(fmt.Errorf("second SOA at record %d", i+1))
		}
		if !inZone(name, h.Name) {
			return rollback(fmt.Errorf("record %d owner %q is outside the zone", i+1, h.Name))
		}
		k, err := z.keyer.key(rr)
		if err != nil {
			return rollback(fmt.Errorf("packing record %d %q: %w", i+1, h.Name, err))
		}
		e, found := z.index[k]
		switch {
		case found && e.gen == gen: // duplicate within rrs
			if dedup == nil {
				dedup = append(make([]dns.RR, 0, len(rrs)), rrs[:i+1]...)
			}
			continue
		case found:
			matched++
			z.index[k] = indexEntry{rr, gen} // point at the record of the new version
		default:
			z.index[k] = indexEntry{rr, gen}
			add = append(add, rr)
			addKey = append(addKey, k)
		}
		if dedup != nil {
			dedup = append(dedup, rr)
		}
	}
	if dedup != nil {
		rrs = dedup
	}
	var del []dns.RR
	var delKey []rrKey
	if matched < len(z.index)-len(add) {
		for k, e := range z.index {
			if e.gen != gen {
				del = append(del, e.rr)
				delKey = append(delKey, k)
				delete(z.index, k)
			}
		}
	}
	z.gen = gen

	if prev != nil && prev.cur.soa.Serial == soa.Serial {
		if len(add) == 0 && len(del) == 0 && dns.IsDuplicate(prev.cur.soa, soa) {
			return nil // unchanged
		}
		// Undo: the content changed but the serial did not.
		for _, k := range addKey {
			delete(z.index, k)
		}
		for i, k := range delKey {
			z.index[k] = indexEntry{del[i], gen}
		}
		return fmt.Errorf("setting zone %s: content changed but serial %d did not", name, soa.Serial)
	}

	s.publish(z, prev, &version{soa: soa, content: &rrList{apex: apexOf(name, rrs), rrs: rrs}}, del, add, delKey, addKey)
	return nil
}

// Diff is what changed from one version of a zone to the next: the
// records that left and those that came.
type Diff struct {
	Del, Add []dns.RR
}

// Publish makes c the current version of the journaled zone name. With d,
// the difference from the current version, the step is journaled and an
// IXFR from an older serial gets the condensed steps; with d nil (the
// first version, or a new start) the journal starts afresh and older
// clients get the whole zone. It costs in proportion to d — its records
// are packed and hashed for the journal — never to the zone: the server
// keeps c, not a copy of its records. The serial must grow (RFC 1982), the
// records of d must be in the zone and none an SOA. NOTIFY goes out as
// after SetZone.
func (s *Server) Publish(name string, c Content, d *Diff) error {
	name = dns.CanonicalName(name)
	soa := c.SOA()
	if soa == nil || !strings.EqualFold(soa.Hdr.Name, name) {
		return fmt.Errorf("publishing zone %s: no SOA of the zone", name)
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	z := s.zone(name)
	if z == nil {
		z = &zone{name: name}
	}
	prev := z.st.Load()
	if prev != nil && !serialLess(prev.cur.soa.Serial, soa.Serial) {
		return fmt.Errorf("publishing zone %s: serial %d is not after %d", name, soa.Serial, prev.cur.soa.Serial)
	}
	var delKey, addKey []rrKey
	if d != nil && prev != nil {
		for _, part := range []struct {
			what string
			rrs  []dns.RR
			keys *[]rrKey
		}{{"deletion", d.Del, &delKey}, {"addition", d.Add, &addKey}} {
			for i, rr := range part.rrs {
				h := rr.Header()
				if h.Rrtype == dns.TypeSOA {
					return fmt.Errorf("publishing zone %s: %s %d is an SOA", name, part.what, i)
				}
				if !inZone(name, h.Name) {
					return fmt.Errorf("publishing zone %s: %s %d owner %q is outside the zone", name, part.what, i, h.Name)
				}
				k, err := z.keyer.key(rr)
				if err != nil {
					return fmt.Errorf("publishing zone %s: packing %s %d: %w", name, part.what, i, err)
				}
				*part.keys = append(*part.keys, k)
			}
		}
	} else {
		prev, d = nil, &Diff{}
	}
	z.index = nil // SetZone's, if it had the zone before
	s.publish(z, prev, &version{soa: soa, content: c}, d.Del, d.Add, delKey, addKey)
	return nil
}

// publish makes cur the zone's current version, journals the step from prev
// and sends NOTIFY. The caller holds setMu.
func (s *Server) publish(z *zone, prev *state, cur *version, del, add []dns.RR, delKey, addKey []rrKey) {
	next := &state{cur: cur}
	if prev != nil {
		d := &delta{fromSOA: prev.cur.soa, toSOA: cur.soa, del: del, add: add, delKey: delKey, addKey: addKey}
		j := append(prev.journal, d)
		total := 0
		for _, d := range j {
			total += d.size()
		}
		for len(j) > 1 && (len(j) > s.journalMax || total > cur.content.Len()) {
			total -= j[0].size()
			j = j[1:]
		}
		next.journal = j
	}
	z.st.Store(next)
	if prev == nil {
		s.mu.Lock()
		s.zones[z.name] = z
		s.mu.Unlock()
	}
	s.met.zoneSet(z.name, next)
	s.log.Info("zone set", "zone", z.name, "serial", cur.soa.Serial, "records", cur.content.Len(),
		"added", len(add), "deleted", len(del), "journal", len(next.journal))
	s.notifyAll(z.name, cur.soa)
}

// inZone reports whether owner is name or below it, without allocating
// (dns.IsSubDomain splits both names).
func inZone(name, owner string) bool {
	n, o := len(name), len(owner)
	switch {
	case o < n || !strings.EqualFold(owner[o-n:], name):
		return false
	case o == n || name == ".":
		return true
	case owner[o-n-1] != '.':
		return false
	case o-n >= 2 && owner[o-n-2] == '\\':
		return dns.IsSubDomain(name, owner) // escaped dot: the slow, exact way
	}
	return true
}

// Serial returns the current serial of the journaled zone name.
func (s *Server) Serial(name string) (uint32, bool) {
	z := s.zone(dns.CanonicalName(name))
	if z == nil {
		return 0, false
	}
	return z.st.Load().cur.soa.Serial, true
}

// ixfrPlan is the answer to an IXFR request.
type ixfrPlan struct {
	upToDate bool     // send the current SOA only
	full     bool     // client's serial unknown: send the whole zone
	fromSOA  *dns.SOA // incremental: the client's version
	del, add []dns.RR // incremental: condensed difference
	steps    int
}

// plan condenses the journal from the client's serial to the current version
// into one difference (RFC 1995 allows a single condensed sequence). A record
// added and deleted again on the way cancels out.
func (st *state) plan(client uint32) ixfrPlan {
	cur := st.cur.soa.Serial
	if !serialLess(client, cur) {
		return ixfrPlan{upToDate: true}
	}
	start := -1
	for i, d := range st.journal {
		if d.fromSOA.Serial == client {
			start = i
			break
		}
	}
	if start < 0 {
		return ixfrPlan{full: true}
	}
	steps := st.journal[start:]
	p := ixfrPlan{fromSOA: steps[0].fromSOA, steps: len(steps)}
	if len(steps) == 1 {
		p.del, p.add = steps[0].del, steps[0].add
		return p
	}
	delAt := make(map[rrKey]int)
	addAt := make(map[rrKey]int)
	var del, add []dns.RR
	for _, d := range steps {
		for i, rr := range d.del {
			k := d.delKey[i]
			if j, ok := addAt[k]; ok {
				add[j] = nil
				delete(addAt, k)
				continue
			}
			delAt[k] = len(del)
			del = append(del, rr)
		}
		for i, rr := range d.add {
			k := d.addKey[i]
			if j, ok := delAt[k]; ok {
				del[j] = nil
				delete(delAt, k)
				continue
			}
			addAt[k] = len(add)
			add = append(add, rr)
		}
	}
	p.del, p.add = compact(del), compact(add)
	return p
}

func compact(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	for _, rr := range rrs {
		if rr != nil {
			out = append(out, rr)
		}
	}
	return out
}
