package classify

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/takedown-project/takedown/internal/event"
)

func literalsOf(t testing.TB, expr string) []string {
	t.Helper()
	syn, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	return requiredLiterals(syn.Simplify())
}

func TestRequiredLiterals(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string // nil: always a candidate
	}{
		{`Agent495`, []string{"agent495"}},
		{`^/(?:panel|admin)/gate7\.php`, []string{"/panel/gate7.php", "/admin/gate7.php"}}, // README
		{`(?i)bot-v2`, []string{"bot-v2"}},
		{`^/[a-z]+\.(?:htm|png)$`, []string{".htm", ".png"}},
		{`(?:a|bc)d`, nil},
		{`^/(?:panel|admin)/gate495\.php`, []string{"/panel/gate495.php", "/admin/gate495.php"}},
		{`^Mozilla$`, []string{"mozilla"}},
		{`^/[A-Za-z0-9_-]{1,64}\.(?:htm|png)$`, []string{".htm", ".png"}},
		{`(?i)agent`, []string{"agent"}},
		{`(?i)desk`, []string{"desk", "de\u017fk", "des\u212a", "de\u017f\u212a"}}, // U+017F is s, U+212A (Kelvin) k
		{`(?i)é/x`, []string{"é/x", "É/x"}},
		{`foo|bar`, []string{"foo", "bar"}},
		{`foo|ba`, nil}, // "ba" is too short to look for
		{`foo|.`, nil},  // one branch has no literal
		{`(?:foo|)bar`, []string{"foobar", "bar"}},
		{`(?:foo)?x`, nil}, // "x" alone
		{`x(?:foo)?yz`, []string{"xfooyz", "xyz"}},
		{`a*bcd`, []string{"bcd"}},
		{`(?:abc)+`, []string{"abc"}},
		{`(?:abc)*`, nil},
		{`(?:abc){2,3}`, []string{"abcabc", "abcabcabc"}},
		{`(?:abc){0,3}`, nil},
		{`[ab]cd`, []string{"acd", "bcd"}},
		{`[a-z]cd`, nil}, // 26 > maxExact strings of 3 bytes
		{`[a-z]+cdef`, []string{"cdef"}},
		{`\bgate\b`, []string{"gate"}},
		{`(?m)^gate$`, []string{"gate"}},
		{`.*`, nil},
		{`\x{FFFD}abc`, []string{"abc"}}, // U+FFFD matches any invalid byte
		{`\x{FFFD}`, nil},
		{`ab[\x{FFFD}c]de`, []string{"de"}[:0:0]},
		{`(?s)id=.`, []string{"id="}},
		{`[0-9][0-9]gate[0-9]`, nil},
		{`xx[0-9]gate`, []string{"xx0gate", "xx1gate", "xx2gate", "xx3gate", "xx4gate", "xx5gate", "xx6gate", "xx7gate", "xx8gate", "xx9gate"}},
		{`xx[0-9][0-9]gate`, []string{"0gate", "1gate", "2gate", "3gate", "4gate", "5gate", "6gate", "7gate", "8gate", "9gate"}},
		{strings.Repeat("ab", 1000), []string{strings.Repeat("ab", maxLitLen/2)}},
		{"(?i)" + strings.Repeat("ab", 1000), []string{strings.Repeat("ab", maxLitLen/2)}},
	} {
		got := literalsOf(t, c.expr)
		if c.expr == `ab[\x{FFFD}c]de` || c.expr == `[0-9][0-9]gate[0-9]` {
			// Only check soundness below for these: the sets depend on the
			// order the analysis splits them in.
			continue
		}
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", c.expr, got, want)
		}
	}
}

// fragments of random expressions and texts: letters with case and
// non-ASCII case folds, digits, punctuation.
var fragments = []string{"a", "b", "ab", "abc", "gate", "Gate", "GATE", "php", "k", "K", "\u212a", "s", "S", "\u017f",
	"é", "É", "0", "42", "/", ".", "x", " ", "id=", "z", "Zz"}

