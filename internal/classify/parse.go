package classify

import (
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/strictyaml"
)

// Limits of a rules file.
const (
	// MaxResponseBody is the largest static response body.
	MaxResponseBody = 4096
	// MaxRules is the most rules one file may hold.
	MaxRules      = 100_000
	maxRegexp     = 2048 // bytes of one regular expression
	maxBodyPrefix = 256  // bytes of body_prefix_hex, decoded
	maxNameLen    = 64
	maxErrors     = 20 // reported per file
)

// HTTP statuses and SMTP reply codes a response may use: no redirect, no
// 1xx, nothing a bot could follow.
var (
	httpStatuses = []int{200, 204, 400, 403, 404, 410, 500, 502, 503}
	smtpCodes    = []int{250, 421, 450, 451, 452, 550, 552, 553, 554}
	contentTypes = []string{"text/plain", "text/html", "text/xml", "application/json", "application/xml", "application/octet-stream", "image/gif", "image/png", "image/jpeg"}
)

// file is the YAML layout of a rules file.
type file struct {
	Rules []fileRule `yaml:"rules"`
}

type fileRule struct {
	Name     string        `yaml:"name"`
	Family   string        `yaml:"family"`
	Tag      string        `yaml:"tag"`
	Match    fileMatch     `yaml:"match"`
	BotID    *fileBotID    `yaml:"bot_id"`
	Response *fileResponse `yaml:"response"`
}

type fileMatch struct {
	Protocol       list         `yaml:"protocol"`
	Transport      list         `yaml:"transport"`
	Port           list         `yaml:"port"`
	Domain         list         `yaml:"domain"`
	DomainRegex    string       `yaml:"domain_regex"`
	Zone           list         `yaml:"zone"`
	Case           list         `yaml:"case"`
	CaseFamily     list         `yaml:"case_family"`
	Method         list         `yaml:"method"`
	Path           string       `yaml:"path"`
	UserAgent      string       `yaml:"user_agent"`
	Headers        []fileHeader `yaml:"headers"`
	BodyPrefixHex  string       `yaml:"body_prefix_hex"`
	Body           string       `yaml:"body"`
	TLSFingerprint list         `yaml:"tls_fingerprint"`
	HELO           string       `yaml:"helo"`
}

type fileHeader struct {
	Name  string `yaml:"name"`
	Regex string `yaml:"regex"`
}

type fileBotID struct {
	From   string `yaml:"from"`
	Header string `yaml:"header"`
	Param  string `yaml:"param"`
	Regex  string `yaml:"regex"`
}

type fileResponse struct {
	Status      int     `yaml:"status"`
	ContentType string  `yaml:"content_type"`
	Body        *string `yaml:"body"`
	BodyHex     string  `yaml:"body_hex"`
}

// list is a YAML scalar or sequence of scalars.
type list []string

func (l *list) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = list{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(list, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a list of values, not nested lists or mappings", c.Line)
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: a value or a list of values", n.Line)
}

// Load reads and compiles the rules file at path.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	return Parse(path, data)
}

