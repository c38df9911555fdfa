package registry

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits of a domain name (RFC 1035 section 2.3.4), in octets of the A-label
// form without the trailing dot.
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

// idnaProfile converts U-labels to A-labels: UTS #46 mapping for lookup (so
// upper case and full-width forms are folded), non-transitional (IDNA2008:
// "ß" stays "ß"), STD3 rules (letters, digits and hyphens only), hyphen and
// joiner checks, the Bidi rule and DNS length checks.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.CheckHyphens(true),
	idna.CheckJoiners(true),
	idna.VerifyDNSLength(true),
	idna.StrictDomainName(true),
)

// fullStops replaces the full stops that UTS #46 maps to '.'.
var fullStops = strings.NewReplacer("\u3002", ".", "\uff0e", ".", "\uff61", ".")

// NormalizeName returns the canonical form of a seized domain name: lower-case
// A-labels (internationalised labels in punycode), no trailing dot, at least
// two labels. Leading and trailing white space and one trailing dot are
// dropped; the full stops "。", "．" and "｡" count as dots.
//
// It refuses, naming the label at fault: empty labels, labels longer than 63
// octets, names longer than 253 octets, characters other than letters,
// digits and '-' (so underscore names such as "_dmarc.example.com", which are
// not host names and cannot be delegated to a sinkhole on their own, are
// refused), labels that begin or end with '-', labels with "--" in positions
// 3–4 other than valid "xn--" A-labels, single-label names, IP addresses and
// all-numeric top-level domains. The errors wrap ErrInvalid.
func NormalizeName(s string) (string, error) {
	name, err := normalizeName(s)
	if err != nil {
		return "", fmt.Errorf("domain name %q: %s: %w", cut(strings.TrimSpace(s), 100), err.Error(), ErrInvalid)
	}
	return name, nil
}

// nameError is a reason a name is refused; NormalizeName adds the name.
type nameError string

func (e nameError) Error() string { return string(e) }

func reasonf(format string, args ...any) error { return nameError(fmt.Sprintf(format, args...)) }

func normalizeName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", reasonf("empty name")
	}
	if !utf8.ValidString(s) {
		return "", reasonf("not valid UTF-8")
	}
	ascii := isASCII(s)
	if !ascii {
		s = fullStops.Replace(s)
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.Trim(s, "[]"), ".")); err == nil {
		return "", reasonf("%s is an IP address, not a domain name", a)
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", reasonf("empty name")
	}
	labels := strings.Split(s, ".")
	idn := false
	for i, l := range labels {
		if l == "" {
			return "", reasonf("empty label at position %d", i+1)
		}
		a, err := normalizeLabel(l)
		if err != nil {
			return "", err
		}
		if a != strings.ToLower(l) || strings.HasPrefix(a, "xn--") {
			idn = true
		}
		labels[i] = a
	}
	if len(labels) < 2 {
		return "", reasonf("single label %q: a seized domain needs at least two labels, e.g. %q", labels[0], labels[0]+".com")
	}
	name := strings.Join(labels, ".")
	if len(name) > maxNameLen {
		return "", reasonf("name is %d octets long, more than %d", len(name), maxNameLen)
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return "", reasonf("top-level domain %q is all-numeric", tld)
	}
	if idn {
		// Cross-label rules (the Bidi rule applies to every label of a
		// name that has a right-to-left label).
		if _, err := idnaProfile.ToASCII(name); err != nil {
			return "", reasonf("not a valid internationalised name: %s", idnaReason(err))
		}
	}
	return name, nil
}

