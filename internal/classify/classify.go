// Package classify names the malware family of a sinkhole observation from
// a rules file: which rule matches a bot's DNS query, HTTP request, TLS
// handshake or SMTP session, which bot it is (a family-specific bot ID that
// tells hosts behind one NAT address apart), and what harmless, static
// response the listener may send back.
//
// Rules are tried in file order and the first that matches wins. A request
// that no rule matches gets the family that the seized domain's case names
// (Request.CaseFamily), else "unknown".
//
// Classify is safe for concurrent use, takes no lock and does not allocate
// unless a rule extracts a bot ID from the body or with a regular
// expression. A Holder keeps the current Rules and swaps in a new file on
// Reload (SIGHUP) or when the file changes; requests in flight finish with
// the rules they started with, so a reload drops no connection.
//
// See README.md for the file format.
package classify

import (
	"bytes"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"

	"github.com/takedown-project/takedown/internal/event"
)

// Unknown is the family of a request that no rule and no case names.
const Unknown = "unknown"

// MaxBotIDLen bounds a bot ID: longer values are cut to this many bytes.
const MaxBotIDLen = 128

// HeaderSource gives the values of a request header by name. http.Header
// and textproto.MIMEHeader implement it; rule header names are in
// canonical MIME form (Content-Type), so their lookup does not allocate.
type HeaderSource interface {
	Values(name string) []string
}

// Request is what a listener knows of one observation, independent of
// net/http. The zero value of a field means "not known"; a condition on an
// unknown field does not match.
type Request struct {
	Protocol  event.Protocol  // dns, http, https, smtp, tcp, udp
	Transport event.Transport // tcp or udp
	Port      uint16          // destination port on the sinkhole

	// Domain is the name asked for: the DNS qname, HTTP Host (without
	// port), TLS SNI, or SMTP recipient domain. Lower case, no trailing
	// dot, as in event.Event.
	Domain string
	// Zone is the seized zone Domain falls under, Case the takedown case
	// that seized it, CaseFamily the malware family that case names (the
	// fallback family).
	Zone, Case, CaseFamily string

	Method    string // HTTP method as sent, e.g. POST
	Path      string // HTTP request target: path and query
	UserAgent string
	// Headers of the HTTP request or SMTP message; nil for none.
	Headers HeaderSource
	// Body is the start of the HTTP body, SMTP DATA, or raw TCP/UDP
	// payload, as much as the listener keeps.
	Body []byte

	// TLSFingerprint is the JA4 of the TLS client, SNI the TLS server name.
	TLSFingerprint, SNI string
	// HELO is the SMTP HELO/EHLO argument.
	HELO string
}

// Result is the classification of one request.
type Result struct {
	Family string
	// Tag is the rule's sub-classification (variant, channel).
	Tag string
	// BotID is the extracted bot identifier, empty when the rule has no
	// extractor or it found nothing. Printable ASCII, at most MaxBotIDLen
	// bytes, hex when the bot sent other bytes.
	BotID string
	// Rule is the name of the rule that matched; empty for the fallback.
	Rule string
	// Response is the rule's reviewed, static response; nil means the
	// listener's own default. It is shared: do not modify it.
	Response *Response
}

// Response is a reviewed static answer: never built from request data.
// Its only fields are those a listener needs to send it; Parse accepts
// only a status from a short list, a content type from a short list and a
// body of at most MaxResponseBody bytes.
type Response struct {
	// Status is the HTTP status code, or for SMTP the reply code sent
	// after DATA.
	Status int
	// ContentType is the HTTP Content-Type; empty for SMTP.
	ContentType string
	// Body is the HTTP body, or the SMTP reply text; may be empty.
	Body string
}

// Rules is a compiled, immutable rule set.
type Rules struct {
	name  string // file name, for messages
	rules []*rule
	// byProto indexes the rules by the request's protocol; the last entry
	// is for protocols no rule names.
	byProto [len(protocols) + 1]index
	// scratch holds candidate sets for protocols with more unkeyed rules
	// than fit on the stack (see firstUnkeyed).
	scratch sync.Pool
}

var protocols = [...]event.Protocol{event.ProtoDNS, event.ProtoHTTP, event.ProtoHTTPS, event.ProtoSMTP, event.ProtoTCP, event.ProtoUDP}

func protoSlot(p event.Protocol) int {
	for i, q := range protocols {
		if p == q {
			return i
		}
	}
	return len(protocols)
}

// index lists, for one protocol, the rules that may match, by the one
// condition that selects each rule best. Every list is in file order.
type index struct {
	domain  map[string][]int32 // by domain suffix
	zone    map[string][]int32
	kase    map[string][]int32
	family  map[string][]int32 // by case family
	tls     map[string][]int32 // by exact JA4
	unkeyed []int32
	pf      *prefilter // of unkeyed; nil when none of them has literals
}

// Len returns the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

// Name returns the file name the rules came from.
func (rs *Rules) Name() string { return rs.name }

