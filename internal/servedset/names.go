package servedset

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of what a snapshot holds, checked on every way in (Apply, the
// decoders).
const (
	maxNameLen   = 253  // a domain name without the trailing dot
	maxLabelLen  = 63   // one label
	maxLabels    = 127  // labels of a 253-byte name
	maxCaseLen   = 64   // a case handle or a family name
	maxTXTLen    = 2048 // a case's TXT, before it is cut into character-strings
	maxMailbox   = 254  // the SOA contact
	maxNSPerSet  = 16   // name servers
	maxAddrsEach = 256  // addresses of one name server, and sinkhole addresses of one family
	// maxKeysPerCase bounds a case's DNSSEC keys: one, two during a
	// rollover, a few more for one that was forced.
	maxKeysPerCase = 8
	maxPublicKey   = 88           // the base64 of an ECDSA P-256 public key (64 bytes)
	maxUnix        = 253402300799 // 9999-12-31T23:59:59Z
)

// hostName returns name as a zone name: lower case, without a trailing
// dot, labels of 1 to 63 letters, digits, '-' or '_', at most 253 bytes.
// It reports false for anything else (the root included).
func hostName(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > maxNameLen {
		return "", false
	}
	lower := true
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return "", false
			}
			label = 0
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			label++
		case 'A' <= c && c <= 'Z':
			label++
			lower = false
		default:
			return "", false
		}
		if label > maxLabelLen {
			return "", false
		}
	}
	if label == 0 {
		return "", false
	}
	if !lower {
		name = strings.ToLower(name)
	}
	return name, true
}

// labelCount returns the number of labels of a checked zone name.
func labelCount(name string) int {
	return strings.Count(name, ".") + 1
}

// handle checks a case handle or a family name: 1 to 64 lower-case
// letters, digits, '.', '_' or '-', beginning with a letter or a digit (the
// registry's rule for both). Family names are lower-cased first.
func handle(what, s string) (string, error) {
	if s == "" || len(s) > maxCaseLen {
		return "", fmt.Errorf("%s %q: want 1 to %d characters", what, cut(s), maxCaseLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return "", fmt.Errorf("%s %q: byte %d is not a lower-case letter, a digit, '.', '_' or '-' (nor the first character a letter or a digit)", what, cut(s), i+1)
		}
	}
	return s, nil
}

// mailbox checks the SOA contact: "" (hostmaster.<zone>), a domain name
// ("hostmaster.example") or an address ("abuse@example", whose local part
// may hold letters, digits and ".+_-").
func mailbox(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > maxMailbox {
		return "", fmt.Errorf("hostmaster %q: longer than %d bytes", cut(s), maxMailbox)
	}
	local, domain, at := strings.Cut(s, "@")
	if !at {
		local, domain = "", s
	}
	d, ok := hostName(domain)
	if !ok {
		return "", fmt.Errorf("hostmaster %q: %q is not a domain name", cut(s), cut(domain))
	}
	if !at {
		return d, nil
	}
	if local == "" || len(local) > maxLabelLen {
		return "", fmt.Errorf("hostmaster %q: the part before '@' must have 1 to %d characters", cut(s), maxLabelLen)
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".+_-", c) >= 0) {
			return "", fmt.Errorf("hostmaster %q: the part before '@' may hold letters, digits and \".+_-\" only", cut(s))
		}
	}
	return strings.ToLower(local) + "@" + d, nil
}

// cut shortens s for an error message, keeping it valid UTF-8.
func cut(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
