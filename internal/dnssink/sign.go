package dnssink

import (
	"crypto"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/servedset"
)

// Signing. A seized zone of a case with an active key is signed once per
// key, not per query: every name below the apex gets the same records, so
// the zone's content is a handful of RRsets at two owners, the apex and
// *.<zone> (what a name below answers is an expansion of that wildcard, and
// the RRSIG of the wildcard RRset — Labels = the zone's label count —
// validates it whatever the name). The denial of existence is the NSEC
// chain <zone> → *.<zone> → <zone>. So a signed zone is its signatures: 64
// bytes per RRset and signing key, kept in a signedZone; every other byte
// of a signed answer is built from the zone's name and the answers shared
// by all zones, as the unsigned answers are.

// Signature times: valid for two weeks (less up to a day, per zone:
// sigJitter), made again when half of that is left, dated an hour back for
// resolvers whose clocks are behind.
const (
	sigValidity = 14 * 24 * time.Hour
	sigSkew     = time.Hour
	// sigLen is the length of an ECDSA P-256 and of an Ed25519 signature,
	// the two algorithms the keys have (internal/dnssec).
	sigLen = 64
	// DefaultResignCheck is how often the signer looks for signatures
	// to make again (their refresh time passed).
	DefaultResignCheck = time.Hour
)

// The RRsets of a signed zone, in the order their signatures are kept.
// The wildcard's come after the apex's, in the same order.
const (
	slotSOA = iota
	slotNS
	slotDNSKEY
	slotNSEC // <zone> NSEC *.<zone>
	slotA
	slotAAAA
	slotMX
	slotTXT
	slotWildA
	slotWildAAAA
	slotWildMX
	slotWildTXT
	slotWildNSEC // *.<zone> NSEC <zone>
	nSlots
)

// slotType is the type of each slot's RRset.
var slotType = [nSlots]uint16{
	dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY, dns.TypeNSEC,
	dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT,
	dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNSEC,
}

// slotOf returns the slot of type t at the apex (wild false) or at the
// wildcard, or -1 when the zone has no such RRset there.
func (zk *zoneKeys) slotOf(t uint16, wild bool) int {
	first, last := slotSOA, slotTXT
	if wild {
		first, last = slotWildA, slotWildNSEC
	}
	for i := first; i <= last; i++ {
		if slotType[i] == t && zk.off[i] >= 0 {
			return i
		}
	}
	return -1
}

// signingKey is an active key with its private part.
type signingKey struct {
	tag    uint16
	alg    uint8
	signer crypto.Signer
}

// zoneKeys is what the zones of one signed case are signed from and
// answered with: the case's keys, its TXT and the answers of the served
// set at the time. A signedZone points to the zoneKeys it was signed with,
// so that its answers stay consistent with its signatures until it is
// signed again. It is immutable.
type zoneKeys struct {
	keys    []dnssec.Key // published: the DNSKEY RRset
	signers []signingKey // active, with a private key
	ans     *answers
	txt     []string
	txtWire []byte
	// off is where each slot's signatures begin in signedZone.sigs (one
	// per signer), -1 for an RRset the zones do not have; size is the
	// length of sigs.
	off  [nSlots]int
	size int
	// apexTypes and wildTypes are the NSEC type bitmaps, also packed
	// (window 0 only: every type is below 256).
	apexTypes, wildTypes []uint16
	apexBits, wildBits   []byte
}