// Parse compiles rules text; name is the file name used in errors. Errors
// name the file, line and column, the rule (index and name) and the field:
//
//	rules.yaml:14:13: rule 2 "waledac-http": match.path: missing closing ): `^/(a`
//
// An empty document is an empty rule set.
func Parse(name string, data []byte) (*Rules, error) {
	var f file
	doc, err := strictyaml.Decode(name, data, &f, strictyaml.Options{Kind: "rules file", Item: ruleName})
	if err != nil {
		return nil, err
	}
	if len(f.Rules) > MaxRules {
		return nil, fmt.Errorf("%s: %d rules; at most %d", name, len(f.Rules), MaxRules)
	}
	var ruleNodes []*yaml.Node
	if n := child(doc, "rules"); n != nil && n.Kind == yaml.SequenceNode {
		ruleNodes = n.Content
	}
	rs := &Rules{name: name}
	var errs []error
	names := map[string]int{}
	for i := range f.Rules {
		var node *yaml.Node
		if i < len(ruleNodes) {
			node = ruleNodes[i]
		}
		c := &compiler{file: name, index: i + 1, name: f.Rules[i].Name, node: node}
		ru := c.rule(&f.Rules[i])
		if prev, dup := names[ru.name]; dup && ru.name != "" {
			c.errorf([]string{"name"}, "%q is also the name of rule %d", ru.name, prev)
		}
		names[ru.name] = i + 1
		errs = append(errs, c.errs...)
		if len(errs) >= maxErrors {
			errs = append(errs[:maxErrors], fmt.Errorf("%s: more errors not shown", name))
			break
		}
		rs.rules = append(rs.rules, ru)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	rs.buildIndex()
	return rs, nil
}

// compiler collects the errors of one rule.
type compiler struct {
	file  string
	index int
	name  string
	node  *yaml.Node
	errs  []error
}

// errorf records an error at the field path (e.g. "match", "path").
func (c *compiler) errorf(path []string, format string, args ...any) {
	n := c.node
	field := ""
	for _, k := range path {
		var next *yaml.Node
		if i, err := strconv.Atoi(k); err == nil {
			field += "[" + k + "]"
			if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
				next = n.Content[i]
			}
		} else {
			if field != "" {
				field += "."
			}
			field += k
			next = child(n, k)
		}
		if next != nil {
			n = next
		}
	}
	where := c.file
	if n != nil {
		where = fmt.Sprintf("%s:%d:%d", c.file, n.Line, n.Column)
	}
	rule := fmt.Sprintf("rule %d", c.index)
	if c.name != "" {
		rule += fmt.Sprintf(" %q", c.name)
	}
	if field != "" {
		field += ": "
	}
	c.errs = append(c.errs, fmt.Errorf("%s: %s: %s%s", where, rule, field, fmt.Sprintf(format, args...)))
}

