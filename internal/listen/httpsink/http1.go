package httpsink

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/sink"
)

// bufSize is the read buffer of a busy connection; a request head that
// does not fit grows it up to MaxHeaderBytes.
const bufSize = 4096

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4096

// scratch is the memory a connection needs while it serves a request. An
// idle keep-alive connection gives it back.
type scratch struct {
	buf  []byte // read buffer
	head []byte // the request head, copied out of buf
	body []byte // the first MatchBytes of the body
	out  []byte // the response
	hash hash.Hash
	req  request
	hl   headerList
	cr   classify.Request
	sum  [sha256.Size]byte
	// The last Host and User-Agent and their strings: a bot sends the
	// same ones again and again.
	host, ua lastString
}

// lastString keeps the string made of the bytes seen last.
type lastString struct {
	b []byte
	s string
}

// get returns conv(b), made anew only when b differs from last time.
func (l *lastString) get(b []byte, conv func([]byte) string) string {
	if l.s != "" && bytes.Equal(b, l.b) {
		return l.s
	}
	s := conv(b)
	if len(b) <= 256 {
		l.b, l.s = append(l.b[:0], b...), s
	}
	return s
}

func uaString(b []byte) string { return string(b) }

// h1conn serves HTTP/1.x on one connection. It lives on the heap: a
// parked connection (park_linux.go) is this and its sinkConn, without a
// goroutine.
type h1conn struct {
	s     *Server
	sc    *sinkConn
	c     net.Conn  // sc, or the TLS connection over it
	x     *scratch  // nil while idle
	r, w  int       // unread bytes are x.buf[r:w]
	nbody int64     // body bytes read
	first bool      // no request has begun yet
	until time.Time // end of the wait for the next request
	// headBy is when the head of the request under way is due; fill sets
	// it as the read deadline before its first read of the head
	// (headDue), so a head that came whole costs no deadline.
	headBy  time.Time
	headDue bool
	// lc is the loop that holds the connection (loop_linux.go), nil on
	// the goroutine path; pend is what a loop's write left unsent, and
	// pendKeep whether the connection carries on after it.
	lc       *lconn
	pend     []byte
	pendKeep bool
	// linger is set when a request was refused (400, 413, 431) with its
	// client perhaps still sending: the connection's close lingers.
	linger bool
	// last is set while the response that ends the connection is written.
	last bool
	parkState
}

func (h *h1conn) acquire() {
	if h.x == nil {
		h.x = h.s.scratches.Get().(*scratch)
	}
}

func (h *h1conn) release() {
	x := h.x
	if x == nil {
		return
	}
	h.x = nil
	h.r, h.w = 0, 0
	if cap(x.buf) != bufSize {
		x.buf = make([]byte, bufSize)
	}
	if cap(x.head) > 2*bufSize {
		x.head = nil
	}
	if cap(x.req.hdrs) > 64 {
		x.req.hdrs = nil
	}
	clear(x.req.hdrs[:cap(x.req.hdrs)]) // drop references into the head
	x.hl = headerList{}
	x.cr = classify.Request{}
	h.s.scratches.Put(x)
}

// serve runs the request loop; resumed continues a wait the parker
// ended. On a false return the caller closes the connection; after a true
// one it must not touch h.
func (h *h1conn) serve(resumed bool) (parked bool) {
	s, sc := h.s, h.sc
	for {
		if h.r == h.w {
			if !resumed {
				// Wait for a request without holding a buffer.
				deadline := sc.start.Add(s.cfg.ReadHeaderTimeout)
				if !h.first {
					deadline = time.Now().Add(s.cfg.IdleTimeout)
				}
				h.until = sc.clamp(deadline)
				h.release()
				sc.idle.Store(true)
				if s.isClosing() {
					return false
				}
			}
			h.headDue = false // readWake sets the deadline of the wait
			n, err := h.readWake(resumed)
			resumed = false
			if err == errParked {
				return true // h is the parker's now
			}
			sc.idle.Store(false)
			if n == 0 {
				h.release()
				if sc.requests.Load() == 0 {
					h.noRequest(err)
				}
				return false
			}
			if h.x != nil {
				h.w = n // read straight into the buffer
			} else {
				h.acquire()
				h.w = copy(h.x.buf, sc.wake[:n])
			}
			if !h.first {
				h.headBy, h.headDue = time.Now().Add(s.cfg.ReadHeaderTimeout), true
			}
		} else if !h.first {
			h.headBy, h.headDue = time.Now().Add(s.cfg.ReadHeaderTimeout), true
		}
		h.first = false
		if !h.serveOne() || s.isClosing() {
			h.release()
			return false
		}
	}
}

