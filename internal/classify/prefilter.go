package classify

import (
	"math/bits"
	"regexp/syntax"
	"slices"
	"unicode"
	"unicode/utf8"
)

// The literal prefilter of the unkeyed rules.
//
// At parse time every regular expression gets a set of literals one of
// which each of its matches contains (requiredLiterals), and every unkeyed
// rule keeps the best such set among its conditions, with the request field
// it is looked for in (ruleLiterals). For each protocol, the rules' literals
// are grouped by field into a litTable. Classify scans each field once,
// marks the rules whose literal occurs, and runs only those rules and the
// ones without a literal, in file order.
//
// Literals are stored in ASCII lower case and searched for in the ASCII
// lower case of the field: that finds every occurrence of a literal in any
// case, so one table serves case-sensitive and (?i) expressions alike.

const (
	// gramLen is the length of the substring a literal is filed under; a
	// literal must be at least this long.
	gramLen = 3
	// maxExact bounds the strings an expression is known to match exactly
	// (such as [ab]c or (?:x|y)z) before only required literals are kept.
	maxExact = 16
	// maxClass bounds the runes of a character class taken as exact strings.
	maxClass = 32
	// maxRequired bounds the literals of one set: one of them is required.
	maxRequired = 32
	// maxLitLen cuts longer literals; a part of a required literal is
	// required too.
	maxLitLen = 64
	// scanPerRule is how many bytes of a field are scanned per rule that
	// has its literal there; a longer field marks all those rules instead.
	// A scan costs 1–2 ns a byte, trying a rule about 15 ns: a field is
	// scanned only when that is cheaper than trying its rules, so a few
	// rules never cost a scan of a browser's user agent or a whole body.
	scanPerRule = 8
	// minFiltered is the fewest rules with literals a protocol needs for a
	// prefilter: trying fewer costs less than the prefilter's work.
	minFiltered = 4
	// stackWords is the size of the candidate set Classify keeps on the
	// stack; larger slots take one from Rules.scratch.
	stackWords = 16
)

// litSet is what the analysis knows of an expression: with exact, ss are
// all the strings it matches; else every match contains one of ss, and nil
// ss means nothing is known.
type litSet struct {
	exact bool
	ss    []string
}

var emptyExact = litSet{exact: true, ss: []string{""}}

// requiredLiterals returns literals, in ASCII lower case and at least
// gramLen bytes long, one of which (in some case) every match of re
// contains; nil when there is no such set.
func requiredLiterals(re *syntax.Regexp) []string {
	return requiredSet(analyze(re)).ss
}

func analyze(re *syntax.Regexp) litSet {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return emptyExact
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 && !slices.Contains(re.Rune, utf8.RuneError) {
			return litSet{exact: true, ss: []string{string(asciiLower([]byte(string(re.Rune))))}}
		}
		parts := make([]litSet, len(re.Rune))
		for i, r := range re.Rune {
			parts[i] = runeSet(r, re.Flags&syntax.FoldCase != 0)
		}
		return concatSets(parts)
	case syntax.OpCharClass:
		return classSet(re.Rune)
	case syntax.OpCapture:
		return analyze(re.Sub[0])
	case syntax.OpQuest:
		s := analyze(re.Sub[0])
		if s.exact && len(s.ss) < maxExact {
			return litSet{exact: true, ss: union(s.ss, []string{""})}
		}
	case syntax.OpPlus:
		return requiredSet(analyze(re.Sub[0]))
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredSet(analyze(re.Sub[0]))
		}
	case syntax.OpConcat:
		parts := make([]litSet, len(re.Sub))
		for i, s := range re.Sub {
			parts[i] = analyze(s)
		}
		return concatSets(parts)
	case syntax.OpAlternate:
		parts := make([]litSet, len(re.Sub))
		for i, s := range re.Sub {
			parts[i] = analyze(s)
		}
		return altSets(parts)
	}
	// Star, AnyChar, AnyCharNotNL, NoMatch: nothing known.
	return litSet{}
}

// runeSet is the exact set of one literal rune: its case-fold orbit with
// (?i), lowered. U+FFFD is unknown: regexp matches it on any invalid UTF-8
// byte, which is not the encoding of U+FFFD.
func runeSet(r rune, fold bool) litSet {
	if r == utf8.RuneError || !utf8.ValidRune(r) {
		return litSet{}
	}
	ss := []string{string(lowerRune(r))}
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			ss = union(ss, []string{string(lowerRune(f))})
		}
	}
	return litSet{exact: true, ss: ss}
}

