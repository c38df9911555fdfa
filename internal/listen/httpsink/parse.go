package httpsink

import (
	"bytes"
	"net/http"
)

// maxHeaders bounds the header lines of one request, whatever their size.
const maxHeaders = 1024

// header is one header line of a request head; both slices point into it.
type header struct{ name, value []byte }

// request is what the head of an HTTP/1.x request says. Its slices point
// into the head.
type request struct {
	method, target []byte
	minor          int // HTTP/1.minor
	host, ua       []byte
	referer, ctype []byte
	xff            []byte // X-Forwarded-For; several joined by ", "
	length         int64  // Content-Length; -1 when absent
	chunked        bool
	close          bool // the connection ends after this request
	expect         bool // Expect: 100-continue
	hdrs           []header
	xffBuf         []byte
}

// reqError is a request that cannot be served: what to answer (0: no
// answer), what to record and which limit it hit.
type reqError struct {
	status    int
	msg       string
	malformed bool
	limit     string
}

func (e *reqError) Error() string { return e.msg }

var (
	errHeaderTooLarge = &reqError{http.StatusRequestHeaderFieldsTooLarge, "header too large", true, limitHeaderSize}
	errTooManyHeaders = &reqError{http.StatusRequestHeaderFieldsTooLarge, "too many header lines", true, limitHeaderSize}
	errBodyTooLarge   = &reqError{http.StatusRequestEntityTooLarge, "body too large", false, limitBodySize}
	errVersion        = &reqError{http.StatusHTTPVersionNotSupported, "unsupported HTTP version", true, ""}
	errEncoding       = &reqError{http.StatusNotImplemented, "unsupported Transfer-Encoding", true, ""}
)

func malformed(msg string) *reqError {
	return &reqError{status: http.StatusBadRequest, msg: msg, malformed: true}
}

var (
	errRequestLine = malformed("malformed request line")
	errMethod      = malformed("malformed method")
	errTarget      = malformed("malformed request target")
	errFolding     = malformed("obsolete header line folding")
	errNoColon     = malformed("header line without a colon")
	errHeaderName  = malformed("malformed header name")
	errHeaderValue = malformed("malformed header value")
	errLength      = malformed("malformed Content-Length")
	errChunk       = malformed("malformed chunked body")
	// errTLS is a TLS client on a plain-HTTP port: refused at its first
	// bytes, as nginx refuses a method it cannot read, instead of waiting
	// ReadHeaderTimeout for a head that never comes.
	errTLS = malformed("TLS on plain HTTP")
)

// isTLSHello reports whether b, the first bytes of a request, begin a TLS
// ClientHello: a handshake record of SSL 3.0 to TLS 1.3 (0x16 0x03
// 0x00–0x04), or an SSL 2.0 style hello (a two-byte length with the high
// bit set, message type 1, version 0x0002 or 0x0300–0x0304), which old
// clients send. No HTTP method begins with either byte. While b is too
// short to tell it reports false, and the head is read on.
func isTLSHello(b []byte) bool {
	switch {
	case len(b) >= 3 && b[0] == 0x16:
		return b[1] == 3 && b[2] <= 4
	case len(b) >= 5 && b[0]&0x80 != 0:
		return b[2] == 1 && (b[3] == 0 && b[4] == 2 || b[3] == 3 && b[4] <= 4)
	}
	return false
}