// newZoneKeys prepares the signing of the zones of case c, or returns nil
// when no key of c signs (none active, or none with its private key here).
func newZoneKeys(c *servedset.Case, ans *answers, txt []string, txtWire []byte) *zoneKeys {
	zk := &zoneKeys{ans: ans, txt: txt, txtWire: txtWire}
	for _, k := range c.Keys {
		if !k.Publishes() {
			continue
		}
		zk.keys = append(zk.keys, k)
		// The served set carries keys of algorithms 13 and 15 only
		// (internal/dnssec); another could not sign here.
		if !k.Signs() || k.Signer == nil || (k.Algorithm != dns.ECDSAP256SHA256 && k.Algorithm != dns.ED25519) {
			continue
		}
		zk.signers = append(zk.signers, signingKey{tag: k.Tag(), alg: k.Algorithm, signer: k.Signer})
	}
	if len(zk.signers) == 0 || len(ans.ns) == 0 {
		return nil
	}
	has := [nSlots]bool{slotSOA: true, slotNS: true, slotDNSKEY: true, slotNSEC: true, slotMX: true,
		slotWildMX: true, slotWildNSEC: true}
	has[slotA], has[slotWildA] = len(ans.a) > 0, len(ans.a) > 0
	has[slotAAAA], has[slotWildAAAA] = len(ans.aaaa) > 0, len(ans.aaaa) > 0
	has[slotTXT], has[slotWildTXT] = len(txt) > 0, len(txt) > 0
	for i := range zk.off {
		zk.off[i] = -1
		if has[i] {
			zk.off[i] = zk.size
			zk.size += len(zk.signers) * sigLen
		}
	}
	// Type bitmaps in type order.
	for _, t := range []uint16{dns.TypeA, dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypeTXT, dns.TypeAAAA, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeDNSKEY} {
		if s := zk.slotOf(t, false); s >= 0 || t == dns.TypeRRSIG {
			zk.apexTypes = append(zk.apexTypes, t)
		}
		if t == dns.TypeRRSIG || zk.slotOf(t, true) >= 0 {
			zk.wildTypes = append(zk.wildTypes, t)
		}
	}
	zk.apexBits = packTypeBits(zk.apexTypes)
	zk.wildBits = packTypeBits(zk.wildTypes)
	return zk
}

// packTypeBits packs an NSEC type bitmap of types below 256 (RFC 4034
// section 4.1.2): window 0, its length, the bits.
func packTypeBits(types []uint16) []byte {
	var bits [32]byte
	n := 0
	for _, t := range types {
		bits[t/8] |= 0x80 >> (t % 8)
		n = max(n, int(t/8)+1)
	}
	return append([]byte{0, byte(n)}, bits[:n]...)
}

// holdsNS reports whether a name server's name is inside apex: such a zone
// has more names than the apex and its wildcard and is not signed.
func (a *answers) holdsNS(apex string) bool {
	for i := range a.ns {
		if _, in := inZone(a.ns[i].name, apex); in || a.ns[i].name == apex {
			return true
		}
	}
	return false
}

// sameAs reports whether zk was made from the keys of c, its TXT and ans.
func (zk *zoneKeys) sameAs(c *servedset.Case, ans *answers, txtWire []byte) bool {
	if zk.ans != ans || string(zk.txtWire) != string(txtWire) {
		return false
	}
	n := 0
	for _, k := range c.Keys {
		if !k.Publishes() {
			continue
		}
		if n >= len(zk.keys) || !zk.keys[n].Equal(&k) {
			return false
		}
		n++
	}
	return n == len(zk.keys)
}

// signedZone is a zone's signatures with the serial and the times they
// carry. It is immutable.
type signedZone struct {
	zk                    *zoneKeys
	serial                uint32
	inception, expiration uint32
	sigs                  []byte
}

// refreshDue reports whether sz must be signed again at now: half its
// validity is left.
func (sz *signedZone) refreshDue(now time.Time) bool {
	return now.Unix() >= int64(sz.expiration)-int64(sigValidity/2/time.Second)
}

// sigJitter takes up to a day off a zone's validity, the same for a zone
// every time: zones signed together (all of them, at start) come due for a
// refresh spread over a day, not in one burst.
func sigJitter(apex string) time.Duration {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(apex); i++ {
		h = (h ^ uint32(apex[i])) * 16777619
	}
	return time.Duration(h%86400) * time.Second
}

// rrset returns the RRset of a slot of zone apex (lower case, no trailing
// dot) at serial, owner lower case.
func (zk *zoneKeys) rrset(slot int, apex string, serial uint32) []dns.RR {
	a := zk.ans
	fqdn := apex + "."
	owner := fqdn
	if slot >= slotWildA {
		owner = "*." + fqdn
	}
	var rrs []dns.RR
	switch slot {
	case slotSOA:
		rrs = append(rrs, a.soa(fqdn, apex, serial, a.ttl))
	case slotNS:
		for i := range a.ns {
			rrs = append(rrs, &dns.NS{Hdr: a.hdr(fqdn, dns.TypeNS), Ns: a.ns[i].fqdn})
		}
	case slotDNSKEY:
		for i := range zk.keys {
			rrs = append(rrs, zk.keys[i].DNSKEY(fqdn, a.ttl))
		}
	case slotNSEC:
		rrs = append(rrs, zk.nsec(fqdn, "*."+fqdn, zk.apexTypes))
	case slotWildNSEC:
		rrs = append(rrs, zk.nsec(owner, fqdn, zk.wildTypes))
	case slotA, slotWildA:
		rrs = a.appendA(nil, rrs, owner, a.a)
	case slotAAAA, slotWildAAAA:
		rrs = a.appendAAAA(nil, rrs, owner, a.aaaa)
	case slotMX, slotWildMX:
		rrs = append(rrs, &dns.MX{Hdr: a.hdr(owner, dns.TypeMX), Preference: 10, Mx: "mx." + fqdn})
	case slotTXT, slotWildTXT:
		rrs = append(rrs, &dns.TXT{Hdr: a.hdr(owner, dns.TypeTXT), Txt: zk.txt})
	}
	return rrs
}