func randExpr(rng *rand.Rand, depth int) string {
	var b strings.Builder
	for range 1 + rng.IntN(4) {
		b.WriteString(randAtom(rng, depth))
	}
	return b.String()
}

func randAtom(rng *rand.Rand, depth int) string {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var a string
	switch n := rng.IntN(10); {
	case n < 4 || depth <= 0:
		a = regexp.QuoteMeta(fragments[rng.IntN(len(fragments))])
		if rng.IntN(3) == 0 {
			a += regexp.QuoteMeta(fragments[rng.IntN(len(fragments))])
		}
		if rng.IntN(4) == 0 {
			a = "(?:" + a + ")"
		}
	case n < 5:
		a = pick(`[ab]`, `[a-c0-2]`, `[^a]`, `[kK]`, `\d`, `\w`, `.`, `[é/]`, `\x{FFFD}`, `[\x{FFFD}a]`, `[0-9]`, `\pL`, `(?s:.)`)
	case n < 6:
		a = "(?:" + randExpr(rng, depth-1) + "|" + randExpr(rng, depth-1) + pick("", "", "|") + ")"
	case n < 7:
		a = "(" + randExpr(rng, depth-1) + ")"
	case n < 8:
		a = "(?i:" + randExpr(rng, depth-1) + ")"
	case n < 9:
		a = pick(`^`, `$`, `\b`, `\B`, `(?m:^)`, `(?m:$)`, `\A`, `\z`, `(?:)`)
	default:
		a = "(?:" + randExpr(rng, depth-1) + ")" + pick("?", "*", "+", "{1,3}", "{0,2}", "{2}", "+?", "??")
	}
	return a
}

func randText(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(7) {
		switch rng.IntN(12) {
		case 0:
			b.WriteString("\xff")
		case 1:
			b.WriteString("\uFFFD")
		case 2:
			b.WriteString(strings.ToUpper(fragments[rng.IntN(len(fragments))]))
		default:
			b.WriteString(fragments[rng.IntN(len(fragments))])
		}
	}
	return b.String()
}

// checkLiterals fails when expr matches text but text has none of its
// required literals.
func checkLiterals(t testing.TB, re *regexp.Regexp, lits []string, text string) {
	t.Helper()
	if lits == nil || !re.MatchString(text) {
		return
	}
	low := string(asciiLower([]byte(text)))
	for _, l := range lits {
		if strings.Contains(low, l) {
			return
		}
	}
	t.Fatalf("%q matches %q, which has none of %q", re, text, lits)
}

func TestRequiredLiteralsSound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n, withLits, matched := 3000, 0, 0
	if testing.Short() || raceEnabled {
		n = 500
	}
	for range n {
		expr := randExpr(rng, 3)
		if rng.IntN(5) == 0 {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		lits := literalsOf(t, expr)
		for _, l := range lits {
			if len(l) < gramLen || len(l) > maxLitLen || string(asciiLower([]byte(l))) != l {
				t.Fatalf("%s: literal %q", expr, l)
			}
		}
		if lits != nil {
			withLits++
		}
		for range 100 {
			text := randText(rng)
			if re.MatchString(text) {
				matched++
			}
			checkLiterals(t, re, lits, text)
		}
		// The strings the expression was made of, as they are.
		for _, f := range fragments {
			checkLiterals(t, re, lits, f+f)
		}
	}
	if withLits < n/5 || matched < n {
		t.Errorf("weak test: %d of %d expressions with literals, %d matches", withLits, n, matched)
	}
}

func TestLitTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		lits := map[string][]int32{}
		var all []string
		for p := range int32(1 + rng.IntN(40)) {
			l := string(asciiLower([]byte(randText(rng) + "xyz")))
			l = l[:min(len(l), 3+rng.IntN(3))]
			if rng.IntN(3) == 0 {
				l = string(asciiLower([]byte(randText(rng) + "abc")))
			}
			if len(l) > maxLitLen {
				l = l[:maxLitLen]
			}
			if !slices.Contains(all, l) {
				all = append(all, l)
			}
			lits[l] = append(lits[l], p)
		}
		tab := newLitTable(lits)
		for range 50 {
			text := randText(rng) + randText(rng)
			if rng.IntN(2) == 0 {
				l := all[rng.IntN(len(all))]
				text += strings.ToUpper(l) + randText(rng)
			}
			set := make([]uint64, 1)
			scan(&tab, text, set)
			setB := make([]uint64, 1)
			scan(&tab, []byte(text), setB)
			var want uint64
			low := string(asciiLower([]byte(text)))
			for l, ps := range lits {
				if strings.Contains(low, l) {
					for _, p := range ps {
						want |= 1 << p
					}
				}
			}
			if set[0] != want || setB[0] != want {
				t.Fatalf("%q in %q: %b and %b, want %b", all, text, set[0], setB[0], want)
			}
		}
	}
}

// randRules makes rules of every kind: keyed and unkeyed, with and without
// literals, on every field the prefilter reads.
func randRules(rng *rand.Rand, n int, unkeyed bool) []fileRule {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	expr := func() string {
		if rng.IntN(3) == 0 {
			return regexp.QuoteMeta(pick(fragments...) + pick(fragments...) + pick(fragments...))
		}
		return randExpr(rng, 2)
	}
	out := make([]fileRule, n)
	for i := range out {
		fr := fileRule{Name: fmt.Sprintf("r%d", i), Family: fmt.Sprintf("f%d", i%5)}
		m := &fr.Match
		if rng.IntN(2) == 0 {
			for _, p := range []string{"http", "https", "smtp", "dns", "tcp"} {
				if rng.IntN(3) == 0 {
					m.Protocol = append(m.Protocol, p)
				}
			}
		}
		key := rng.IntN(8)
		if unkeyed {
			key = -1
		}
		switch key {
		case 0:
			m.Domain = list{pick("a.test", "b.a.test", "c.test")}
		case 1:
			m.Zone = list{pick("a.test", "c.test")}
		case 2:
			m.CaseFamily = list{pick("x", "y")}
		case 3:
			m.TLSFingerprint = list{pick("t13d1516h2_8daaf6152771_e5627efa2ab1", "t13d*")}
		}
		if rng.IntN(2) == 0 {
			m.Path = expr()
		}
		if rng.IntN(3) == 0 {
			m.UserAgent = expr()
		}
		if rng.IntN(6) == 0 {
			m.HELO = expr()
		}
		if rng.IntN(8) == 0 {
			m.DomainRegex = expr()
		}
		if rng.IntN(6) == 0 {
			m.Body = expr()
		}
		if rng.IntN(10) == 0 {
			m.BodyPrefixHex = fmt.Sprintf("%x", pick("abc", "Gat", "id=", "a"))
		}
		if rng.IntN(6) == 0 {
			h := fileHeader{Name: pick("X-A", "x-b")}
			if rng.IntN(4) != 0 {
				h.Regex = expr()
			}
			m.Headers = append(m.Headers, h)
		}
		if rng.IntN(8) == 0 {
			m.Method = list{pick("GET", "POST")}
		}
		if rng.IntN(10) == 0 {
			m.Port = list{pick("80", "25")}
		}
		if m.Path == "" && m.UserAgent == "" && m.Domain == nil && m.Zone == nil && m.CaseFamily == nil && m.TLSFingerprint == nil {
			m.Path = expr()
		}
		out[i] = fr
	}
	return out
}