// child returns the value node of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// validName reports whether s is a rule's name or tag: letters of either
// case, digits, '-', '_' and '.'.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (c *compiler) rule(fr *fileRule) *rule {
	ru := &rule{name: fr.Name, family: fr.Family, tag: fr.Tag}
	if !validName(fr.Name) {
		c.errorf([]string{"name"}, "%q: give a name of 1 to %d letters, digits, '-', '_' or '.'", fr.Name, maxNameLen)
	}
	if !event.ValidFamily(fr.Family) {
		c.errorf([]string{"family"}, "%q: give a family of %s", fr.Family, event.FamilyRule)
	}
	if fr.Tag != "" && !validName(fr.Tag) {
		c.errorf([]string{"tag"}, "%q: a tag is 1 to %d letters, digits, '-', '_' or '.'", fr.Tag, maxNameLen)
	}
	m := &fr.Match
	at := func(field string) []string { return []string{"match", field} }
	conditions := 0
	for _, p := range m.Protocol {
		if !event.Protocol(p).Valid() {
			c.errorf(at("protocol"), "%q is not one of dns, http, https, smtp, tcp, udp", p)
		}
		if !contains(ru.protocols, event.Protocol(p)) {
			ru.protocols = append(ru.protocols, event.Protocol(p))
		}
	}
	for _, t := range m.Transport {
		if t != string(event.TransportTCP) && t != string(event.TransportUDP) {
			c.errorf(at("transport"), "%q is not tcp or udp", t)
		}
		ru.transports = append(ru.transports, event.Transport(t))
	}
	for _, p := range m.Port {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			c.errorf(at("port"), "%q is not a port from 1 to 65535", p)
			continue
		}
		ru.ports = append(ru.ports, uint16(n))
	}
	for _, x := range m.Method {
		if x == "" || strings.ContainsAny(x, " \t\r\n") || len(x) > 32 {
			c.errorf(at("method"), "%q is not an HTTP method", x)
		}
		ru.methods = append(ru.methods, x)
	}
	for _, d := range m.Domain {
		d = strings.TrimSuffix(strings.ToLower(d), ".")
		if !isDomain(d) {
			c.errorf(at("domain"), "%q is not a domain name", d)
		}
		ru.domains = append(ru.domains, d)
	}
	ru.zones = c.names(at("zone"), m.Zone, true)
	ru.cases = c.names(at("case"), m.Case, false)
	ru.families = c.names(at("case_family"), m.CaseFamily, true)
	for _, f := range ru.families {
		if !event.ValidFamily(f) {
			c.errorf(at("case_family"), "%q: give a family of %s", f, event.FamilyRule)
		}
	}
	ru.domainRE = c.regexp(at("domain_regex"), m.DomainRegex)
	ru.path = c.regexp(at("path"), m.Path)
	ru.userAgent = c.regexp(at("user_agent"), m.UserAgent)
	ru.body = c.regexp(at("body"), m.Body)
	ru.helo = c.regexp(at("helo"), m.HELO)
	for i, h := range m.Headers {
		path := []string{"match", "headers", strconv.Itoa(i)}
		if h.Name == "" || strings.ContainsAny(h.Name, " \t\r\n:") {
			c.errorf(path, "header %d: %q is not a header name", i+1, h.Name)
		}
		ru.headers = append(ru.headers, headerCond{name: textproto.CanonicalMIMEHeaderKey(h.Name), re: c.regexp([]string{"match", "headers", strconv.Itoa(i), "regex"}, h.Regex)})
	}
	if m.BodyPrefixHex != "" {
		b, err := hex.DecodeString(strings.ReplaceAll(m.BodyPrefixHex, " ", ""))
		switch {
		case err != nil:
			c.errorf(at("body_prefix_hex"), "%q is not hex: %v", m.BodyPrefixHex, err)
		case len(b) > maxBodyPrefix:
			c.errorf(at("body_prefix_hex"), "%d bytes; at most %d", len(b), maxBodyPrefix)
		}
		ru.bodyPrefix = b
	}
	for _, fp := range m.TLSFingerprint {
		if !validJA4(fp) {
			c.errorf(at("tls_fingerprint"), "%q is not a JA4 such as t13d1516h2_8daaf6152771_e5627efa2ab1 or a prefix of one ending in '*'", fp)
		}
		ru.tls = append(ru.tls, fp)
	}
	for _, set := range []bool{ru.protocols != nil, ru.transports != nil, ru.ports != nil, ru.methods != nil, ru.domains != nil,
		ru.zones != nil, ru.cases != nil, ru.families != nil, ru.domainRE != nil, ru.path != nil, ru.userAgent != nil,
		ru.body != nil, ru.helo != nil, ru.headers != nil, ru.bodyPrefix != nil, ru.tls != nil} {
		if set {
			conditions++
		}
	}
	if conditions == 0 {
		c.errorf([]string{"match"}, "no condition: a rule that matches everything would hide every rule after it and the case's family")
	}
	if fr.BotID != nil {
		ru.botID = c.botID(fr.BotID)
	}
	if fr.Response != nil {
		ru.response = c.response(fr.Response, ru.protocols)
	}
	return ru
}

func (c *compiler) names(path []string, vs list, lower bool) []string {
	var out []string
	for _, v := range vs {
		if lower {
			v = strings.TrimSuffix(strings.ToLower(v), ".")
		}
		if v == "" || len(v) > 253 || strings.ContainsAny(v, " \t\r\n") {
			c.errorf(path, "%q is not a name", v)
		}
		out = append(out, v)
	}
	return out
}

func (c *compiler) regexp(path []string, expr string) *matcher {
	if expr == "" {
		return nil
	}
	if len(expr) > maxRegexp {
		c.errorf(path, "regular expression of %d bytes; at most %d", len(expr), maxRegexp)
		return nil
	}
	m, err := compileMatcher(expr)
	if err != nil {
		c.errorf(path, "%v", err)
		return nil
	}
	return m
}