// classSet is the exact set of a small character class.
func classSet(ranges []rune) litSet {
	n := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		n += int(ranges[i+1]-ranges[i]) + 1
		if n > maxClass {
			return litSet{}
		}
	}
	var ss []string
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			if r == utf8.RuneError || !utf8.ValidRune(r) {
				return litSet{}
			}
			ss = union(ss, []string{string(lowerRune(r))})
		}
	}
	if len(ss) == 0 || len(ss) > maxExact {
		return litSet{}
	}
	return litSet{exact: true, ss: ss}
}

func lowerRune(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// concatSets joins exact sets while they stay few and short; where they
// do not, or a part is not exact, the best required set of the parts so
// far is kept.
func concatSets(parts []litSet) litSet {
	acc, exact := []string{""}, true
	var best litSet
	flush := func() {
		best = better(best, requiredSet(litSet{exact: true, ss: acc}))
		acc = []string{""}
	}
	for _, p := range parts {
		if !p.exact {
			exact = false
			flush()
			best = better(best, p)
			continue
		}
		if len(acc)*len(p.ss) > maxExact || len(longest(acc)) > maxLitLen {
			exact = false
			flush()
		}
		next := make([]string, 0, len(acc)*len(p.ss))
		for _, a := range acc {
			for _, b := range p.ss {
				next = union(next, []string{a + b})
			}
		}
		acc = next
	}
	if exact {
		return litSet{exact: true, ss: acc}
	}
	flush()
	return best
}

// altSets: a match of an alternation is a match of one of its parts.
func altSets(parts []litSet) litSet {
	all := true
	var ss []string
	for _, p := range parts {
		if !p.exact {
			all = false
			break
		}
		ss = union(ss, p.ss)
	}
	if all && len(ss) <= maxExact {
		return litSet{exact: true, ss: ss}
	}
	ss = nil
	for _, p := range parts {
		q := requiredSet(p)
		if q.ss == nil {
			return litSet{}
		}
		ss = union(ss, q.ss)
		if len(ss) > maxRequired {
			return litSet{}
		}
	}
	return litSet{ss: ss}
}

// requiredSet turns s into a set one of whose literals every match
// contains: an exact set qualifies when none of its strings is too short
// to look for.
func requiredSet(s litSet) litSet {
	if !s.exact {
		return s
	}
	var ss []string
	for _, x := range s.ss {
		if len(x) < gramLen {
			return litSet{}
		}
		if len(x) > maxLitLen {
			x = x[:maxLitLen]
		}
		ss = union(ss, []string{x})
	}
	if len(ss) == 0 || len(ss) > maxRequired {
		return litSet{}
	}
	return litSet{ss: ss}
}

// better returns the more selective of two required sets.
func better(a, b litSet) litSet {
	if score(b.ss) > score(a.ss) {
		return b
	}
	return a
}

// score rates a required set: longer literals (up to 8 bytes, past which
// length hardly matters), then fewer of them; -1 for none.
func score(ss []string) int {
	if len(ss) == 0 {
		return -1
	}
	short := 8
	for _, s := range ss {
		short = min(short, len(s))
	}
	return short*(maxRequired+1) + maxRequired - len(ss)
}

// union appends the strings of b not in a.
func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

// fieldKind names the request field a rule's literals are looked for in,
// cheapest first.
type fieldKind uint8

const (
	fieldNone fieldKind = iota
	fieldDomain
	fieldHELO
	fieldUserAgent
	fieldPath
	fieldHeader
	fieldBody
)

// ruleLits are literals one of which is in field of every request the
// rule matches.
type ruleLits struct {
	field  fieldKind
	header string // canonical name, for fieldHeader
	lits   []string
}

// ruleLiterals picks the most selective literals of ru's conditions; the
// body only when nothing else has any, since it is the longest to scan.
func ruleLiterals(ru *rule) ruleLits {
	var best ruleLits
	try := func(f fieldKind, header string, m *matcher) {
		if m != nil && score(m.required) > score(best.lits) {
			best = ruleLits{field: f, header: header, lits: m.required}
		}
	}
	try(fieldDomain, "", ru.domainRE)
	try(fieldHELO, "", ru.helo)
	try(fieldUserAgent, "", ru.userAgent)
	try(fieldPath, "", ru.path)
	for _, h := range ru.headers {
		try(fieldHeader, h.name, h.re)
	}
	if best.lits != nil {
		return best
	}
	try(fieldBody, "", ru.body)
	if len(ru.bodyPrefix) >= gramLen {
		p := ru.bodyPrefix[:min(len(ru.bodyPrefix), maxLitLen)]
		lit := []string{string(asciiLower(p))}
		if score(lit) > score(best.lits) {
			best = ruleLits{field: fieldBody, lits: lit}
		}
	}
	return best
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = lowerByte(c)
	}
	return out
}

func lowerByte(c byte) byte {
	if c-'A' < 26 {
		c += 'a' - 'A'
	}
	return c
}