// sample writes a random string that re matches (when it is not
// anchored away from where it lands).
func sample(rng *rand.Rand, re *syntax.Regexp, b *strings.Builder) {
	repeat := func(lo, hi int) {
		for range lo + rng.IntN(hi-lo+1) {
			sample(rng, re.Sub[0], b)
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				for range rng.IntN(4) {
					r = unicode.SimpleFold(r)
				}
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		i := 2 * rng.IntN(len(re.Rune)/2)
		lo, hi := re.Rune[i], re.Rune[i+1]
		b.WriteRune(lo + rune(rng.IntN(int(min(hi-lo, 300))+1)))
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteString(fragments[rng.IntN(len(fragments))][:1])
	case syntax.OpCapture:
		sample(rng, re.Sub[0], b)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			sample(rng, sub, b)
		}
	case syntax.OpAlternate:
		sample(rng, re.Sub[rng.IntN(len(re.Sub))], b)
	case syntax.OpQuest:
		repeat(0, 1)
	case syntax.OpStar:
		repeat(0, 2)
	case syntax.OpPlus:
		repeat(1, 3)
	case syntax.OpRepeat:
		hi := re.Max
		if hi < 0 || hi > re.Min+2 {
			hi = re.Min + 2
		}
		repeat(re.Min, hi)
	}
}

// sampleOf is a string expr matches, with random text around it at times.
func sampleOf(rng *rand.Rand, expr string) string {
	syn, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		panic(err)
	}
	var b strings.Builder
	if rng.IntN(3) == 0 {
		b.WriteString(randText(rng))
	}
	sample(rng, syn, &b)
	if rng.IntN(3) == 0 {
		b.WriteString(randText(rng))
	}
	return b.String()
}

// randRequestFor is a random request made to meet most of the conditions
// of one of the rules.
func randRequestFor(rng *rand.Rand, frs []fileRule) *Request {
	r := randRequest(rng)
	m := &frs[rng.IntN(len(frs))].Match
	one := func(l list, def string) string {
		if len(l) == 0 {
			return def
		}
		return l[rng.IntN(len(l))]
	}
	r.Protocol = event.Protocol(one(m.Protocol, string(r.Protocol)))
	r.Method = one(m.Method, r.Method)
	if p := one(m.Port, ""); p == "80" {
		r.Port = 80
	} else if p == "25" {
		r.Port = 25
	}
	r.Domain = one(m.Domain, r.Domain)
	r.Zone = one(m.Zone, r.Zone)
	r.CaseFamily = one(m.CaseFamily, r.CaseFamily)
	if len(m.TLSFingerprint) > 0 {
		r.TLSFingerprint = "t13d1516h2_8daaf6152771_e5627efa2ab1"
	}
	if m.Path != "" {
		r.Path = sampleOf(rng, m.Path)
	}
	if m.UserAgent != "" {
		r.UserAgent = sampleOf(rng, m.UserAgent)
	}
	if m.HELO != "" {
		r.HELO = sampleOf(rng, m.HELO)
	}
	if m.DomainRegex != "" {
		r.Domain = sampleOf(rng, m.DomainRegex)
	}
	if m.Body != "" || m.BodyPrefixHex != "" {
		var body []byte
		if p, err := hex.DecodeString(m.BodyPrefixHex); err == nil {
			body = p
		}
		if m.Body != "" {
			body = append(body, sampleOf(rng, m.Body)...)
		}
		r.Body = body
	}
	for _, h := range m.Headers {
		if r.Headers == nil {
			r.Headers = http.Header{}
		}
		v := randText(rng)
		if h.Regex != "" {
			v = sampleOf(rng, h.Regex)
		}
		r.Headers.(http.Header).Add(h.Name, v)
	}
	return r
}

func randRequest(rng *rand.Rand) *Request {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	r := &Request{
		Protocol:       event.Protocol(pick("", "http", "https", "smtp", "dns", "tcp", "udp")),
		Port:           uint16([]int{0, 80, 25}[rng.IntN(3)]),
		Domain:         pick("", "a.test", "b.a.test", "x.c.test", "d.test", "gate.a.test", "GATE.abc."),
		Zone:           pick("", "a.test", "c.test"),
		CaseFamily:     pick("", "x", "y"),
		TLSFingerprint: pick("", "t13d1516h2_8daaf6152771_e5627efa2ab1", "t12i000000_000000000000_000000000000"),
		Method:         pick("", "GET", "POST"),
		Path:           randText(rng),
		UserAgent:      randText(rng),
		HELO:           randText(rng),
		SNI:            pick("", "abc.test"),
	}
	if rng.IntN(2) == 0 {
		r.Body = []byte(randText(rng) + randText(rng))
	}
	if rng.IntN(2) == 0 {
		h := http.Header{}
		for range rng.IntN(3) {
			h.Add(pick("X-A", "X-B", "X-C"), randText(rng))
		}
		r.Headers = h
	}
	return r
}

