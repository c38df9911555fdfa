package dnssink

import (
	"strings"

	"github.com/miekg/dns"
)

// SOA timers of every zone. The sinkhole zones change only when the
// registry does, and NOTIFY tells secondaries about that; the timers are
// the fallback.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 1209600 // two weeks: secondaries keep answering through an outage
)

// zoneMeta is what the snapshot keeps per zone besides its name: indexes
// into the interned case and TXT tables, so that a million zones of a few
// cases cost a map entry each.
type zoneMeta struct {
	name   string // the apex again, sharing the key's bytes, for events
	caseID uint32
	txtID  uint32
}

// snapshot is one immutable generation of the served zones. The query path
// reads it through an atomic pointer and never locks.
type snapshot struct {
	// zones maps an apex (lower case, no trailing dot) to its metadata.
	zones map[string]zoneMeta
	// cases and txts are the interned values; index 0 is "" / no TXT.
	cases []string
	// families holds the family of each case, by the same index.
	families []string
	txts     [][]string // each TXT split into character-strings of ≤ 255 bytes
	// txtWire holds the same TXTs packed as RDATA, for the fast path.
	txtWire [][]byte
	// maxLabels is the most labels of any apex: the lookup walks no deeper.
	maxLabels int
	serial    uint32
}

// zoneMatch is the result of a lookup: the zone and where its apex starts
// in the query name.
type zoneMatch struct {
	apex  string // lower case, no trailing dot (the snapshot's key)
	start int    // index of the apex in the qname; 0 means the qname is the apex
	meta  zoneMeta
}

// lookup finds the deepest served zone that contains name, a lower-cased
// presentation-format FQDN. It walks the labels from the right, so that it
// costs one map access per label up to the deepest apex, and does not
// allocate.
func (sn *snapshot) lookup(name []byte) (zoneMatch, bool) {
	var m zoneMatch
	found := false
	n := len(name)
	if n > 0 && name[n-1] == '.' {
		n--
	}
	if n == 0 {
		return m, false
	}
	labels := 0
	for i := n - 1; i >= -1; i-- {
		if i >= 0 && (name[i] != '.' || escaped(name, i)) {
			continue
		}
		labels++
		start := i + 1
		if meta, ok := sn.zones[string(name[start:n])]; ok {
			m = zoneMatch{apex: meta.name, start: start, meta: meta}
			found = true
		}
		if labels >= sn.maxLabels {
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

// buildSnapshot turns zones into a snapshot; it returns the number of
// zones skipped because their names are not valid domain names.
func buildSnapshot(zones []Zone, serial uint32) (*snapshot, int) {
	sn := &snapshot{
		zones:    make(map[string]zoneMeta, len(zones)),
		cases:    []string{""},
		families: []string{""},
		txts:     [][]string{nil},
		txtWire:  [][]byte{nil},
		serial:   serial,
	}
	caseIDs := map[string]uint32{"": 0}
	txtIDs := map[string]uint32{"": 0}
	skipped := 0
	for _, z := range zones {
		name, ok := normalizeName(z.Name)
		if !ok {
			skipped++
			continue
		}
		if _, dup := sn.zones[name]; dup {
			continue // the first entry wins
		}
		cid, ok := caseIDs[z.Case]
		if !ok {
			cid = uint32(len(sn.cases))
			caseIDs[z.Case] = cid
			sn.cases = append(sn.cases, z.Case)
			sn.families = append(sn.families, strings.ToLower(z.Family))
		}
		tid, ok := txtIDs[z.TXT]
		if !ok {
			tid = uint32(len(sn.txts))
			txtIDs[z.TXT] = tid
			sn.txts = append(sn.txts, splitTXT(z.TXT))
			sn.txtWire = append(sn.txtWire, packTXT(sn.txts[tid]))
		}
		sn.zones[name] = zoneMeta{name: name, caseID: cid, txtID: tid}
		if l := dns.CountLabel(name); l > sn.maxLabels {
			sn.maxLabels = l
		}
	}
	return sn, skipped
}

// sameContent reports whether a and b serve the same zones with the same
// case and TXT.
func sameContent(a, b *snapshot) bool {
	if len(a.zones) != len(b.zones) {
		return false
	}
	for name, ma := range a.zones {
		mb, ok := b.zones[name]
		if !ok || a.cases[ma.caseID] != b.cases[mb.caseID] || a.families[ma.caseID] != b.families[mb.caseID] ||
			!equalStrings(a.txts[ma.txtID], b.txts[mb.txtID]) {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// normalizeName lower-cases name and strips a trailing dot; it reports
// false for names that are not valid domain names or are the root.
func normalizeName(name string) (string, bool) {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if name == "" || strings.ContainsAny(name, "\\ ") {
		return "", false
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", false
	}
	return name, true
}

// splitTXT splits s into DNS character-strings of at most 255 bytes.
func splitTXT(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}
