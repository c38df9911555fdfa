package servedset

import (
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
)

// NameServer is an NS name of every seized zone, with its glue addresses.
type NameServer struct {
	// Name is a host name (lower case, no trailing dot once in a snapshot).
	Name  string
	Addrs []netip.Addr
}

// Sinkhole is what every seized zone answers, whatever its case: its name
// servers, the sinkhole's addresses, the TTLs and the SOA contact.
type Sinkhole struct {
	// NameServers are the NS records of every zone; a snapshot that serves
	// a zone has at least one.
	NameServers []NameServer
	// A and AAAA are the sinkhole addresses every name resolves to.
	A, AAAA []netip.Addr
	// TTL of the answers; 0 leaves it to the sinkhole (300 s).
	TTL uint32
	// NegativeTTL is the SOA minimum; 0 leaves it to the sinkhole (60 s).
	NegativeTTL uint32
	// Hostmaster is the SOA contact: a domain name ("hostmaster.example"),
	// an address ("abuse@example"), or "" for hostmaster.<zone>.
	Hostmaster string
}

// Case is a takedown case as the sinks see it.
type Case struct {
	// Name is the case's handle, e.g. "waledac-2010"; events carry it.
	Name string
	// Family is the malware family the case names ("" for none), lower
	// case: the family of a zone's events that no rule names.
	Family string
	// TXT is the text of the apex TXT record of the case's zones, e.g.
	// "sinkholed by order of E.D. Va. 1:10-cv-00156 (case waledac-2010)";
	// "" for no TXT record.
	TXT string
	// Keys are the case's DNSSEC keys that are not removed; empty, the
	// case's zones are unsigned. Published keys go in each zone's DNSKEY
	// RRset, active keys sign.
	Keys []dnssec.Key
}

// Equal reports whether c and o are the same case with the same keys (see
// dnssec.Key.Equal).
func (c *Case) Equal(o *Case) bool {
	return c.Name == o.Name && c.Family == o.Family && c.TXT == o.TXT &&
		slices.EqualFunc(c.Keys, o.Keys, func(a, b dnssec.Key) bool { return a.Equal(&b) })
}

// Zone is a seized zone and the case that seized it, as a Delta names it.
type Zone struct {
	// Name is the apex: a host name, any case, trailing dot optional.
	Name string
	// Case is the handle of a case of the snapshot (or of the same Delta).
	Case string
}

// shardBits sets the number of shards of the zone map: 4,096, about 244
// zones each at a million. A change copies the shards it touches (and the
// array of their pointers, 32 KiB), so its cost does not grow with the
// number of zones.
const (
	shardBits  = 12
	shardCount = 1 << shardBits
)

// entry is what a shard keeps per zone.
type entry struct {
	name string // the apex again, sharing the key's bytes: events carry it
	kase uint32 // index into Snapshot.cases
}

// Snapshot is one immutable version of the served set. Its methods are safe
// for concurrent use; nothing it returns may be modified.
type Snapshot struct {
	serial   uint32
	sinkhole *Sinkhole
	// cases by index; an index never changes meaning within a lineage of
	// snapshots (a case changed in place keeps its index).
	cases   []Case
	caseIdx map[string]uint32
	// perCase counts the zones of each case, by the same index.
	perCase []int
	shards  *[shardCount]map[string]entry
	seed    maphash.Seed
	zones   int
	// byLabels counts the zones by their number of labels; maxLabels is
	// the largest count with zones. A lookup asks only the maps of label
	// counts that have zones, and walks no deeper than maxLabels.
	byLabels  [maxLabels + 1]int32
	maxLabels int
}

// Empty returns the snapshot of serial 0 that serves nothing: the start of
// every lineage (a Delta from serial 0 is a full form).
func Empty() *Snapshot {
	return &Snapshot{
		sinkhole: &Sinkhole{},
		caseIdx:  map[string]uint32{},
		shards:   new([shardCount]map[string]entry),
		seed:     maphash.MakeSeed(),
	}
}

// Serial is the snapshot's serial number; 0 for Empty.
func (s *Snapshot) Serial() uint32 { return s.serial }