// compileRules is Parse without the YAML, which takes most of the time of
// a test with many random rule sets.
func compileRules(t testing.TB, name string, frs []fileRule) *Rules {
	t.Helper()
	rs := &Rules{name: name}
	for i := range frs {
		c := &compiler{file: name, index: i + 1, name: frs[i].Name}
		rs.rules = append(rs.rules, c.rule(&frs[i]))
		if len(c.errs) > 0 {
			t.Fatal(c.errs[0])
		}
	}
	rs.buildIndex()
	return rs
}

// plainRules is rs with every condition a bare regexp.Regexp: no index,
// no literal test before it, for linear.
func plainRules(rs *Rules) *Rules {
	plain := func(m *matcher) *matcher {
		if m == nil {
			return nil
		}
		return &matcher{re: m.re}
	}
	out := &Rules{name: rs.name}
	for _, ru := range rs.rules {
		c := *ru
		c.domainRE, c.path, c.userAgent, c.body, c.helo = plain(ru.domainRE), plain(ru.path), plain(ru.userAgent), plain(ru.body), plain(ru.helo)
		c.headers = nil
		for _, h := range ru.headers {
			c.headers = append(c.headers, headerCond{name: h.name, re: plain(h.re)})
		}
		out.rules = append(out.rules, &c)
	}
	return out
}

// TestPrefilterAgreesWithLinearScan compares Classify with every rule in
// file order, by regexp alone, on random rule sets and requests.
func TestPrefilterAgreesWithLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	sets, requests, large := 200, 300, 100
	if testing.Short() || raceEnabled {
		sets, requests, large = 30, 200, 30
	}
	var filtered, hits, litHits, total int
	check := func(rs *Rules, frs []fileRule, n int) {
		for _, ix := range rs.byProto {
			if ix.pf != nil {
				filtered++
				break
			}
		}
		plain := plainRules(rs)
		for range n {
			r := randRequest(rng)
			if rng.IntN(3) != 0 {
				r = randRequestFor(rng, frs)
			}
			got, want := rs.Classify(r), linear(plain, r)
			if got.Rule != want {
				t.Fatalf("%+v (body %q): Classify gives %q, every rule in order %q", r, r.Body, got.Rule, want)
			}
			if want != "" {
				hits++
				if i := slices.IndexFunc(rs.rules, func(ru *rule) bool { return ru.name == want }); ruleLiterals(rs.rules[i]).lits != nil {
					litHits++
				}
			}
			total++
		}
	}
	for s := range sets {
		frs := randRules(rng, 1+rng.IntN(80), false)
		name := fmt.Sprintf("random-%d.yaml", s)
		if s%8 != 0 {
			check(compileRules(t, name, frs), frs, requests)
			continue
		}
		data, err := yaml.Marshal(file{Rules: frs})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := Parse(name, data)
		if err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		check(rs, frs, requests)
	}
	t.Logf("%d of %d sets with a prefilter; %d of %d requests match a rule, %d a rule with literals", filtered, sets, hits, total, litHits)
	if filtered < sets/2 || hits < total/20 || litHits < total/10 {
		t.Errorf("weak test: %d of %d sets with a prefilter, %d of %d requests match a rule", filtered, sets, hits, total)
	}
	// More unkeyed rules than the candidate set on the stack holds.
	frs := randRules(rng, 2*64*stackWords, true)
	rs := compileRules(t, "large.yaml", frs)
	if len(rs.byProto[protoSlot(event.ProtoHTTP)].pf.always) <= stackWords {
		t.Fatal("the large set fits on the stack")
	}
	check(rs, frs, large)
}