func (c *compiler) botID(fb *fileBotID) botIDRule {
	at := func(field string) []string { return []string{"bot_id", field} }
	b := botIDRule{from: fb.From, param: fb.Param}
	switch fb.From {
	case "path", "query", "body", "helo", "user_agent":
		if fb.Header != "" {
			c.errorf(at("header"), "only with from: header")
		}
	case "header":
		if fb.Header == "" || strings.ContainsAny(fb.Header, " \t\r\n:") {
			c.errorf(at("header"), "%q: give the header to read", fb.Header)
		}
		b.header = textproto.CanonicalMIMEHeaderKey(fb.Header)
	default:
		c.errorf(at("from"), "%q is not one of path, query, body, header, helo, user_agent", fb.From)
	}
	switch {
	case (fb.Param == "") == (fb.Regex == ""):
		c.errorf([]string{"bot_id"}, "give exactly one of param and regex")
	case fb.Param != "":
		if strings.ContainsAny(fb.Param, "&= \t\r\n") {
			c.errorf(at("param"), "%q is not a parameter name", fb.Param)
		}
	default:
		re, err := regexp.Compile(fb.Regex)
		if err != nil {
			c.errorf(at("regex"), "%s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			break
		}
		b.re, b.group = re, 1
		if i := re.SubexpIndex("id"); i > 0 {
			b.group = i
		} else if re.NumSubexp() < 1 {
			c.errorf(at("regex"), "%q has no capture group; the bot ID is group \"id\" or else group 1", fb.Regex)
		}
	}
	return b
}

func (c *compiler) response(fr *fileResponse, protos []event.Protocol) *Response {
	at := func(field string) []string { return []string{"response", field} }
	web := contains(protos, event.ProtoHTTP) || contains(protos, event.ProtoHTTPS)
	mail := contains(protos, event.ProtoSMTP)
	other := len(protos) == 0
	for _, p := range protos {
		if p != event.ProtoHTTP && p != event.ProtoHTTPS && p != event.ProtoSMTP {
			other = true
		}
	}
	if other || web == mail {
		c.errorf([]string{"response"}, "a response needs match.protocol to be http and/or https, or smtp alone; %v listeners send no rule response", protos)
		return nil
	}
	r := &Response{Status: fr.Status, ContentType: fr.ContentType}
	if fr.Body != nil && fr.BodyHex != "" {
		c.errorf(at("body_hex"), "give body or body_hex, not both")
	}
	if fr.Body != nil {
		r.Body = *fr.Body
	} else if fr.BodyHex != "" {
		b, err := hex.DecodeString(strings.ReplaceAll(fr.BodyHex, " ", ""))
		if err != nil {
			c.errorf(at("body_hex"), "not hex: %v", err)
		}
		r.Body = string(b)
	}
	if len(r.Body) > MaxResponseBody {
		c.errorf(at("body"), "%d bytes; at most %d", len(r.Body), MaxResponseBody)
	}
	if web {
		if !slices.Contains(httpStatuses, r.Status) {
			c.errorf(at("status"), "%d is not one of %v: a sinkhole never redirects a bot", r.Status, httpStatuses)
		}
		if r.ContentType != "" {
			mt, params, err := mime.ParseMediaType(r.ContentType)
			if err != nil || !slices.Contains(contentTypes, mt) {
				c.errorf(at("content_type"), "%q is not one of %v", r.ContentType, contentTypes)
			}
			for k, v := range params {
				if k != "charset" || !slices.Contains([]string{"utf-8", "us-ascii", "iso-8859-1"}, strings.ToLower(v)) {
					c.errorf(at("content_type"), "parameter %s=%s: only charset utf-8, us-ascii or iso-8859-1", k, v)
				}
			}
		}
		return r
	}
	if !slices.Contains(smtpCodes, r.Status) {
		c.errorf(at("status"), "%d is not one of the SMTP reply codes %v", r.Status, smtpCodes)
	}
	if r.ContentType != "" {
		c.errorf(at("content_type"), "only for http and https")
	}
	if len(r.Body) > 200 {
		c.errorf(at("body"), "an SMTP reply text of %d bytes; at most 200", len(r.Body))
	}
	for i := 0; i < len(r.Body); i++ {
		if r.Body[i] < ' ' || r.Body[i] > '~' {
			c.errorf(at("body"), "an SMTP reply text is one line of printable ASCII")
			break
		}
	}
	return r
}

func validJA4(s string) bool {
	if s == "" || len(s) > 36 {
		return false
	}
	wild := s[len(s)-1] == '*'
	if wild {
		s = s[:len(s)-1]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return wild || len(s) == 36
}

// isDomain reports whether s is dot-separated labels of letters, digits,
// '-' and '_', each 1–63 bytes.
func isDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// compileMatcher compiles expr (RE2 syntax) and finds the cheapest exact
// test for it: see matcher.
func compileMatcher(expr string) (*matcher, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	m := &matcher{re: re}
	syn, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return m, nil
	}
	syn = syn.Simplify()
	m.required = requiredLiterals(syn)
	if lit, kind, ok := literalForm(syn); ok {
		m.kind, m.literal = kind, lit
	} else {
		m.literal = longest(required(syn))
	}
	m.lit = []byte(m.literal)
	return m, nil
}

// isLiteral reports whether re matches exactly its runes. Not with (?i),
// nor with U+FFFD, which regexp also matches on every invalid UTF-8 byte.
func isLiteral(re *syntax.Regexp) bool {
	return re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase == 0 && !slices.Contains(re.Rune, utf8.RuneError)
}

// literalForm recognises lit, ^lit, lit$ and ^lit$.
func literalForm(re *syntax.Regexp) (string, matchKind, bool) {
	if isLiteral(re) {
		return string(re.Rune), kindContains, true
	}
	if re.Op != syntax.OpConcat {
		return "", 0, false
	}
	s := re.Sub
	begin := len(s) > 0 && s[0].Op == syntax.OpBeginText
	if begin {
		s = s[1:]
	}
	end := len(s) > 0 && s[len(s)-1].Op == syntax.OpEndText
	if end {
		s = s[:len(s)-1]
	}
	if len(s) != 1 || !isLiteral(s[0]) {
		return "", 0, false
	}
	lit := string(s[0].Rune)
	switch {
	case begin && end:
		return lit, kindExact, true
	case begin:
		return lit, kindPrefix, true
	case end:
		return lit, kindSuffix, true
	}
	return lit, kindContains, true
}

// required returns literals that every match of re contains.
func required(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if isLiteral(re) {
			return []string{string(re.Rune)}
		}
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		var out []string
		for _, s := range re.Sub {
			out = append(out, required(s)...)
		}
		return out
	}
	return nil
}