func (zk *zoneKeys) nsec(owner, next string, types []uint16) *dns.NSEC {
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: zk.ans.negTTL},
		NextDomain: next, TypeBitMap: types,
	}
}

// origTTL is the TTL an RRset of the slot is signed with: the NSEC's is
// the negative TTL (RFC 9077), the others the answers' TTL.
func (zk *zoneKeys) origTTL(slot int) uint32 {
	if slotType[slot] == dns.TypeNSEC {
		return zk.ans.negTTL
	}
	return zk.ans.ttl
}

// sign signs zone apex (lower case, no trailing dot) at serial with every
// signing key of zk.
func (zk *zoneKeys) sign(apex string, serial uint32, now time.Time) (*signedZone, error) {
	sz := &signedZone{
		zk: zk, serial: serial,
		inception:  uint32(now.Add(-sigSkew).Unix()),
		expiration: uint32(now.Add(sigValidity - sigJitter(apex)).Unix()),
		sigs:       make([]byte, zk.size),
	}
	fqdn := apex + "."
	for slot, off := range zk.off {
		if off < 0 {
			continue
		}
		rrs := zk.rrset(slot, apex, serial)
		for i, k := range zk.signers {
			sig := &dns.RRSIG{
				Algorithm: k.alg, SignerName: fqdn, KeyTag: k.tag, OrigTtl: zk.origTTL(slot),
				Inception: sz.inception, Expiration: sz.expiration,
			}
			if err := sig.Sign(k.signer, rrs); err != nil {
				return nil, fmt.Errorf("signing %s %s with key %d: %w", owner(rrs), dns.TypeToString[slotType[slot]], k.tag, err)
			}
			b, err := base64.StdEncoding.DecodeString(sig.Signature)
			if err != nil || len(b) != sigLen {
				return nil, fmt.Errorf("signing %s %s with key %d: a signature of %d bytes, want %d", owner(rrs), dns.TypeToString[slotType[slot]], k.tag, len(b), sigLen)
			}
			copy(sz.sigs[off+i*sigLen:], b)
		}
	}
	return sz, nil
}

func owner(rrs []dns.RR) string { return rrs[0].Header().Name }

// appendRRSIGs appends the RRSIGs of a slot with owner name and TTL ttl;
// signer is the zone in lower case with the trailing dot.
func (sz *signedZone) appendRRSIGs(rrs []dns.RR, slot int, name string, ttl uint32, signer string) []dns.RR {
	zk := sz.zk
	off := zk.off[slot]
	labels := uint8(dns.CountLabel(signer))
	for i, k := range zk.signers {
		rrs = append(rrs, &dns.RRSIG{
			Hdr:         dns.RR_Header{Name: name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: ttl},
			TypeCovered: slotType[slot], Algorithm: k.alg, Labels: labels, OrigTtl: zk.origTTL(slot),
			Expiration: sz.expiration, Inception: sz.inception, KeyTag: k.tag, SignerName: signer,
			Signature: base64.StdEncoding.EncodeToString(sz.sigs[off+i*sigLen : off+(i+1)*sigLen]),
		})
	}
	return rrs
}

// records returns the whole signed zone apex, SOA first (a zone transfer).
func (sz *signedZone) records(apex string) []dns.RR {
	fqdn := apex + "."
	var rrs []dns.RR
	for slot, off := range sz.zk.off {
		if off < 0 {
			continue
		}
		set := sz.zk.rrset(slot, apex, sz.serial)
		rrs = append(rrs, set...)
		h := set[0].Header()
		rrs = sz.appendRRSIGs(rrs, slot, h.Name, h.Ttl, fqdn)
	}
	return rrs
}