// Len is the number of zones served.
func (s *Snapshot) Len() int { return s.zones }

// Sinkhole returns what every zone answers.
func (s *Snapshot) Sinkhole() *Sinkhole { return s.sinkhole }

// Cases returns the cases by index (see Match.Case).
func (s *Snapshot) Cases() []Case { return s.cases }

// Case returns the case of index i (see Match.Case).
func (s *Snapshot) Case(i uint32) *Case { return &s.cases[i] }

// CaseNamed returns the case of that handle, and whether the snapshot has it.
func (s *Snapshot) CaseNamed(name string) (*Case, bool) {
	i, ok := s.caseIdx[name]
	if !ok {
		return nil, false
	}
	return &s.cases[i], true
}

// CaseZones returns the number of zones of the case of index i.
func (s *Snapshot) CaseZones(i uint32) int { return s.perCase[i] }

// Match is a served zone found by Lookup.
type Match struct {
	// Apex is the zone (lower case, no trailing dot).
	Apex string
	// Start is where the apex begins in the name looked up; 0 when the name
	// is the apex.
	Start int
	// Case is the index of the zone's case (Snapshot.Case).
	Case uint32
}

// Lookup finds the deepest served zone that holds name, a lower-case name in
// presentation format (escapes allowed; the trailing dot optional). It walks
// the labels from the right, asks one map per label count that has zones,
// and does not allocate: the DNS sinkhole calls it for every query.
func (s *Snapshot) Lookup(name []byte) (Match, bool) {
	var m Match
	n := len(name)
	if n > 0 && name[n-1] == '.' {
		n--
	}
	if n == 0 || s.zones == 0 {
		return m, false
	}
	found := false
	labels := 0
	for i := n - 1; i >= -1; i-- {
		if i >= 0 && (name[i] != '.' || escaped(name, i)) {
			continue
		}
		labels++
		if labels > maxLabels {
			break
		}
		if s.byLabels[labels] > 0 {
			key := name[i+1 : n]
			sh := s.shards[maphash.Bytes(s.seed, key)>>(64-shardBits)]
			if e, ok := sh[string(key)]; ok {
				m = Match{Apex: e.name, Start: i + 1, Case: e.kase}
				found = true
			}
		}
		if labels >= s.maxLabels {
			break
		}
	}
	return m, found
}