func longest(ss []string) string {
	best := ""
	for _, s := range ss {
		if len(s) > len(best) {
			best = s
		}
	}
	return best
}

// buildIndex files every rule under its protocols by its most selective
// condition.
func (rs *Rules) buildIndex() {
	lits := make([]ruleLits, len(rs.rules))
	for i, ru := range rs.rules {
		lits[i] = ruleLiterals(ru)
		slots := make([]int, 0, len(protocols)+1)
		if ru.protocols == nil {
			for s := range rs.byProto {
				slots = append(slots, s)
			}
		} else {
			for _, p := range ru.protocols {
				slots = append(slots, protoSlot(p))
			}
		}
		for _, s := range slots {
			ix := &rs.byProto[s]
			add := func(m *map[string][]int32, keys []string) {
				if *m == nil {
					*m = map[string][]int32{}
				}
				for _, k := range keys {
					if l := (*m)[k]; len(l) == 0 || l[len(l)-1] != int32(i) {
						(*m)[k] = append(l, int32(i))
					}
				}
			}
			switch {
			case ru.domains != nil:
				add(&ix.domain, ru.domains)
			case ru.zones != nil:
				add(&ix.zone, ru.zones)
			case ru.cases != nil:
				add(&ix.kase, ru.cases)
			case ru.families != nil:
				add(&ix.family, ru.families)
			case ru.tls != nil && !slices.ContainsFunc(ru.tls, func(s string) bool { return strings.HasSuffix(s, "*") }):
				add(&ix.tls, ru.tls)
			default:
				ix.unkeyed = append(ix.unkeyed, int32(i))
			}
		}
	}
	words := 0
	for s := range rs.byProto {
		ix := &rs.byProto[s]
		if ix.pf = newPrefilter(ix.unkeyed, lits); ix.pf != nil {
			words = max(words, len(ix.pf.always))
		}
	}
	rs.scratch.New = func() any {
		set := make([]uint64, words)
		return &set
	}
}

// ruleName names the rules in the key checker's errors as the
// compiler's errors name them: rule 2 "waledac".
func ruleName(path string, i int, n *yaml.Node) string {
	if path != "rules" {
		return ""
	}
	s := fmt.Sprintf("rule %d", i+1)
	if nm := child(n, "name"); nm != nil && nm.Kind == yaml.ScalarNode {
		s += fmt.Sprintf(" %q", nm.Value)
	}
	return s
}