// resume serves a connection the parker found readable, in a new
// goroutine.
func (h *h1conn) resume() {
	if !h.serve(true) {
		h.close()
	}
}

// carry serves a connection a loop handed over, in a new goroutine: it
// sends what the loop's write left over, then goes on as serve does.
func (h *h1conn) carry() {
	if h.pend != nil {
		err := h.write(h.pend)
		h.pend = nil
		if err != nil || !h.pendKeep {
			h.release()
			h.close()
			return
		}
	}
	if h.linger { // a loop refused the request and handed over the close
		h.release()
		h.close()
		return
	}
	if !h.serve(false) {
		h.close()
	}
}

// Lingering closes (sink.CloseLingering) wait for at most lingerTime, or
// until lingerBytes more have come: enough for a bot that writes its whole
// oversized request before it reads to get the refusal, and no more than a
// moment of a worker's time. At most Config.MaxLingering linger at once,
// so that a flood of garbage does not hold a goroutine per connection.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
)

// close closes a connection of the goroutine path (plain, or the TCP
// connection under TLS) after its last request; after a refusal the close
// lingers, so that the client gets the answer.
func (h *h1conn) close() {
	s := h.s
	if !h.linger || s.isClosing() {
		h.sc.Close()
		return
	}
	if s.lingering.Add(1) > int64(s.cfg.MaxLingering) {
		s.lingering.Add(-1)
		h.sc.Close()
		return
	}
	sink.CloseLingering(h.sc, lingerTime, lingerBytes) //nolint:errcheck // nothing more is sent
	s.lingering.Add(-1)
}

// errParked is readWake's report that the parker took the connection.
var errParked = errors.New("httpsink: connection parked")

// end closes a connection that waited for a request and was ended by err
// (a deadline or Shutdown) while parked, as a failed read would have.
func (h *h1conn) end(err error) {
	h.sc.idle.Store(false)
	if h.sc.requests.Load() == 0 {
		h.noRequest(err)
	}
	h.sc.Close()
}

// noRequest records a connection that ended before its first request
// began.
func (h *h1conn) noRequest(err error) {
	e := h.s.newEvent(h.sc)
	defer h.s.putEvent(e)
	switch {
	case h.sc.expired():
		e.Error = "connection timeout"
	case isTimeout(err):
		e.Error = "header timeout"
		h.s.m.limits.WithLabelValues(limitHeaderTimeout).Inc()
	case h.s.isClosing():
		e.Error = "server shutting down"
	default:
		e.Error = "connection closed before a request"
	}
	h.s.record(e, nil)
}

// serveOne reads, records and answers one request; it reports whether the
// connection may carry another.
func (h *h1conn) serveOne() bool {
	s, x := h.s, h.x
	e := s.newEvent(h.sc)
	defer s.putEvent(e)
	h.sc.requests.Add(1)

	n, err := h.readHead()
	if err != nil {
		// What arrived is all there is: record it as received.
		got := x.buf[h.r:h.w]
		if n > 0 && n < len(got) {
			got = got[:n]
		}
		re := readError(h.sc, err, "header")
		e.Error, e.Malformed = re.msg, len(got) > 0 || re.malformed
		h.payload(e, got)
		// Whatever parses of the request line (or of a ClientHello) is
		// worth keeping.
		if re == errTLS {
			helloFields(e, got)
		} else if i := bytes.IndexByte(got, '\n'); i > 0 {
			parseHead(got[:i+1], &x.req)
			h.requestFields(e, &x.req)
		}
		h.finish(e, re, nil)
		return false
	}
	e.Time = s.now().UTC()
	return h.serveHead(e, h.parse(n))
}