// parseHead reads a request head: the request line and the header lines,
// ending with an empty line (which head may include or not). It fills req
// as far as it gets, also when it returns an error.
func parseHead(head []byte, req *request) *reqError {
	hdrs := req.hdrs[:0]
	xffBuf := req.xffBuf[:0]
	*req = request{length: -1, hdrs: hdrs, xffBuf: xffBuf}
	line, rest := cutLine(head)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		if len(line) > 0 && isToken(line) {
			req.method = line
		}
		return errRequestLine
	}
	req.method = line[:sp]
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp < 0 {
		return errRequestLine
	}
	req.target, line = line[:sp], line[sp+1:]
	if !isToken(req.method) {
		return errMethod
	}
	if len(req.target) == 0 || !isTarget(req.target) {
		return errTarget
	}
	switch {
	case string(line) == "HTTP/1.1":
		req.minor = 1
	case string(line) == "HTTP/1.0":
		req.minor = 0
	case len(line) == 8 && string(line[:5]) == "HTTP/" && isDigit(line[5]) && line[6] == '.' && isDigit(line[7]):
		return errVersion
	default:
		return errRequestLine
	}
	keepAlive, closing := false, false
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errFolding
		}
		if len(req.hdrs) == maxHeaders {
			return errTooManyHeaders
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return errNoColon
		}
		name := line[:colon]
		if len(name) == 0 || !isToken(name) {
			return errHeaderName
		}
		value := trimOWS(line[colon+1:])
		if bytes.IndexByte(value, 0) >= 0 || bytes.IndexByte(value, '\r') >= 0 {
			return errHeaderValue
		}
		req.hdrs = append(req.hdrs, header{name, value})
		switch {
		case fold(name, "host"):
			if req.host == nil {
				req.host = value
			}
		case fold(name, "user-agent"):
			if req.ua == nil {
				req.ua = value
			}
		case fold(name, "referer"):
			if req.referer == nil {
				req.referer = value
			}
		case fold(name, "content-type"):
			if req.ctype == nil {
				req.ctype = value
			}
		case fold(name, "x-forwarded-for"):
			switch {
			case req.xff == nil:
				req.xff = value
			default:
				req.xffBuf = append(append(append(req.xffBuf[:0], req.xff...), ", "...), value...)
				req.xff = req.xffBuf
			}
		case fold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || req.length >= 0 && req.length != n {
				return errLength
			}
			req.length = n
		case fold(name, "transfer-encoding"):
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = trimOWS(value[i+1:])
			}
			if !fold(last, "chunked") {
				return errEncoding
			}
			req.chunked = true
		case fold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = trimOWS(tok)
				switch {
				case fold(tok, "close"):
					closing = true
				case fold(tok, "keep-alive"):
					keepAlive = true
				}
			}
		case fold(name, "expect"):
			req.expect = fold(value, "100-continue")
		}
	}
	req.close = closing || req.minor == 0 && !keepAlive
	if req.chunked && req.length >= 0 {
		// Both framings: chunked wins (RFC 9112 6.3), and the connection
		// is not trusted with another request.
		req.length, req.close = -1, true
	}
	return nil
}

// cutLine returns the first line of b without its CRLF or LF, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		line, rest = b, nil
	} else {
		line, rest = b[:i], b[i+1:]
	}
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// fold reports whether b equals the lower-case ASCII s, ignoring case.
func fold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseLength parses a Content-Length: digits only, at most 18.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseChunkSize parses the hex size of a chunk line, ignoring extensions.
func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case isDigit(c):
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// tokenChars marks the tchar of RFC 9110 5.6.2.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// isTarget accepts any request target without controls or spaces; bots
// send unescaped bytes, which are kept as they are.
func isTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// headerList gives the classifier the request's headers.
type headerList struct {
	hdrs []header
	vals []string
}

// Values returns the values of the headers named name, in any case.
func (h *headerList) Values(name string) []string {
	h.vals = h.vals[:0]
	for _, x := range h.hdrs {
		if len(x.name) == len(name) && bytes.EqualFold(x.name, []byte(name)) {
			h.vals = append(h.vals, string(x.value))
		}
	}
	return h.vals
}

// hostName returns the host of a Host header (or SNI): lower case, without
// port, brackets or trailing dot.
func hostName(b []byte) string {
	if len(b) > 0 && b[0] == '[' {
		if i := bytes.IndexByte(b, ']'); i > 0 {
			b = b[1:i]
		}
	} else if i := bytes.LastIndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[:i], ':') < 0 {
		b = b[:i]
	}
	b = bytes.TrimRight(b, ".")
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return string(bytes.ToLower(b))
		}
	}
	return string(b)
}

// methodString returns the method, without allocating for common ones.
func methodString(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "HEAD":
		return "HEAD"
	case "PUT":
		return "PUT"
	case "OPTIONS":
		return "OPTIONS"
	case "DELETE":
		return "DELETE"
	case "CONNECT":
		return "CONNECT"
	case "PATCH":
		return "PATCH"
	}
	return string(b)
}