// appendFastRRSIGs appends the wire form of the RRSIGs of a slot: owner a
// compression pointer to ptr, TTL ttl, signer the zone's name in lower
// case wire format with its label count.
func (sz *signedZone) appendFastRRSIGs(b []byte, slot, ptr int, ttl uint32, signer []byte, labels int) []byte {
	zk := sz.zk
	off := zk.off[slot]
	for i, k := range zk.signers {
		b = append(b, 0xC0|byte(ptr>>8), byte(ptr))
		b = appendRRHeader(b, dns.TypeRRSIG, ttl, 18+len(signer)+sigLen)
		b = binary.BigEndian.AppendUint16(b, slotType[slot])
		b = append(b, k.alg, byte(labels))
		b = binary.BigEndian.AppendUint32(b, zk.origTTL(slot))
		b = binary.BigEndian.AppendUint32(b, sz.expiration)
		b = binary.BigEndian.AppendUint32(b, sz.inception)
		b = binary.BigEndian.AppendUint16(b, k.tag)
		b = append(b, signer...)
		b = append(b, sz.sigs[off+i*sigLen:off+(i+1)*sigLen]...)
	}
	return b
}

// nextSerial is the serial of a zone signed again: the served set's when
// it is newer than the zone's last, else the zone's last + 1 (a zone's
// signatures change, so must its serial, or secondaries keep the old ones).
func nextSerial(prev *signedZone, set uint32) uint32 {
	if prev == nil || servedset.SerialLess(prev.serial, set) {
		return set
	}
	if s := prev.serial + 1; s != 0 {
		return s
	}
	return 1
}

// signedZones holds the signed zones by apex (lower case, no trailing
// dot). The query path reads it under a shard's read lock; the signer
// writes.
type signedZones struct {
	seed   maphash.Seed
	shards [64]signedShard
	n      atomic.Int64
	// urgent, if not nil, takes the apexes of zones asked for before
	// their turn to be signed came (a server's signer signs them first).
	urgent chan string
}

type signedShard struct {
	mu sync.RWMutex
	m  map[string]*signedZone
	_  [64]byte // keeps the locks of two shards off one cache line
}

func newSignedZones() *signedZones {
	z := &signedZones{seed: maphash.MakeSeed()}
	for i := range z.shards {
		z.shards[i].m = map[string]*signedZone{}
	}
	return z
}

func (z *signedZones) shard(apex string) *signedShard {
	return &z.shards[maphash.String(z.seed, apex)%uint64(len(z.shards))]
}

func (z *signedZones) get(apex string) *signedZone {
	sh := z.shard(apex)
	sh.mu.RLock()
	sz := sh.m[apex]
	sh.mu.RUnlock()
	return sz
}

func (z *signedZones) put(apex string, sz *signedZone) {
	sh := z.shard(apex)
	sh.mu.Lock()
	if _, ok := sh.m[apex]; !ok {
		z.n.Add(1)
	}
	sh.m[apex] = sz
	sh.mu.Unlock()
}

func (z *signedZones) del(apex string) {
	sh := z.shard(apex)
	sh.mu.Lock()
	if _, ok := sh.m[apex]; ok {
		delete(sh.m, apex)
		z.n.Add(-1)
	}
	sh.mu.Unlock()
}

// apexes returns the apexes held.
func (z *signedZones) apexes() []string {
	var out []string
	for i := range z.shards {
		sh := &z.shards[i]
		sh.mu.RLock()
		for apex := range sh.m {
			out = append(out, apex)
		}
		sh.mu.RUnlock()
	}
	return out
}

// signedFor returns the signed form of the zone of m in v, or nil when the
// zone's case does not sign or the zone is not signed yet.
func (v *view) signedFor(m servedset.Match) *signedZone {
	if int(m.Case) >= len(v.signs) || v.signs[m.Case] == nil {
		return nil
	}
	return v.signed.get(m.Apex)
}

// signedOrAsk is signedFor for the query path: a zone of a signing case
// that is not signed yet (a sinkhole just started with many zones) is
// handed to the signer to sign before the others, without waiting.
func (v *view) signedOrAsk(m servedset.Match) *signedZone {
	sz := v.signedFor(m)
	if sz == nil && v.signed.urgent != nil && int(m.Case) < len(v.signs) && v.signs[m.Case] != nil && !v.signs[m.Case].ans.holdsNS(m.Apex) {
		select {
		case v.signed.urgent <- m.Apex:
		default:
		}
	}
	return sz
}

// lowerName returns name in lower case without the trailing dot.
func lowerName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