// parse copies the head, the n bytes at x.buf[r:], out of the buffer and
// parses it into x.req.
func (h *h1conn) parse(n int) *reqError {
	x := h.x
	x.head = append(x.head[:0], x.buf[h.r:h.r+n]...)
	h.r += n
	return parseHead(x.head, &x.req)
}

// serveHead serves the request whose head parse has read (perr is what it
// returned): it reads the body, classifies, records e and answers. It
// reports whether the connection may carry another request.
func (h *h1conn) serveHead(e *event.Event, perr *reqError) bool {
	s, x := h.s, h.x
	req := &x.req
	h.requestFields(e, req)
	if perr != nil {
		e.Error, e.Malformed = perr.msg, true
		h.payload(e, x.head)
		h.finish(e, perr, req)
		return false
	}

	var re *reqError
	h.nbody = 0
	x.hash.Reset()
	x.body = x.body[:0]
	if req.length > 0 || req.chunked {
		if req.expect && req.minor == 1 && h.r == h.w {
			h.write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
		}
		if err := h.readBody(req); err != nil {
			re = readError(h.sc, err, "body")
			e.Error, e.Malformed = re.msg, re.malformed
		}
		e.Bytes = h.nbody
		if h.nbody > 0 {
			x.hash.Sum(x.sum[:0])
			e.PayloadSHA256 = hex.EncodeToString(x.sum[:])
			e.PayloadHead = x.body[:min(len(x.body), s.cfg.HeadBytes)]
		}
	}
	return h.finish(e, re, req)
}

// requestFields copies what the head says into e.
func (h *h1conn) requestFields(e *event.Event, req *request) {
	if req.method != nil {
		e.HTTPMethod = methodString(req.method)
	}
	if req.target != nil {
		e.HTTPPath = string(req.target)
	}
	if len(req.host) > 0 {
		e.Domain = h.x.host.get(req.host, hostName)
	}
	if req.ua != nil {
		e.HTTPUserAgent = h.x.ua.get(req.ua, uaString)
	}
	if req.referer != nil {
		e.HTTPReferer = string(req.referer)
	}
	if req.xff != nil {
		e.HTTPForwardedBy = string(req.xff)
	}
	if req.ctype != nil {
		e.HTTPContentType = string(req.ctype)
	}
}

// payload puts the bytes of a request that could not be served into e.
func (h *h1conn) payload(e *event.Event, b []byte) {
	if len(b) == 0 {
		return
	}
	e.Bytes = int64(len(b))
	h.x.sum = sha256.Sum256(b)
	e.PayloadSHA256 = hex.EncodeToString(h.x.sum[:])
	e.PayloadHead = b[:min(len(b), h.s.cfg.HeadBytes)]
}

// finish classifies e, records it and answers the request (re, if set,
// decides how). It reports whether the connection may carry another request.
func (h *h1conn) finish(e *event.Event, re *reqError, req *request) bool {
	s, x := h.s, h.x
	// The request lives in the scratch: handed to an interface method,
	// it would escape, an allocation per request.
	cr := &x.cr
	*cr = classify.Request{UserAgent: e.HTTPUserAgent, Method: e.HTTPMethod, Path: e.HTTPPath}
	if req != nil {
		x.hl.hdrs = req.hdrs
		cr.Headers = &x.hl
		cr.Body = x.body
	}
	res := s.classify(e, cr)
	if e.Malformed {
		s.m.malformed[h.sc.p].Inc()
	}
	if re != nil && re.limit != "" {
		s.m.limits.WithLabelValues(re.limit).Inc()
	}
	keep := re == nil && req != nil && !req.close
	// Recorded before the answer: a client that got its answer may count
	// the request as stored, even if the process dies the next instant.
	s.record(e, nil)
	switch {
	case re != nil && re.status == 0:
		// Timed out or gone: nobody to answer.
	case re != nil:
		h.respond(re.status, "", "", false, true)
		s.m.request(h.sc.p, re.status)
		h.linger = true
	default:
		resp := res.Response
		if resp == nil {
			resp = &s.dflt
		}
		if err := h.respond(resp.Status, resp.ContentType, resp.Body, e.HTTPMethod == "HEAD", !keep); err != nil {
			keep = false
		}
		s.m.request(h.sc.p, resp.Status)
	}
	return keep
}

