package fictional

import "strings"

// Reserved reports whether name (lower case, A-labels, no trailing dot)
// can never be anyone's: it is under a TLD that RFC 2606 and RFC 6761
// reserve (.example, .test, .invalid, .localhost) or under example.com,
// example.net or example.org.
func Reserved(name string) bool {
	switch name[strings.LastIndexByte(name, '.')+1:] {
	case "example", "test", "invalid", "localhost":
		return true
	}
	for _, d := range []string{"example.com", "example.net", "example.org"} {
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}
