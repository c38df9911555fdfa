package enrich

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ipRange is one routed range of an iptoasn file.
type ipRange struct {
	from, to netip.Addr
	asn      uint32
	cc       string
	name     string
}

// rangeTable answers lookups in the ranges of an iptoasn file: sorted,
// non-overlapping ranges per family, found by binary search.
type rangeTable struct {
	v4, v6 []ipRange
}

func (t *rangeTable) len() int { return len(t.v4) + len(t.v6) }

func (t *rangeTable) lookup(a netip.Addr) (record, bool) {
	rs := t.v6
	if a.Is4() {
		rs = t.v4
	}
	// The last range that starts at or before a.
	i, found := slices.BinarySearchFunc(rs, a, func(r ipRange, a netip.Addr) int { return r.from.Compare(a) })
	if !found {
		i--
	}
	if i < 0 || rs[i].to.Compare(a) < 0 {
		return record{}, false
	}
	r := &rs[i]
	return record{ASN: r.asn, ASName: r.name, CountryCode: r.cc}, true
}

// ParseError is a problem on one line of an input file.
type ParseError struct {
	File string // as given to the parser
	Line int    // from 1
	Msg  string // what is wrong
	Text string // the bad input, as read
}

func (e *ParseError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %q", e.File, e.Line, e.Msg, e.Text)
}

// maxLine is the longest line the text parsers accept.
const maxLine = 1 << 20

func newScanner(r io.Reader) *bufio.Scanner {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), maxLine)
	return s
}

// scanErr turns a scanner's error into a ParseError on the line after the
// last one read.
func scanErr(name string, line int, err error) error {
	if err == bufio.ErrTooLong {
		return &ParseError{File: name, Line: line + 1, Msg: fmt.Sprintf("line is longer than %d bytes", maxLine)}
	}
	return fmt.Errorf("reading %s: %w", name, err)
}

// parseIPtoASN reads an iptoasn.com TSV file (ip2asn-v4.tsv, ip2asn-v6.tsv
// or ip2asn-combined.tsv): per line range_start, range_end, AS_number,
// country_code, AS_description, separated by tabs. Ranges of AS 0 ("Not
// routed") are dropped; the country codes "None" and "Unknown" mean none.
// Empty lines and lines starting with # are skipped.
func parseIPtoASN(r io.Reader, name string) (*rangeTable, error) {
	t := &rangeTable{}
	names := map[string]string{} // interned AS names
	s := newScanner(r)
	line := 0
	for s.Scan() {
		line++
		raw := s.Bytes()
		text := strings.TrimRight(string(raw), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		bad := func(msg string) error { return &ParseError{File: name, Line: line, Msg: msg, Text: text} }
		f := strings.SplitN(text, "\t", 5)
		if len(f) < 4 {
			return nil, bad(fmt.Sprintf("has %d tab-separated fields, want range_start, range_end, AS_number, country_code, AS_description", len(f)))
		}
		from, err := netip.ParseAddr(f[0])
		if err != nil || from.Zone() != "" {
			return nil, bad("range start is not an IP address")
		}
		to, err := netip.ParseAddr(f[1])
		if err != nil || to.Zone() != "" {
			return nil, bad("range end is not an IP address")
		}
		from, to = from.Unmap(), to.Unmap()
		if from.Is4() != to.Is4() {
			return nil, bad("range start and end are of different address families")
		}
		if to.Less(from) {
			return nil, bad("range end is before its start")
		}
		asn, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(f[2], "AS"), "as"), 10, 32)
		if err != nil {
			return nil, bad("AS number is not a number from 0 to 4294967295")
		}
		if asn == 0 {
			continue
		}
		cc := normCountry(f[3])
		desc := ""
		if len(f) == 5 {
			desc = strings.TrimSpace(f[4])
		}
		if n, ok := names[desc]; ok {
			desc = n
		} else {
			names[desc] = desc
		}
		ipr := ipRange{from: from, to: to, asn: uint32(asn), cc: cc, name: desc}
		if from.Is4() {
			t.v4 = append(t.v4, ipr)
		} else {
			t.v6 = append(t.v6, ipr)
		}
	}
	if err := s.Err(); err != nil {
		return nil, scanErr(name, line, err)
	}
	for _, rs := range [][]ipRange{t.v4, t.v6} {
		slices.SortStableFunc(rs, func(a, b ipRange) int { return a.from.Compare(b.from) })
		for i := 1; i < len(rs); i++ {
			if rs[i].from.Compare(rs[i-1].to) <= 0 {
				return nil, fmt.Errorf("%s: range %s-%s overlaps range %s-%s", name, rs[i].from, rs[i].to, rs[i-1].from, rs[i-1].to)
			}
		}
	}
	return t, nil
}

// normCountry returns code as an upper-case ISO 3166-1 alpha-2 code, or ""
// when it is not two letters or is one of the codes for "unknown".
func normCountry(code string) string {
	code = strings.TrimSpace(code)
	if len(code) != 2 {
		return ""
	}
	a, b := code[0]|0x20, code[1]|0x20 // lower case
	if a < 'a' || a > 'z' || b < 'a' || b > 'z' {
		return ""
	}
	up := string([]byte{a &^ 0x20, b &^ 0x20})
	switch up {
	case "ZZ", "XX", "--":
		return ""
	}
	if up == code {
		return code // keep the caller's string, no copy
	}
	return up
}

// isText reports whether the start of data looks like a text file: no NUL
// byte in its first 4 KiB.
func isText(data []byte) bool {
	head := data[:min(len(data), 4096)]
	return bytes.IndexByte(head, 0) < 0
}