// readError maps a read failure to what is recorded.
func readError(sc *sinkConn, err error, part string) *reqError {
	var re *reqError
	switch {
	case errors.As(err, &re):
		return re
	case sc.expired():
		return &reqError{msg: "connection timeout"}
	case isTimeout(err) && part == "header":
		return &reqError{msg: "header timeout", limit: limitHeaderTimeout}
	case isTimeout(err):
		return &reqError{msg: "body timeout", limit: limitBodyTimeout}
	case isClosed(err):
		return &reqError{msg: "connection closed in the " + part}
	}
	return &reqError{msg: part + ": " + err.Error()}
}

// fill reads more bytes into the buffer, first moving unread bytes to its
// front when it is full.
func (h *h1conn) fill() error {
	b := h.x.buf
	if h.r == h.w {
		h.r, h.w = 0, 0
	}
	if h.w == len(b) && h.r > 0 {
		h.w = copy(b, b[h.r:h.w])
		h.r = 0
	}
	if h.w == len(b) {
		return errHeaderTooLarge // callers grow first; never here in practice
	}
	if h.headDue {
		h.headDue = false
		h.c.SetReadDeadline(h.headBy) //nolint:errcheck
	}
	n, err := h.c.Read(b[h.w:])
	h.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// grow makes room for a head that fills the buffer, up to MaxHeaderBytes.
func (h *h1conn) grow() {
	limit := h.s.cfg.MaxHeaderBytes + 1
	if len(h.x.buf) >= limit {
		return
	}
	nb := make([]byte, min(2*len(h.x.buf), limit))
	h.w = copy(nb, h.x.buf[h.r:h.w])
	h.r = 0
	h.x.buf = nb
}

// readHead reads until x.buf[r:] holds a whole request head (through its
// empty line) and returns its length. Empty lines before a request are
// skipped. On an error n is how many bytes were looked at.
func (h *h1conn) readHead() (n int, err error) {
	var sc headScan
	for {
		if n, err := h.scanHead(&sc); n > 0 || err != nil {
			return n, err
		}
		if h.r == 0 && h.w == len(h.x.buf) || h.w-h.r == len(h.x.buf) {
			h.grow()
		}
		if err := h.fill(); err != nil {
			return h.w - h.r, err
		}
	}
}

// headScan is how far scanHead has looked, relative to h.r.
type headScan struct{ scan, lineStart int }

// scanHead looks through x.buf[r:w] for the end of a request head,
// skipping empty lines before it, and returns the head's length: 0 when
// the bytes so far hold no whole head (sc remembers how far it looked),
// or errHeaderTooLarge; or errTLS, on plain HTTP, when they begin a TLS
// ClientHello.
func (h *h1conn) scanHead(sc *headScan) (n int, err error) {
	max := h.s.cfg.MaxHeaderBytes
	b := h.x.buf[h.r:h.w]
	for {
		if sc.lineStart == 0 && h.sc.p == protoHTTP && isTLSHello(b) {
			return min(len(b), max), errTLS
		}
		i := bytes.IndexByte(b[sc.scan:], '\n')
		if i < 0 {
			sc.scan = len(b)
			if len(b) >= max {
				return max, errHeaderTooLarge
			}
			return 0, nil
		}
		i += sc.scan
		if i+1 > max {
			return max, errHeaderTooLarge
		}
		if i == sc.lineStart || i == sc.lineStart+1 && b[sc.lineStart] == '\r' {
			if sc.lineStart == 0 {
				h.r += i + 1
				b = b[i+1:]
				sc.scan = 0
				continue
			}
			return i + 1, nil
		}
		sc.lineStart, sc.scan = i+1, i+1
	}
}

// readBody reads the body that req announces, hashing and counting it and
// keeping its first MatchBytes, up to MaxBodyBytes.
func (h *h1conn) readBody(req *request) error {
	limit := h.s.cfg.MaxBodyBytes
	if !req.chunked {
		if req.length > limit {
			if err := h.consume(limit); err != nil {
				return err
			}
			return errBodyTooLarge
		}
		return h.consume(req.length)
	}
	for {
		line, err := h.readLine()
		if err != nil {
			return err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return errChunk
		}
		if size == 0 {
			break
		}
		if size > limit-h.nbody {
			if err := h.consume(limit - h.nbody); err != nil {
				return err
			}
			return errBodyTooLarge
		}
		if err := h.consume(size); err != nil {
			return err
		}
		if line, err = h.readLine(); err != nil {
			return err
		} else if len(line) != 0 {
			return errChunk
		}
	}
	// Trailer fields, skipped, within the header limit.
	for total := 0; ; {
		line, err := h.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if total += len(line) + 2; total > h.s.cfg.MaxHeaderBytes {
			return errHeaderTooLarge
		}
	}
}

// consume feeds the next n bytes of the stream to the body.
func (h *h1conn) consume(n int64) error {
	x := h.x
	for n > 0 {
		if h.r == h.w {
			if err := h.bodyFill(); err != nil {
				return err
			}
		}
		k := int(min(int64(h.w-h.r), n))
		p := x.buf[h.r : h.r+k]
		x.hash.Write(p)
		if room := h.s.cfg.MatchBytes - len(x.body); room > 0 {
			x.body = append(x.body, p[:min(k, room)]...)
		}
		h.r += k
		h.nbody += int64(k)
		n -= int64(k)
	}
	return nil
}

// bodyFill reads more of a body: each read must bring bytes within
// ReadHeaderTimeout.
func (h *h1conn) bodyFill() error {
	h.headDue = false
	h.c.SetReadDeadline(time.Now().Add(h.s.cfg.ReadHeaderTimeout)) //nolint:errcheck
	return h.fill()
}

// readLine returns the next line of a chunked body without its line end;
// it is valid until the next read.
func (h *h1conn) readLine() ([]byte, error) {
	scan := 0
	for {
		b := h.x.buf[h.r:h.w]
		if i := bytes.IndexByte(b[scan:], '\n'); i >= 0 {
			line := b[:scan+i]
			h.r += scan + i + 1
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		scan = len(b)
		if scan > maxChunkLine {
			return nil, errChunk
		}
		if err := h.bodyFill(); err != nil {
			return nil, err
		}
	}
}

// respond writes a status line, the headers and body (not for HEAD).
func (h *h1conn) respond(status int, ctype, body string, head, closing bool) error {
	out := h.x.out[:0]
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nDate: "...)
	out = append(out, h.s.httpDate()...)
	if ctype != "" {
		out = append(out, "\r\nContent-Type: "...)
		out = append(out, ctype...)
	}
	noBody := status == http.StatusNoContent || status == http.StatusNotModified || status < 200
	if !noBody {
		out = append(out, "\r\nContent-Length: "...)
		out = strconv.AppendInt(out, int64(len(body)), 10)
	}
	if closing {
		out = append(out, "\r\nConnection: close"...)
	} else if h.x.req.minor == 0 {
		out = append(out, "\r\nConnection: keep-alive"...)
	}
	out = append(out, "\r\n\r\n"...)
	if !head && !noBody {
		out = append(out, body...)
	}
	h.x.out = out
	h.last = closing
	err := h.write(out)
	h.last = false
	return err
}

// write sends b. On a plain connection it first tries one send that
// does not wait, which sends a whole response nearly always: only what
// that leaves over needs the write deadline (WriteTimeout), which saves
// setting a deadline per response.
func (h *h1conn) write(b []byte) error {
	if h.lc != nil {
		return h.loopWrite(b)
	}
	n := h.tryWrite(b)
	if n == len(b) {
		return nil
	}
	b = b[n:]
	h.c.SetWriteDeadline(time.Now().Add(h.s.cfg.WriteTimeout)) //nolint:errcheck
	_, err := h.c.Write(b)
	return err
}

// dateValue is the Date header value of a second (Server.date holds the
// current one).
type dateValue struct {
	sec int64
	b   []byte
}

func (s *Server) httpDate() []byte {
	now := time.Now()
	if d := s.date.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &dateValue{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	s.date.Store(d)
	return d.b
}