// RuleNames returns the rule names in file order.
func (rs *Rules) RuleNames() []string {
	out := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = r.name
	}
	return out
}

// Classify returns the family of r by the first rule, in file order, that
// matches it; without one, r.CaseFamily or Unknown. A nil *Rules gives the
// fallback.
func (rs *Rules) Classify(r *Request) Result {
	if rs == nil {
		return fallback(r)
	}
	ix := &rs.byProto[protoSlot(r.Protocol)]
	// Keyed lists first: they are short and the likely match, and the
	// best index found so far cuts the scan of the unkeyed rules short.
	best := int32(len(rs.rules))
	if len(ix.domain) > 0 {
		d := r.Domain
		if d == "" {
			d = r.SNI
		}
		d = strings.TrimSuffix(d, ".")
		for d != "" {
			if l, ok := ix.domain[d]; ok {
				best = rs.first(l, r, best)
			}
			i := strings.IndexByte(d, '.')
			if i < 0 {
				break
			}
			d = d[i+1:]
		}
	}
	best = rs.lookup(ix.zone, r.Zone, r, best)
	best = rs.lookup(ix.kase, r.Case, r, best)
	best = rs.lookup(ix.family, r.CaseFamily, r, best)
	best = rs.lookup(ix.tls, r.TLSFingerprint, r, best)
	best = rs.firstUnkeyed(ix, r, best)
	if int(best) == len(rs.rules) {
		return fallback(r)
	}
	ru := rs.rules[best]
	return Result{Family: ru.family, Tag: ru.tag, Rule: ru.name, BotID: ru.botID.extract(r), Response: ru.response}
}

func fallback(r *Request) Result {
	if r.CaseFamily != "" {
		return Result{Family: r.CaseFamily}
	}
	return Result{Family: Unknown}
}

func (rs *Rules) lookup(m map[string][]int32, key string, r *Request, best int32) int32 {
	if len(m) == 0 || key == "" {
		return best
	}
	if l, ok := m[key]; ok {
		return rs.first(l, r, best)
	}
	return best
}

// first returns the index of the first rule of list that matches r, if it
// comes before best; else best.
func (rs *Rules) first(list []int32, r *Request, best int32) int32 {
	for _, i := range list {
		if i >= best {
			break
		}
		if rs.rules[i].match(r) {
			return i
		}
	}
	return best
}

// rule is a compiled rule. Every condition that is set must hold; a list
// holds when any of its entries does.
type rule struct {
	name, family, tag string

	protocols  []event.Protocol // nil: any
	transports []event.Transport
	ports      []uint16
	methods    []string
	domains    []string // suffixes
	domainRE   *matcher
	zones      []string
	cases      []string
	families   []string
	path       *matcher
	userAgent  *matcher
	headers    []headerCond
	bodyPrefix []byte
	body       *matcher
	tls        []string // exact, or prefix when ending in '*'
	helo       *matcher

	botID    botIDRule
	response *Response
}

type headerCond struct {
	name string // canonical
	re   *matcher
}

