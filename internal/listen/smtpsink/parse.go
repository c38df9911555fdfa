package smtpsink

import (
	"bufio"
	"bytes"
	"mime"
	"net/textproto"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parsePath reads the argument of MAIL or RCPT: the keyword (FROM or TO),
// a colon, and a path, leniently as bots write it: "FROM:<a@b> SIZE=10",
// "FROM: <a@b>", "from:a@b". It returns the address without brackets and
// source route ("" for "<>"), and what follows the path.
func parsePath(arg []byte, keyword string) (addr string, params []byte, ok bool) {
	if len(arg) < len(keyword) || !bytes.EqualFold(arg[:len(keyword)], []byte(keyword)) {
		return "", nil, false
	}
	rest := bytes.TrimLeft(arg[len(keyword):], " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return "", nil, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t")
	var path []byte
	if len(rest) > 0 && rest[0] == '<' {
		i := bytes.IndexByte(rest, '>')
		if i < 0 {
			return "", nil, false
		}
		path, params = rest[1:i], rest[i+1:]
	} else {
		i := bytes.IndexAny(rest, " \t")
		if i < 0 {
			i = len(rest)
		}
		path, params = rest[:i], rest[i:]
		if len(path) == 0 {
			return "", nil, false
		}
	}
	// A source route, "@relay1,@relay2:user@host", is obsolete: keep the
	// mailbox.
	if len(path) > 0 && path[0] == '@' {
		if i := bytes.IndexByte(path, ':'); i >= 0 {
			path = path[i+1:]
		}
	}
	return clip(string(path)), bytes.TrimSpace(params), true
}

// sizeParam finds the SIZE= parameter of MAIL.
func sizeParam(params []byte) (int64, bool) {
	for _, p := range bytes.Fields(params) {
		if len(p) > 5 && bytes.EqualFold(p[:5], []byte("SIZE=")) {
			n, err := strconv.ParseInt(string(p[5:]), 10, 64)
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}

// domainOf returns the lower-case domain of a mailbox, without a trailing
// dot; "" when there is none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	d := strings.TrimSuffix(strings.ToLower(addr[i+1:]), ".")
	if len(d) > 253 || strings.ContainsAny(d, ", \t") {
		return ""
	}
	return d
}

// heloDomain returns the HELO name as a domain for zone lookup: lower case,
// no trailing dot; "" for an address literal or a name that cannot be one.
func heloDomain(helo string) string {
	if helo == "" || helo[0] == '[' || len(helo) > 253 || strings.ContainsAny(helo, " \t,") {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(helo), ".")
}

// field makes an event field of bytes a client sent: valid UTF-8, at most
// maxFieldBytes.
func field(b []byte) string { return clip(string(b)) }

// clip cuts s to maxFieldBytes at a rune boundary and replaces invalid
// UTF-8.
func clip(s string) string {
	if len(s) > maxFieldBytes {
		i := maxFieldBytes
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// parseHeader reads the header of a message from its start. cut says the
// message goes on past msg, so that a last, partial line is dropped. What
// does not parse ends the header; the fields before it stay.
func parseHeader(msg []byte, cut bool) textproto.MIMEHeader {
	end := -1
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		end = i + 4
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	var hdr []byte
	switch {
	case end >= 0:
		hdr = msg[:end]
	case cut:
		i := bytes.LastIndexByte(msg, '\n')
		hdr = msg[:i+1]
	default:
		hdr = msg
	}
	if len(hdr) == 0 {
		return nil
	}
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(hdr))).ReadMIMEHeader()
	return h
}

// decodeSubject decodes RFC 2047 encoded words where it can (UTF-8, ASCII,
// Latin-1) and keeps the rest as sent.
func decodeSubject(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "=?") {
		if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
			s = d
		}
	}
	return clip(s)
}