// normalizeLabel returns the A-label of one label.
func normalizeLabel(l string) (string, error) {
	if isASCII(l) {
		l = strings.ToLower(l)
		if err := checkLDH(l); err != nil {
			return "", err
		}
		if strings.HasPrefix(l, "xn--") {
			// An A-label must decode, be valid, and be the canonical
			// encoding of what it decodes to.
			u, err := idnaProfile.ToUnicode(l)
			if err != nil {
				return "", reasonf("label %q is not a valid A-label: %s", l, idnaReason(err))
			}
			back, err := idnaProfile.ToASCII(u)
			if err != nil || back != l {
				return "", reasonf("label %q is not a valid A-label: it is not the canonical encoding of %q", l, u)
			}
		}
		return l, nil
	}
	a, err := idnaProfile.ToASCII(l)
	if err != nil {
		return "", reasonf("label %q is not a valid internationalised label: %s", cut(l, 80), idnaReason(err))
	}
	if strings.Contains(a, ".") {
		return "", reasonf("label %q maps to more than one label (%q)", cut(l, 80), a)
	}
	if a == "" {
		return "", reasonf("label %q maps to nothing", cut(l, 80))
	}
	if err := checkLDH(a); err != nil {
		return "", err
	}
	return a, nil
}

// checkLDH checks a lower-case ASCII label: letters, digits, hyphens, no
// hyphen at either end, at most 63 octets.
func checkLDH(l string) error {
	if len(l) > maxLabelLen {
		return reasonf("label %q is %d octets long, more than %d", cut(l, 80), len(l), maxLabelLen)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case c == '_':
			return reasonf("label %q has an underscore: not allowed in host names", cut(l, 80))
		default:
			return reasonf("label %q has the character %q: only letters, digits and '-' are allowed", cut(l, 80), rune(c))
		}
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return reasonf("label %q begins or ends with '-'", cut(l, 80))
	}
	if len(l) >= 4 && l[2:4] == "--" && !strings.HasPrefix(l, "xn--") {
		return reasonf("label %q has \"--\" in positions 3 and 4, which is reserved for xn-- A-labels", cut(l, 80))
	}
	return nil
}

// idnaReason turns an error of package idna into a reason.
func idnaReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "idna: ")
	switch {
	case strings.HasPrefix(msg, "disallowed rune"):
		return "has a " + msg + " (not allowed in domain names)"
	case strings.HasPrefix(msg, "invalid label"):
		return "breaks an IDNA2008 rule (hyphens, joiners, combining marks or bidirectional text)"
	}
	return msg
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// tldOf returns the last label of a normalised name.
func tldOf(name string) string {
	return name[strings.LastIndexByte(name, '.')+1:]
}

// registries maps a TLD (A-label) to the operator of its registry. It is
// deliberately small: the big TLDs of past takedowns. A TLD not listed gets
// an empty Registry, and Packages groups its domains as "registry of .tld".
var registries = map[string]string{
	"com":        "Verisign",
	"net":        "Verisign",
	"cc":         "Verisign",
	"tv":         "Verisign",
	"name":       "Verisign",
	"org":        "Public Interest Registry",
	"info":       "Identity Digital",
	"mobi":       "Identity Digital",
	"pro":        "Identity Digital",
	"biz":        "GoDaddy Registry",
	"us":         "GoDaddy Registry",
	"co":         "GoDaddy Registry",
	"ru":         "Coordination Center for TLD RU",
	"xn--p1ai":   "Coordination Center for TLD RU", // .рф
	"su":         "Foundation for Internet Development",
	"cn":         "CNNIC",
	"xn--fiqs8s": "CNNIC", // .中国
	"de":         "DENIC",
	"uk":         "Nominet",
	"eu":         "EURid",
	"fr":         "AFNIC",
	"nl":         "SIDN",
	"be":         "DNS Belgium",
	"it":         "Registro .it",
	"ch":         "SWITCH",
	"li":         "SWITCH",
	"at":         "nic.at",
	"pl":         "NASK",
	"se":         "Internet Foundation in Sweden",
	"nu":         "Internet Foundation in Sweden",
	"jp":         "JPRS",
	"kr":         "KISA",
	"br":         "NIC.br",
	"ca":         "CIRA",
	"au":         "auDA",
	"in":         "NIXI",
}

// RegistryOf returns the operator of the registry of tld ("com" →
// "Verisign"), or "" if the built-in table does not know it.
func RegistryOf(tld string) string {
	return registries[strings.ToLower(strings.TrimSuffix(tld, "."))]
}
