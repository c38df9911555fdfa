package enrich

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// rpslAttr is one attribute of an RPSL object, continuation lines joined.
type rpslAttr struct {
	name  string // lower case
	value string // without end-of-line comments, blanks trimmed
	line  int
}

// rpslObject is one object of an RPSL dump: its first attribute names the
// class and the key.
type rpslObject []rpslAttr

func (o rpslObject) class() string { return o[0].name }
func (o rpslObject) key() string   { return o[0].value }

// get returns the values of the attribute name, in order.
func (o rpslObject) get(name string) []string {
	var out []string
	for _, a := range o {
		if a.name == name && a.value != "" {
			out = append(out, a.value)
		}
	}
	return out
}

func (o rpslObject) first(name string) string {
	for _, a := range o {
		if a.name == name && a.value != "" {
			return a.value
		}
	}
	return ""
}

// parseRPSL reads the objects of an RPSL file, as the RIRs publish their
// databases (RIPE's split files ripe.db.inetnum, ripe.db.role, …): objects
// are separated by blank lines; an attribute is "name: value"; a line that
// starts with a blank or a + continues the attribute above; lines that
// start with % or # are comments, and # starts a comment at the end of a
// value. fn is called for each object.
func parseRPSL(r io.Reader, name string, fn func(rpslObject) error) error {
	s := newScanner(r)
	var obj rpslObject
	line := 0
	flush := func() error {
		if len(obj) == 0 {
			return nil
		}
		o := obj
		obj = nil
		return fn(o)
	}
	for s.Scan() {
		line++
		text := strings.TrimRight(s.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		switch text[0] {
		case '%', '#':
			continue
		case ' ', '\t', '+':
			if len(obj) == 0 {
				return &ParseError{File: name, Line: line, Msg: "continuation line outside an attribute", Text: text}
			}
			v := stripComment(text[1:])
			if v != "" {
				last := &obj[len(obj)-1]
				if last.value == "" {
					last.value = v
				} else {
					last.value += " " + v
				}
			}
			continue
		}
		i := strings.IndexByte(text, ':')
		if i <= 0 || !validAttrName(text[:i]) {
			return &ParseError{File: name, Line: line, Msg: `not an attribute ("name: value"), a continuation or a comment`, Text: text}
		}
		obj = append(obj, rpslAttr{name: strings.ToLower(text[:i]), value: stripComment(text[i+1:]), line: line})
	}
	if err := s.Err(); err != nil {
		return scanErr(name, line, err)
	}
	return flush()
}

func stripComment(v string) string {
	if i := strings.IndexByte(v, '#'); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

func validAttrName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '*') {
			return false
		}
	}
	return true
}

// rpslResource is an inetnum, inet6num or aut-num with the ways it names
// its abuse contact.
type rpslResource struct {
	key      string // class and key, for the source of an answer
	prefixes []netip.Prefix
	asn      uint32
	mailbox  string   // abuse-mailbox on the object itself
	abuseC   []string // abuse-c handles
	org      string   // org reference
	irt      []string // mnt-irt references
}

// rpslData is what one RPSL file contributes; the files of a dump are
// joined before references are resolved, since ripe.db.inetnum refers to
// the roles in ripe.db.role.
type rpslData struct {
	name      string
	resources []rpslResource
	mailboxes map[string]string // role, person, irt key or nic-hdl → abuse-mailbox
	orgs      map[string]rpslResource
	objects   int
}

