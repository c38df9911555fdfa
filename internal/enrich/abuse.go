package enrich

import (
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"strings"
)

// abuseEntry is one abuse contact with where it came from.
type abuseEntry struct {
	contact string
	source  string // "file:line" or "file: object key", for Abuse's answer
}

// abuseTable maps networks and AS numbers to abuse contacts.
type abuseTable struct {
	nets *prefixTable[abuseEntry]
	asns map[uint32]abuseEntry
}

func newAbuseTable() *abuseTable {
	return &abuseTable{nets: newPrefixTable[abuseEntry](), asns: map[uint32]abuseEntry{}}
}

func (t *abuseTable) len() int { return t.nets.len() + len(t.asns) }

// parseAbuseFile reads the operator's abuse-contact file: per line a
// network or AS number and an e-mail address, separated by blanks:
//
//	# comment
//	203.0.113.0/24   abuse@example.net
//	2001:db8::/32    abuse@example.net
//	192.0.2.7        soc@example.org     # a single address is a /32 or /128
//	AS64500          noc@example.org
//
// A network must have no host bits set; each network and AS number may
// appear once.
func parseAbuseFile(r io.Reader, name string) (*abuseTable, error) {
	t := newAbuseTable()
	seen := map[string]int{} // key → line
	s := newScanner(r)
	line := 0
	for s.Scan() {
		line++
		text := strings.TrimRight(s.Text(), "\r")
		content := text
		if i := strings.IndexByte(content, '#'); i >= 0 {
			content = content[:i]
		}
		f := strings.Fields(content)
		if len(f) == 0 {
			continue
		}
		bad := func(msg string) error { return &ParseError{File: name, Line: line, Msg: msg, Text: text} }
		if len(f) != 2 {
			return nil, bad(fmt.Sprintf("has %d fields, want a network or AS number and an e-mail address", len(f)))
		}
		key, addr := f[0], f[1]
		if !validMailbox(addr) {
			return nil, bad(fmt.Sprintf("%q is not an e-mail address", addr))
		}
		e := abuseEntry{contact: addr, source: fmt.Sprintf("%s:%d", name, line)}
		if asn, ok, err := parseASKey(key); ok {
			if err != nil {
				return nil, bad(err.Error())
			}
			k := fmt.Sprintf("AS%d", asn)
			if prev, dup := seen[k]; dup {
				return nil, bad(fmt.Sprintf("%s is listed already on line %d", k, prev))
			}
			seen[k] = line
			t.asns[asn] = e
			continue
		}
		p, err := parseNetKey(key)
		if err != nil {
			return nil, bad(err.Error())
		}
		if prev, dup := seen[p.String()]; dup {
			return nil, bad(fmt.Sprintf("%s is listed already on line %d", p, prev))
		}
		seen[p.String()] = line
		t.nets.add(p, e)
	}
	if err := s.Err(); err != nil {
		return nil, scanErr(name, line, err)
	}
	return t, nil
}

// parseASKey reads "AS64500" (any case). ok is false when key does not
// start with AS; err is set when it does but is no AS number.
func parseASKey(key string) (asn uint32, ok bool, err error) {
	if len(key) < 2 || !strings.EqualFold(key[:2], "AS") {
		return 0, false, nil
	}
	n := parseASN(key)
	if n == 0 || key[2:] == "" || key[2] == '+' || key[2] == '-' {
		return 0, true, fmt.Errorf("%q is not an AS number from AS1 to AS4294967295", key)
	}
	return n, true, nil
}

// parseNetKey reads a CIDR prefix or a single address.
func parseNetKey(key string) (netip.Prefix, error) {
	if strings.Contains(key, "/") {
		p, err := netip.ParsePrefix(key)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR notation", key)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if p.Bits() < 0 {
				return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR notation", key)
			}
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; the network is %s", key, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(key)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a network, an address or an AS number", key)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validMailbox reports whether s is a bare e-mail address (no display
// name, no angle brackets).
func validMailbox(s string) bool {
	if strings.ContainsAny(s, "<>\" ,;") || strings.Count(s, "@") != 1 {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}