// match tests every condition but the protocol, which the index has
// already checked: a rule is filed only under its protocols.
func (ru *rule) match(r *Request) bool {
	if ru.transports != nil && !contains(ru.transports, r.Transport) ||
		ru.ports != nil && !contains(ru.ports, r.Port) ||
		ru.methods != nil && !contains(ru.methods, r.Method) ||
		ru.zones != nil && !contains(ru.zones, r.Zone) ||
		ru.cases != nil && !contains(ru.cases, r.Case) ||
		ru.families != nil && !contains(ru.families, r.CaseFamily) {
		return false
	}
	if ru.domains != nil || ru.domainRE != nil {
		d := r.Domain
		if d == "" {
			d = r.SNI
		}
		d = strings.TrimSuffix(d, ".")
		if ru.domains != nil && !matchSuffix(ru.domains, d) || ru.domainRE != nil && !ru.domainRE.matchString(d) {
			return false
		}
	}
	if ru.tls != nil && !matchTLS(ru.tls, r.TLSFingerprint) ||
		ru.bodyPrefix != nil && !bytes.HasPrefix(r.Body, ru.bodyPrefix) ||
		ru.helo != nil && !ru.helo.matchString(r.HELO) ||
		ru.userAgent != nil && !ru.userAgent.matchString(r.UserAgent) ||
		ru.path != nil && !ru.path.matchString(r.Path) {
		return false
	}
	for _, h := range ru.headers {
		if r.Headers == nil {
			return false
		}
		vs := r.Headers.Values(h.name)
		if len(vs) == 0 {
			return false
		}
		if h.re != nil {
			ok := false
			for _, v := range vs {
				if h.re.matchString(v) {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
	}
	return ru.body == nil || ru.body.matchBytes(r.Body)
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// matchSuffix reports whether d is one of the domains or below one.
func matchSuffix(suffixes []string, d string) bool {
	for _, s := range suffixes {
		if strings.HasSuffix(d, s) && (len(d) == len(s) || d[len(d)-len(s)-1] == '.') {
			return true
		}
	}
	return false
}

func matchTLS(list []string, fp string) bool {
	if fp == "" {
		return false
	}
	for _, x := range list {
		if x == fp || x[len(x)-1] == '*' && strings.HasPrefix(fp, x[:len(x)-1]) {
			return true
		}
	}
	return false
}

// matcher is a compiled regular expression with a cheap test before it:
// an exact, prefix or suffix comparison when the expression is only a
// literal, else a literal that every match must contain.
type matcher struct {
	re      *regexp.Regexp
	kind    matchKind
	literal string
	lit     []byte // literal, for bodies
	// required are literals, in ASCII lower case, one of which every match
	// contains in some case, for the prefilter; nil when there are none.
	required []string
}

type matchKind uint8

const (
	kindRegexp   matchKind = iota // run re, after checking literal if set
	kindExact                     // s == literal
	kindPrefix                    // strings.HasPrefix(s, literal)
	kindSuffix                    // strings.HasSuffix(s, literal)
	kindContains                  // strings.Contains(s, literal)
)

func (m *matcher) matchString(s string) bool {
	switch m.kind {
	case kindExact:
		return s == m.literal
	case kindPrefix:
		return strings.HasPrefix(s, m.literal)
	case kindSuffix:
		return strings.HasSuffix(s, m.literal)
	case kindContains:
		return strings.Contains(s, m.literal)
	}
	if m.literal != "" && !strings.Contains(s, m.literal) {
		return false
	}
	return m.re.MatchString(s)
}

func (m *matcher) matchBytes(b []byte) bool {
	switch m.kind {
	case kindExact:
		return string(b) == m.literal
	case kindPrefix:
		return len(b) >= len(m.literal) && string(b[:len(m.literal)]) == m.literal
	case kindSuffix:
		return len(b) >= len(m.literal) && string(b[len(b)-len(m.literal):]) == m.literal
	case kindContains:
		return bytes.Contains(b, m.lit)
	}
	if m.literal != "" && !bytes.Contains(b, m.lit) {
		return false
	}
	return m.re.Match(b)
}

// botIDRule extracts a bot ID from one place of the request.
type botIDRule struct {
	from   string // "", path, query, body, header, helo, user_agent
	header string // canonical header name, for from: header
	param  string // form or query parameter name
	re     *regexp.Regexp
	group  int // capture group of re
}

func (b *botIDRule) extract(r *Request) string {
	switch b.from {
	case "":
		return ""
	case "body":
		if b.param != "" {
			return cleanID(formValueBytes(r.Body, b.param))
		}
		m := b.re.FindSubmatchIndex(r.Body)
		if m == nil || m[2*b.group] < 0 {
			return ""
		}
		return cleanIDBytes(r.Body[m[2*b.group]:m[2*b.group+1]])
	}
	var s string
	switch b.from {
	case "path":
		s = r.Path
	case "query":
		s = r.Path
		if i := strings.IndexByte(s, '?'); i >= 0 {
			s = s[i+1:]
		} else {
			s = ""
		}
	case "header":
		if r.Headers != nil {
			if vs := r.Headers.Values(b.header); len(vs) > 0 {
				s = vs[0]
			}
		}
	case "helo":
		s = r.HELO
	case "user_agent":
		s = r.UserAgent
	}
	if b.param != "" {
		return cleanID(formValue(s, b.param))
	}
	m := b.re.FindStringSubmatchIndex(s)
	if m == nil || m[2*b.group] < 0 {
		return ""
	}
	return cleanID(s[m[2*b.group]:m[2*b.group+1]])
}

// formValue returns the raw (not unescaped) value of parameter name in an
// application/x-www-form-urlencoded string such as "a=1&b=2".
func formValue(s, name string) string {
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			return kv[len(name)+1:]
		}
	}
	return ""
}

// formValueBytes is formValue on a body; the result is a new string.
func formValueBytes(b []byte, name string) string {
	for len(b) > 0 {
		var kv []byte
		kv, b, _ = bytes.Cut(b, []byte{'&'})
		if len(kv) > len(name) && kv[len(name)] == '=' && string(kv[:len(name)]) == name {
			v := kv[len(name)+1:]
			if len(v) > MaxBotIDLen {
				v = v[:MaxBotIDLen]
			}
			return string(v)
		}
	}
	return ""
}

// cleanID bounds a bot ID and hex-encodes it when it holds anything but
// printable ASCII, so that it is safe in CSV, logs and labels of reports.
func cleanID(s string) string {
	if len(s) > MaxBotIDLen {
		s = s[:MaxBotIDLen]
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return hexID([]byte(s))
		}
	}
	return s
}

func cleanIDBytes(b []byte) string {
	if len(b) > MaxBotIDLen {
		b = b[:MaxBotIDLen]
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return hexID(b)
		}
	}
	return string(b)
}

func hexID(b []byte) string {
	if len(b) > MaxBotIDLen/2 {
		b = b[:MaxBotIDLen/2]
	}
	return hex.EncodeToString(b)
}