// TestPrefilterLongFields: a field longer than its scan budget makes all
// its rules candidates.
func TestPrefilterLongFields(t *testing.T) {
	var b strings.Builder
	b.WriteString(`rules:
  - {name: p, family: f, match: {path: 'gate\.php$'}}
  - {name: b, family: f, match: {body: 'cmd=\d'}}
  - {name: h, family: f, match: {headers: [{name: x-a, regex: 'bot[0-9]'}]}}
`)
	for i := range minFiltered {
		fmt.Fprintf(&b, "  - {name: f%d, family: f, match: {path: filler%d, body: filler%d, headers: [{name: x-a, regex: filler%d}]}}\n", i, i, i, i)
	}
	rs, err := Parse("long.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if rs.byProto[0].pf == nil {
		t.Fatal("no prefilter")
	}
	long := strings.Repeat("x", 64*1024)
	for _, c := range []struct {
		r    Request
		want string
	}{
		{Request{Path: long + "/GATE.php"}, ""},
		{Request{Path: long + "/gate.php"}, "p"},
		{Request{Body: []byte(long + "cmd=1")}, "b"},
		{Request{Body: []byte(long + "cmd=x")}, ""},
		{Request{Headers: http.Header{"X-A": {long, "bot7"}}}, "h"},
		{Request{Headers: http.Header{"X-A": {long + "bot7"}}}, "h"},
		{Request{Headers: http.Header{"X-A": {long + "Bot7"}}}, ""},
		{Request{Path: "/gate.php"}, "p"},
		{Request{Path: "/gate.phpx"}, ""},
		{Request{Body: []byte("cmd=1")}, "b"},
		{Request{Headers: http.Header{"X-A": {"x", "bot7"}}}, "h"},
	} {
		if got := rs.Classify(&c.r).Rule; got != c.want {
			t.Errorf("%.20q…: rule %q, want %q", c.r.Path+string(c.r.Body), got, c.want)
		}
	}
}

// TestPrefilterAllocs: the unkeyed path allocates nothing, with the
// candidate set on the stack or from the pool.
func TestPrefilterAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	for _, n := range []int{500, 64*stackWords + 500} {
		rs := benchRules(t, n, true)
		last := n - 5
		for name, r := range map[string]*Request{
			"last": {Protocol: event.ProtoHTTP, Method: "GET", Path: fmt.Sprintf("/admin/gate%d.php", last), UserAgent: fmt.Sprintf("Agent%d", last)},
			"miss": {Protocol: event.ProtoHTTP, Method: "GET", Path: "/index.html", UserAgent: "Mozilla/5.0"},
		} {
			if name == "last" {
				if got, want := rs.Classify(r).Rule, fmt.Sprintf("r%d", last); got != want {
					t.Fatalf("rules=%d: rule %q, want %q", n, got, want)
				}
			}
			limit := 0.0
			if raceEnabled {
				limit = 2
			}
			if a := testing.AllocsPerRun(100, func() { rs.Classify(r) }); a > limit {
				t.Errorf("rules=%d/%s: %v allocations", n, name, a)
			}
		}
	}
}

// FuzzRequiredLiterals: whenever an expression matches a text, the text
// holds one of the expression's required literals.
func FuzzRequiredLiterals(f *testing.F) {
	for _, s := range []string{`Agent495`, `^/(?:panel|admin)/gate495\.php`, `(?i)desk`, `(?:foo|)bar`, `x(?:foo)?yz`,
		`\x{FFFD}abc`, `[ab]cd`, `(?i)[k]ey`, `(?:abc){2,3}`} {
		f.Add(s, "xx/panel/GATE495.php "+s)
	}
	f.Add(`(?i)kelvin`, "\u212aELVIN")
	f.Add(`ab\x{FFFD}cd`, "ab\xffcd")
	f.Fuzz(func(t *testing.T, expr, text string) {
		if len(expr) > maxRegexp {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		checkLiterals(t, re, literalsOf(t, expr), text)
	})
}