// prefilter picks the candidates among the unkeyed rules of one protocol.
// Positions are indexes into rules, which is in file order, so the
// candidate set is iterated in file order.
type prefilter struct {
	rules  []int32  // the protocol's unkeyed rules
	always []uint64 // positions of the rules without literals
	fields []litField
}

// litField finds the rules whose literal occurs in one request field.
type litField struct {
	kind   fieldKind
	header string   // for fieldHeader
	first  int32    // the first rule with a literal here
	every  []uint64 // positions of the rules with a literal here
	budget int      // bytes scanned at most; past them every rule is a candidate
	table  litTable
}

// newPrefilter builds the prefilter of the unkeyed rules list; lits are
// every rule's literals, by rule index. It returns nil when fewer than
// minFiltered rules of list have literals.
func newPrefilter(list []int32, lits []ruleLits) *prefilter {
	n := 0
	for _, i := range list {
		if lits[i].field != fieldNone {
			n++
		}
	}
	if n < minFiltered {
		return nil
	}
	words := (len(list) + 63) / 64
	pf := &prefilter{rules: list, always: make([]uint64, words)}
	type key struct {
		kind   fieldKind
		header string
	}
	byField := map[key]int{}
	var perField []map[string][]int32 // literal -> positions, per field
	for pos, i := range list {
		l := lits[i]
		if l.field == fieldNone {
			setBit(pf.always, int32(pos))
			continue
		}
		k := key{l.field, l.header}
		fi, ok := byField[k]
		if !ok {
			fi = len(pf.fields)
			byField[k] = fi
			pf.fields = append(pf.fields, litField{kind: l.field, header: l.header, first: i, every: make([]uint64, words)})
			perField = append(perField, map[string][]int32{})
		}
		setBit(pf.fields[fi].every, int32(pos))
		for _, s := range l.lits {
			perField[fi][s] = append(perField[fi][s], int32(pos))
		}
	}
	for fi := range pf.fields {
		f := &pf.fields[fi]
		n := 0
		for _, w := range f.every {
			n += bits.OnesCount64(w)
		}
		f.budget = scanPerRule * n
		f.table = newLitTable(perField[fi])
	}
	// Cheapest fields first: a scan that is skipped (every rule it could
	// mark comes after the best so far) costs nothing.
	slices.SortStableFunc(pf.fields, func(a, b litField) int { return int(a.kind) - int(b.kind) })
	return pf
}

func setBit(set []uint64, pos int32) { set[pos>>6] |= 1 << (pos & 63) }

// firstUnkeyed is first over the unkeyed rules of ix: only the candidates
// of the prefilter are matched.
func (rs *Rules) firstUnkeyed(ix *index, r *Request, best int32) int32 {
	pf := ix.pf
	if pf == nil {
		return rs.first(ix.unkeyed, r, best)
	}
	if len(pf.rules) == 0 || pf.rules[0] >= best {
		return best
	}
	var stack [stackWords]uint64
	var set []uint64
	var pooled *[]uint64
	if len(pf.always) <= len(stack) {
		set = stack[:len(pf.always)]
	} else {
		pooled = rs.scratch.Get().(*[]uint64)
		set = (*pooled)[:len(pf.always)]
	}
	copy(set, pf.always)
	for i := range pf.fields {
		if f := &pf.fields[i]; f.first < best {
			f.mark(r, set)
		}
	}
	best = rs.firstOf(pf.rules, set, r, best)
	if pooled != nil {
		rs.scratch.Put(pooled)
	}
	return best
}

// firstOf is first over the positions of set in list.
func (rs *Rules) firstOf(list []int32, set []uint64, r *Request, best int32) int32 {
	for w, word := range set {
		for word != 0 {
			i := list[w<<6|bits.TrailingZeros64(word)]
			if i >= best {
				return best
			}
			if rs.rules[i].match(r) {
				return i
			}
			word &= word - 1
		}
	}
	return best
}

// mark adds to set the rules whose literal is in the field of r.
func (f *litField) mark(r *Request, set []uint64) {
	switch f.kind {
	case fieldDomain:
		d := r.Domain
		if d == "" {
			d = r.SNI
		}
		f.markIn(trimDot(d), set)
	case fieldHELO:
		f.markIn(r.HELO, set)
	case fieldUserAgent:
		f.markIn(r.UserAgent, set)
	case fieldPath:
		f.markIn(r.Path, set)
	case fieldBody:
		if len(r.Body) > f.budget {
			or(set, f.every)
			return
		}
		scan(&f.table, r.Body, set)
	case fieldHeader:
		if r.Headers == nil {
			return
		}
		vs := r.Headers.Values(f.header)
		n := 0
		for _, v := range vs {
			n += len(v)
		}
		if n > f.budget {
			or(set, f.every)
			return
		}
		for _, v := range vs {
			scan(&f.table, v, set)
		}
	}
}