// readRPSL reads one RPSL file and keeps the objects that lead to abuse
// contacts.
func readRPSL(r io.Reader, name string) (*rpslData, error) {
	d := &rpslData{name: name, mailboxes: map[string]string{}, orgs: map[string]rpslResource{}}
	err := parseRPSL(r, name, func(o rpslObject) error {
		d.objects++
		bad := func(msg string) error {
			return &ParseError{File: name, Line: o[0].line, Msg: msg, Text: o[0].name + ": " + o[0].value}
		}
		res := rpslResource{
			key:     o.class() + " " + o.key(),
			mailbox: firstMailbox(o.get("abuse-mailbox")),
			abuseC:  upperAll(o.get("abuse-c")),
			org:     strings.ToUpper(o.first("org")),
			irt:     upperAll(o.get("mnt-irt")),
		}
		switch o.class() {
		case "inetnum", "inet6num":
			ps, err := parseRPSLNet(o.key())
			if err != nil {
				return bad(err.Error())
			}
			if o.class() == "inetnum" && !ps[0].Addr().Is4() || o.class() == "inet6num" && ps[0].Addr().Is4() {
				return bad("the network is of the other address family")
			}
			res.prefixes = ps
			d.resources = append(d.resources, res)
		case "aut-num":
			asn, ok, err := parseASKey(o.key())
			if !ok || err != nil {
				return bad("not an AS number")
			}
			res.asn = asn
			d.resources = append(d.resources, res)
		case "organisation":
			d.orgs[strings.ToUpper(o.key())] = res
		case "role", "person", "irt":
			if res.mailbox == "" {
				return nil
			}
			if o.class() == "irt" {
				d.mailboxes[strings.ToUpper(o.key())] = res.mailbox
			}
			for _, h := range o.get("nic-hdl") {
				d.mailboxes[strings.ToUpper(h)] = res.mailbox
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// parseRPSLNet reads "192.0.2.0 - 192.0.2.255" or a CIDR prefix.
func parseRPSLNet(v string) ([]netip.Prefix, error) {
	if from, to, ok := strings.Cut(v, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(from))
		b, err2 := netip.ParseAddr(strings.TrimSpace(to))
		if err1 != nil || err2 != nil || a.Zone() != "" || b.Zone() != "" {
			return nil, fmt.Errorf("%q is not a range of addresses", v)
		}
		a, b = a.Unmap(), b.Unmap()
		if a.Is4() != b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("%q is not a range of addresses", v)
		}
		return rangePrefixes(a, b), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil || p.Addr().Zone() != "" {
		return nil, fmt.Errorf("%q is not a network", v)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return []netip.Prefix{p.Masked()}, nil
}

func firstMailbox(vs []string) string {
	for _, v := range vs {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == ';' }) {
			if validMailbox(f) {
				return f
			}
		}
	}
	return ""
}

func upperAll(vs []string) []string {
	for i, v := range vs {
		vs[i] = strings.ToUpper(v)
	}
	return vs
}

// buildRIRTable resolves the references of a dump's files into one table.
// A resource's contact is, in this order: its own abuse-mailbox, that of
// its abuse-c, that of its organisation's abuse-c (or the organisation's
// own abuse-mailbox), that of its mnt-irt. Resources without one are left
// out, so that a lookup falls back to the enclosing network.
func buildRIRTable(files []*rpslData) *abuseTable {
	mailboxes := map[string]string{}
	orgs := map[string]rpslResource{}
	for _, d := range files {
		for k, v := range d.mailboxes {
			if _, ok := mailboxes[k]; !ok {
				mailboxes[k] = v
			}
		}
		for k, v := range d.orgs {
			if _, ok := orgs[k]; !ok {
				orgs[k] = v
			}
		}
	}
	viaHandles := func(hs []string) string {
		for _, h := range hs {
			if m := mailboxes[h]; m != "" {
				return m
			}
		}
		return ""
	}
	t := newAbuseTable()
	for _, d := range files {
		for _, r := range d.resources {
			m := r.mailbox
			if m == "" {
				m = viaHandles(r.abuseC)
			}
			if m == "" && r.org != "" {
				if o, ok := orgs[r.org]; ok {
					if m = viaHandles(o.abuseC); m == "" {
						m = o.mailbox
					}
				}
			}
			if m == "" {
				m = viaHandles(r.irt)
			}
			if m == "" {
				continue
			}
			e := abuseEntry{contact: m, source: d.name + ": " + r.key}
			if r.prefixes == nil {
				if _, ok := t.asns[r.asn]; !ok {
					t.asns[r.asn] = e
				}
				continue
			}
			for _, p := range r.prefixes {
				t.nets.add(p, e)
			}
		}
	}
	return t
}