// escaped reports whether the byte at i is preceded by an odd number of
// backslashes, that is, escaped in presentation format.
func escaped(s []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// Zone tells whether name (a host name, any case, with or without the
// trailing dot) is in a served zone, and which: the zone, the case that
// seized it and the family that case names. The listeners and the ingest
// endpoint attribute what they record with it; it does not allocate.
func (s *Snapshot) Zone(name string) (zone, caseName, family string, ok bool) {
	var buf [maxNameLen + 2]byte
	if len(name) > maxNameLen+1 {
		return "", "", "", false
	}
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	m, found := s.Lookup(b)
	if !found {
		return "", "", "", false
	}
	c := &s.cases[m.Case]
	return m.Apex, c.Name, c.Family, true
}

// Has reports whether apex (any case, trailing dot optional) is a served
// zone, and its case.
func (s *Snapshot) Has(apex string) (*Case, bool) {
	key, ok := hostName(apex)
	if !ok {
		return nil, false
	}
	e, ok := s.shard(key)[key]
	if !ok {
		return nil, false
	}
	return &s.cases[e.kase], true
}

// All yields every served zone with its case, in no particular order.
func (s *Snapshot) All() iter.Seq2[string, *Case] {
	return func(yield func(string, *Case) bool) {
		for _, sh := range s.shards {
			for name, e := range sh {
				if !yield(name, &s.cases[e.kase]) {
					return
				}
			}
		}
	}
}

func (s *Snapshot) shardOf(key string) int {
	return int(maphash.String(s.seed, key) >> (64 - shardBits))
}

func (s *Snapshot) shard(key string) map[string]entry {
	return s.shards[s.shardOf(key)]
}

// Delta is one step of the served set: from the snapshot of serial From to
// that of serial To. Its parts apply in this order: the sinkhole, the
// cases, the removals, the puts. A Delta from serial 0 is a full form: it
// names everything a snapshot holds.
type Delta struct {
	From, To uint32
	// Sinkhole, if not nil, replaces what every zone answers.
	Sinkhole *Sinkhole
	// Cases are added, or replace the case of the same name.
	Cases []Case
	// Remove names zones that are served no more; each must be served.
	Remove []string
	// Put adds zones, or moves a served zone to another case.
	Put []Zone
}

// Empty reports whether d changes nothing but the serial.
func (d *Delta) Empty() bool {
	return d.Sinkhole == nil && len(d.Cases) == 0 && len(d.Remove) == 0 && len(d.Put) == 0
}

// ErrSerial is wrapped by the errors of a delta that does not follow the
// snapshot it is applied to: it needs the full form, or the deltas between.
var ErrSerial = errors.New("delta does not follow the snapshot")

// Apply returns the snapshot that d makes of s; s does not change. It costs
// in proportion to d, not to the number of zones: it copies the shards that
// d touches. A delta with anything invalid — a serial that does not follow,
// a name that is not a host name, a removal of a zone not served, a put
// for a case that does not exist, zones without a name server — is refused
// whole, with an error that names the part and its position.
func (s *Snapshot) Apply(d *Delta) (*Snapshot, error) {
	if d.From != s.serial {
		return nil, fmt.Errorf("servedset: delta from serial %d to %d applied to serial %d: %w", d.From, d.To, s.serial, ErrSerial)
	}
	if d.To == 0 || (d.From != 0 && !SerialLess(d.From, d.To)) {
		return nil, fmt.Errorf("servedset: delta from serial %d to %d: the new serial must follow the old one (RFC 1982)", d.From, d.To)
	}
	n := *s
	n.serial = d.To
	if d.Sinkhole != nil {
		sh, err := checkSinkhole(d.Sinkhole)
		if err != nil {
			return nil, fmt.Errorf("servedset: delta to serial %d: %w", d.To, err)
		}
		n.sinkhole = sh
	}
	if err := n.putCases(d.Cases, d.To); err != nil {
		return nil, err
	}
	w := shardWriter{s: &n}
	if len(d.Put) > shardCount {
		// A large delta (a full form): size each shard once.
		w.hint = new([shardCount]int32)
		for _, z := range d.Put {
			if key, ok := hostName(z.Name); ok {
				w.hint[n.shardOf(key)]++
			}
		}
	}
	perCase := false
	for i, name := range d.Remove {
		key, ok := hostName(name)
		if !ok {
			return nil, fmt.Errorf("servedset: delta to serial %d: removal %d %q is not a host name", d.To, i+1, cut(name))
		}
		m := w.shard(key)
		e, ok := m[key]
		if !ok {
			return nil, fmt.Errorf("servedset: delta to serial %d: removal %d %s is not served", d.To, i+1, key)
		}
		if !perCase {
			n.perCase, perCase = slices.Clone(n.perCase), true
		}
		delete(m, key)
		n.perCase[e.kase]--
		n.zones--
		n.byLabels[labelCount(key)]--
	}
	for i, z := range d.Put {
		key, ok := hostName(z.Name)
		if !ok {
			return nil, fmt.Errorf("servedset: delta to serial %d: put %d %q is not a host name", d.To, i+1, cut(z.Name))
		}
		idx, ok := n.caseIdx[z.Case]
		if !ok {
			return nil, fmt.Errorf("servedset: delta to serial %d: put %d %s: case %q is not in the served set", d.To, i+1, key, cut(z.Case))
		}
		if !perCase {
			n.perCase, perCase = slices.Clone(n.perCase), true
		}
		m := w.shard(key)
		if old, ok := m[key]; ok {
			n.perCase[old.kase]--
		} else {
			n.zones++
			n.byLabels[labelCount(key)]++
		}
		m[key] = entry{name: key, kase: idx}
		n.perCase[idx]++
	}
	n.maxLabels = 0
	for l := maxLabels; l > 0; l-- {
		if n.byLabels[l] > 0 {
			n.maxLabels = l
			break
		}
	}
	if n.zones > 0 && len(n.sinkhole.NameServers) == 0 {
		return nil, fmt.Errorf("servedset: delta to serial %d: %d zones served without a name server", d.To, n.zones)
	}
	return &n, nil
}

// putCases adds or replaces cases in n, copying its case tables first.
func (n *Snapshot) putCases(cases []Case, to uint32) error {
	copied := false
	for i, c := range cases {
		c, err := checkCase(c)
		if err != nil {
			return fmt.Errorf("servedset: delta to serial %d: case %d: %w", to, i+1, err)
		}
		idx, ok := n.caseIdx[c.Name]
		if ok && n.cases[idx].Equal(&c) {
			continue
		}
		if !copied {
			n.cases = slices.Clone(n.cases)
			n.caseIdx = maps.Clone(n.caseIdx)
			n.perCase = slices.Clone(n.perCase)
			copied = true
		}
		if ok {
			n.cases[idx] = c
			continue
		}
		n.caseIdx[c.Name] = uint32(len(n.cases))
		n.cases = append(n.cases, c)
		n.perCase = append(n.perCase, 0)
	}
	return nil
}

// shardWriter copies each shard of a new snapshot before its first change.
type shardWriter struct {
	s      *Snapshot
	copied bool                    // the array of shard pointers
	owned  [shardCount / 64]uint64 // shards copied already
	hint   *[shardCount]int32      // puts per shard, for a large delta
}

// shard returns the writable shard of key.
func (w *shardWriter) shard(key string) map[string]entry {
	i := w.s.shardOf(key)
	if w.owned[i/64]&(1<<(i%64)) != 0 {
		return w.s.shards[i]
	}
	if !w.copied {
		shards := *w.s.shards
		w.s.shards = &shards
		w.copied = true
	}
	old := w.s.shards[i]
	size := len(old)
	if w.hint != nil {
		size += int(w.hint[i])
	}
	m := make(map[string]entry, size)
	maps.Copy(m, old)
	w.s.shards[i] = m
	w.owned[i/64] |= 1 << (i % 64)
	return m
}

// checkCase returns c checked, its family lower-cased.
func checkCase(c Case) (Case, error) {
	var err error
	if c.Name, err = handle("name", c.Name); err != nil {
		return c, err
	}
	if c.Family != "" {
		if c.Family, err = handle("family", strings.ToLower(c.Family)); err != nil {
			return c, fmt.Errorf("case %s: %w", c.Name, err)
		}
	}
	if len(c.TXT) > maxTXTLen || !utf8.ValidString(c.TXT) {
		return c, fmt.Errorf("case %s: TXT of %d bytes: want valid UTF-8 of at most %d bytes", c.Name, len(c.TXT), maxTXTLen)
	}
	if err := checkKeys(c.Keys); err != nil {
		return c, fmt.Errorf("case %s: %w", c.Name, err)
	}
	c.Keys = slices.Clip(slices.Clone(c.Keys))
	return c, nil
}

// checkKeys checks a case's keys: at most maxKeysPerCase, of algorithm 13
// or 15, zone keys, their public keys of the algorithm's size, in a state
// the sinks serve, a private key that matches, and one active key at
// least (else nothing would sign the zones).
func checkKeys(keys []dnssec.Key) error {
	if len(keys) == 0 {
		return nil
	}
	if len(keys) > maxKeysPerCase {
		return fmt.Errorf("%d DNSSEC keys, more than %d", len(keys), maxKeysPerCase)
	}
	active := false
	for i := range keys {
		k := &keys[i]
		size := map[uint8]int{dnssec.ECDSAP256SHA256: 64, dnssec.ED25519: 32}[k.Algorithm]
		if size == 0 {
			return fmt.Errorf("key %d: algorithm %d: want 13 (ECDSAP256SHA256) or 15 (ED25519)", i+1, k.Algorithm)
		}
		if pub, err := base64.StdEncoding.DecodeString(k.PublicKey); err != nil || len(pub) != size {
			return fmt.Errorf("key %d: public key %q is not the base64 of %d bytes", i+1, cut(k.PublicKey), size)
		}
		if k.Flags&dns.ZONE == 0 || k.Flags&^(dns.ZONE|dns.SEP) != 0 {
			return fmt.Errorf("key %d (tag %d): flags %d: want 256 or 257 (a zone key)", i+1, k.Tag(), k.Flags)
		}
		switch k.State {
		case dnssec.StateActive:
			active = true
		case dnssec.StatePublished, dnssec.StateRetired:
		default:
			return fmt.Errorf("key %d (tag %d): state %q: want published, active or retired", i+1, k.Tag(), k.State)
		}
		if k.Signer != nil {
			if pub, err := dnssec.PublicKeyOf(k.Algorithm, k.Signer); err != nil || pub != k.PublicKey {
				return fmt.Errorf("key %d (tag %d): the private key is not that of the public key", i+1, k.Tag())
			}
		}
	}
	if !active {
		return fmt.Errorf("%d DNSSEC keys and none active: nothing would sign the zones", len(keys))
	}
	return nil
}

// checkSinkhole returns a checked copy of sh: names in lower case without
// the trailing dot, addresses unmapped.
func checkSinkhole(sh *Sinkhole) (*Sinkhole, error) {
	out := &Sinkhole{TTL: sh.TTL, NegativeTTL: sh.NegativeTTL}
	if len(sh.NameServers) > maxNSPerSet {
		return nil, fmt.Errorf("sinkhole: %d name servers, more than %d", len(sh.NameServers), maxNSPerSet)
	}
	for i, ns := range sh.NameServers {
		name, ok := hostName(ns.Name)
		if !ok {
			return nil, fmt.Errorf("sinkhole: name server %d %q is not a host name", i+1, cut(ns.Name))
		}
		if len(ns.Addrs) > maxAddrsEach {
			return nil, fmt.Errorf("sinkhole: name server %s has %d addresses, more than %d", name, len(ns.Addrs), maxAddrsEach)
		}
		addrs := make([]netip.Addr, len(ns.Addrs))
		for j, a := range ns.Addrs {
			if !a.IsValid() || a.Zone() != "" {
				return nil, fmt.Errorf("sinkhole: name server %s: address %d is not an IP address", name, j+1)
			}
			addrs[j] = a.Unmap()
		}
		out.NameServers = append(out.NameServers, NameServer{Name: name, Addrs: addrs})
	}
	for _, fam := range []struct {
		in   []netip.Addr
		out  *[]netip.Addr
		want int
	}{{sh.A, &out.A, 4}, {sh.AAAA, &out.AAAA, 6}} {
		if len(fam.in) > maxAddrsEach {
			return nil, fmt.Errorf("sinkhole: %d IPv%d addresses, more than %d", len(fam.in), fam.want, maxAddrsEach)
		}
		for j, a := range fam.in {
			ok := a.Unmap().Is4()
			if fam.want == 6 {
				ok = a.Is6() && !a.Is4In6() && a.Zone() == ""
			}
			if !ok {
				return nil, fmt.Errorf("sinkhole: address %d %s is not an IPv%d address", j+1, a, fam.want)
			}
			*fam.out = append(*fam.out, a.Unmap())
		}
	}
	if sh.TTL > 1<<31-1 || sh.NegativeTTL > 1<<31-1 {
		return nil, fmt.Errorf("sinkhole: TTLs %d and %d: want at most %d (RFC 2181)", sh.TTL, sh.NegativeTTL, 1<<31-1)
	}
	var err error
	if out.Hostmaster, err = mailbox(sh.Hostmaster); err != nil {
		return nil, fmt.Errorf("sinkhole: %w", err)
	}
	return out, nil
}

// SerialLess reports a < b in RFC 1982 serial number arithmetic.
func SerialLess(a, b uint32) bool { return a != b && int32(b-a) > 0 }

// NextSerial returns a serial after prev for a change made at unix time
// now: now itself, or prev+1 when now is not after prev. Serials stay the
// unix time of the change as long as changes come less than once a second,
// so that a restart does not take them back.
func NextSerial(prev uint32, now int64) uint32 {
	s := uint32(now)
	if !SerialLess(prev, s) {
		s = prev + 1
	}
	if s == 0 {
		s = 1
	}
	return s
}