func (f *litField) markIn(s string, set []uint64) {
	if len(s) > f.budget {
		or(set, f.every)
		return
	}
	scan(&f.table, s, set)
}

func trimDot(d string) string {
	if len(d) > 0 && d[len(d)-1] == '.' {
		return d[:len(d)-1]
	}
	return d
}

func or(dst, src []uint64) {
	for i, w := range src {
		dst[i] |= w
	}
}

// litTable finds which of a set of literals occur in a text, ignoring
// ASCII case, in one pass. Each literal is filed under one of its gramLen
// byte substrings, the one fewest other literals have, in a hash table;
// the scan looks up every gramLen bytes of the text and compares the
// literals filed there.
type litTable struct {
	// filter has the bit hash>>16 set for the gram of every literal: most
	// positions of a text cost one bit test.
	filter *[1 << 16 / 64]uint64
	shift  uint32   // 32 - log2(buckets)
	start  []uint32 // bucket b holds ents[start[b]:start[b+1]]
	ents   []litEnt
	pos    []int32 // positions of the rules of each literal
}

type litEnt struct {
	gram   uint32 // the gramLen bytes, lowered, big-endian
	off    int32  // of gram in lit
	lit    string // lowered
	p0, p1 int32  // the literal's rules: pos[p0:p1]
}

func gramAt(s string, i int) uint32 {
	return uint32(s[i])<<16 | uint32(s[i+1])<<8 | uint32(s[i+2])
}

func newLitTable(lits map[string][]int32) litTable {
	keys := make([]string, 0, len(lits))
	for s := range lits {
		keys = append(keys, s)
	}
	slices.Sort(keys) // a table that does not depend on map order
	freq := map[uint32]int{}
	for _, s := range keys {
		seen := map[uint32]bool{}
		for i := 0; i+gramLen <= len(s); i++ {
			if g := gramAt(s, i); !seen[g] {
				seen[g] = true
				freq[g]++
			}
		}
	}
	var t litTable
	for _, s := range keys {
		off := 0
		for i := 1; i+gramLen <= len(s); i++ {
			if freq[gramAt(s, i)] < freq[gramAt(s, off)] {
				off = i
			}
		}
		p0 := int32(len(t.pos))
		t.pos = append(t.pos, lits[s]...)
		t.ents = append(t.ents, litEnt{gram: gramAt(s, off), off: int32(off), lit: s, p0: p0, p1: int32(len(t.pos))})
	}
	logSize := 3
	for 1<<logSize < 2*len(t.ents) {
		logSize++
	}
	t.shift = uint32(32 - logSize)
	t.start = make([]uint32, 1<<logSize+1)
	t.filter = new([1 << 16 / 64]uint64)
	for _, e := range t.ents {
		t.start[t.bucket(e.gram)+1]++
		h := hashGram(e.gram) >> 16
		t.filter[h>>6] |= 1 << (h & 63)
	}
	for b := 1; b < len(t.start); b++ {
		t.start[b] += t.start[b-1]
	}
	sorted := make([]litEnt, len(t.ents))
	fill := slices.Clone(t.start)
	for _, e := range t.ents {
		b := t.bucket(e.gram)
		sorted[fill[b]] = e
		fill[b]++
	}
	t.ents = sorted
	return t
}

func hashGram(gram uint32) uint32 { return gram * 0x9E3779B1 }

func (t *litTable) bucket(gram uint32) uint32 { return hashGram(gram) >> t.shift }

// scan sets the positions of the rules of every literal in s.
func scan[T string | []byte](t *litTable, s T, set []uint64) {
	if len(s) < gramLen {
		return
	}
	filter := t.filter
	g := uint32(lowerByte(s[0]))<<8 | uint32(lowerByte(s[1]))
	for i := gramLen - 1; i < len(s); i++ {
		g = (g<<8 | uint32(lowerByte(s[i]))) & 0xFFFFFF
		h := hashGram(g)
		if filter[h>>22]&(1<<(h>>16&63)) == 0 {
			continue
		}
		b := h >> t.shift
		for e, end := t.start[b], t.start[b+1]; e < end; e++ {
			ent := &t.ents[e]
			if ent.gram != g {
				continue
			}
			at := i - (gramLen - 1) - int(ent.off)
			if at < 0 || at+len(ent.lit) > len(s) || !hasLowerAt(s, at, ent.lit) {
				continue
			}
			for _, p := range t.pos[ent.p0:ent.p1] {
				setBit(set, p)
			}
		}
	}
}

// hasLowerAt reports whether the ASCII lower case of s at at starts with
// lit.
func hasLowerAt[T string | []byte](s T, at int, lit string) bool {
	for j := 0; j < len(lit); j++ {
		if lowerByte(s[at+j]) != lit[j] {
			return false
		}
	}
	return true
}
