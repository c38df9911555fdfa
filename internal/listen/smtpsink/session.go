package smtpsink

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/ja4"
	"github.com/takedown-project/takedown/internal/listen/sink"
)

// session is one SMTP connection. Only its own goroutine touches it, but
// for raw, which Shutdown may wake or close.
type session struct {
	s        *Server
	raw      net.Conn // as accepted; closing it ends the session
	conn     net.Conn // raw, or the TLS connection after STARTTLS
	src, dst netip.AddrPort
	hard     time.Time // the session ends at the latest then

	dlg dialogue // what the client sent, for a session without a message
	r   *bufio.Reader
	w   *bufio.Writer
	mh  hash.Hash // of the message being read

	tlsVersion, tlsCipher, tlsJA4 string

	helo     string
	from     string
	mail     bool
	rcpts    int
	refusedR int // recipients refused over the limit in this transaction
	domains  []string

	commands  int
	errors    int
	messages  int // DATA commands that began reading a message
	malformed bool
	note      string // a limit hit outside a message, for the session event

	e event.Event // reused for every event of the session
}

// dialogue reads from the connection and, while on, keeps the head, the
// count and the hash of what the client sent.
type dialogue struct {
	c    net.Conn
	on   bool
	head []byte
	n    int64
	h    hash.Hash
}

func (d *dialogue) Read(p []byte) (int, error) {
	n, err := d.c.Read(p)
	if d.on && n > 0 {
		d.n += int64(n)
		d.h.Write(p[:n])
		if room := cap(d.head) - len(d.head); room > 0 {
			d.head = append(d.head, p[:min(n, room)]...)
		}
	}
	return n, err
}

func (s *Server) newSession(c net.Conn) *session {
	ss := &session{
		s:    s,
		raw:  c,
		conn: c,
		src:  sink.AddrPort(c.RemoteAddr()),
		dst:  sink.AddrPort(c.LocalAddr()),
		hard: time.Now().Add(s.cfg.SessionTimeout),
		mh:   sha256.New(),
	}
	ss.dlg = dialogue{c: c, on: true, head: make([]byte, 0, s.cfg.HeadBytes), h: sha256.New()}
	ss.r = bufio.NewReaderSize(&ss.dlg, MaxLineBytes)
	ss.w = bufio.NewWriterSize(c, 4<<10)
	return ss
}

// serve runs the session to its end and records it if it carried no
// message.
func (ss *session) serve() {
	reason := ss.run()
	ss.w.Flush() //nolint:errcheck // the session is over either way
	if ss.messages == 0 {
		ss.recordSession(reason)
	}
}

// run speaks SMTP until the session ends and returns why it ended; "" for
// QUIT.
func (ss *session) run() string {
	s := ss.s
	ss.reply(s.greeting)
	for {
		line, tooLong, err := ss.readLine()
		if err != nil {
			if len(line) > 0 {
				ss.malformed = true
			}
			return ss.readFailed(err, "")
		}
		ss.commands++
		if ss.commands > s.cfg.MaxCommands {
			s.m.limits[limitCommands].Inc()
			ss.goodbye("421 4.7.0 Too many commands\r\n")
			return "too many commands"
		}
		if tooLong {
			s.m.limits[limitLineLength].Inc()
			if ss.bad("500 5.5.2 Line too long\r\n") {
				return "too many errors"
			}
			continue
		}
		verb, arg := line, []byte(nil)
		if i := bytes.IndexByte(line, ' '); i >= 0 {
			verb, arg = line[:i], bytes.TrimSpace(line[i+1:])
		}
		var buf [8]byte
		switch cmd := upper(buf[:0], verb); string(cmd) {
		case "EHLO", "HELO":
			if len(arg) == 0 {
				if ss.bad("501 5.5.4 Syntax: " + string(cmd) + " hostname\r\n") {
					return "too many errors"
				}
				continue
			}
			ss.helo = field(arg)
			ss.resetTx()
			switch {
			case cmd[0] == 'H':
				ss.reply("250 " + s.cfg.Hostname + "\r\n")
			case s.tls != nil && ss.tlsVersion == "":
				ss.reply(s.ehloTLS)
			default:
				ss.reply(s.ehlo)
			}
		case "MAIL":
			if ss.mail {
				if ss.fail("503 5.5.1 Error: nested MAIL command\r\n") {
					return "too many errors"
				}
				continue
			}
			addr, params, ok := parsePath(arg, "FROM")
			if !ok {
				if ss.bad("501 5.5.4 Syntax: MAIL FROM:<address>\r\n") {
					return "too many errors"
				}
				continue
			}
			if n, ok := sizeParam(params); ok && n > s.cfg.MaxMessageBytes {
				s.m.limits[limitMessageSize].Inc()
				ss.note = "message size limit: SIZE=" + strconv.FormatInt(n, 10)
				ss.reply(s.tooLargeReply)
				continue
			}
			if addr == "" {
				addr = "<>"
			}
			ss.from, ss.mail = field([]byte(addr)), true
			ss.reply("250 2.1.0 Ok\r\n")
		case "RCPT":
			if !ss.mail {
				if ss.fail("503 5.5.1 Error: need MAIL command\r\n") {
					return "too many errors"
				}
				continue
			}
			addr, _, ok := parsePath(arg, "TO")
			if !ok || addr == "" {
				if ss.bad("501 5.5.4 Syntax: RCPT TO:<address>\r\n") {
					return "too many errors"
				}
				continue
			}
			if ss.rcpts >= s.cfg.MaxRecipients {
				if ss.refusedR == 0 {
					s.m.limits[limitRecipients].Inc()
				}
				ss.refusedR++
				s.m.rcptRefuse.Inc()
				ss.reply("452 4.5.3 Error: too many recipients\r\n")
				continue
			}
			ss.rcpts++
			s.m.rcptOK.Inc()
			ss.addDomain(domainOf(addr))
			ss.reply("250 2.1.5 Ok\r\n")
		case "DATA":
			if !ss.mail || ss.rcpts == 0 {
				if ss.fail("503 5.5.1 Error: need RCPT command\r\n") {
					return "too many errors"
				}
				continue
			}
			if len(arg) > 0 {
				if ss.bad("501 5.5.4 Syntax: DATA\r\n") {
					return "too many errors"
				}
				continue
			}
			if end, over := ss.data(); over {
				return end
			}
		case "RSET":
			ss.resetTx()
			ss.reply("250 2.0.0 Ok\r\n")
		case "NOOP":
			ss.reply("250 2.0.0 Ok\r\n")
		case "QUIT":
			ss.goodbye("221 2.0.0 Bye\r\n")
			return ""
		case "VRFY":
			ss.reply("252 2.0.0 Send some mail, I'll try my best\r\n")
		case "HELP":
			ss.reply("214 2.0.0 See RFC 5321\r\n")
		case "STARTTLS":
			if s.tls == nil || ss.tlsVersion != "" || len(arg) > 0 {
				if ss.fail("502 5.5.1 Error: command not implemented\r\n") {
					return "too many errors"
				}
				continue
			}
			if end, over := ss.startTLS(); over {
				return end
			}
		case "AUTH", "EXPN", "BDAT", "ETRN", "TURN", "ATRN", "SEND", "SOML", "SAML", "XCLIENT", "XFORWARD":
			if ss.fail("502 5.5.1 Error: command not implemented\r\n") {
				return "too many errors"
			}
		default:
			if ss.bad("500 5.5.2 Error: command not recognized\r\n") {
				return "too many errors"
			}
		}
	}
}

// upper appends the upper-case ASCII form of verb to dst if it fits in
// dst's capacity; a longer verb gives an empty result (no command).
func upper(dst, verb []byte) []byte {
	if len(verb) > cap(dst) {
		return dst[:0]
	}
	for _, c := range verb {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// reply queues a reply; it goes out before the next read that would block
// (PIPELINING).
func (ss *session) reply(r string) { ss.w.WriteString(r) } //nolint:errcheck // seen at Flush

// goodbye sends the replies queued and a last one within a second,
// whatever the deadlines; replies that could not be sent before are
// dropped.
func (ss *session) goodbye(r string) {
	ss.conn.SetWriteDeadline(time.Now().Add(time.Second)) //nolint:errcheck // seen at Flush
	if ss.w.Flush() != nil {
		ss.w.Reset(ss.conn)
	}
	ss.w.WriteString(r) //nolint:errcheck // seen at Flush
	ss.w.Flush()        //nolint:errcheck // the session ends anyway
}

// fail answers a command that came out of sequence and counts an error; it
// reports whether the session is over (too many errors).
func (ss *session) fail(r string) bool {
	ss.errors++
	if ss.errors > ss.s.cfg.MaxErrors {
		ss.s.m.limits[limitErrors].Inc()
		ss.goodbye("421 4.7.0 Too many errors\r\n")
		return true
	}
	ss.reply(r)
	return false
}

// bad is fail for a line that is no command or whose arguments do not
// parse: the session is marked malformed.
func (ss *session) bad(r string) bool {
	ss.malformed = true
	ss.s.m.malformed.Inc()
	return ss.fail(r)
}

// deadline is when the next read or write must be done: CommandTimeout
// from now, no later than the session's end; now while shutting down.
func (ss *session) deadline() time.Time {
	now := time.Now()
	if ss.s.life.Closing() {
		return now
	}
	if d := now.Add(ss.s.cfg.CommandTimeout); d.Before(ss.hard) {
		return d
	}
	return ss.hard
}

// flush sends the queued replies.
func (ss *session) flush() error {
	if ss.w.Buffered() == 0 {
		return nil
	}
	ss.conn.SetWriteDeadline(ss.deadline()) //nolint:errcheck // seen at Flush
	return ss.w.Flush()
}

// readLine reads a command line without its line end. A line longer than
// MaxLineBytes is read to its end and reported as tooLong.
func (ss *session) readLine() (line []byte, tooLong bool, err error) {
	if ss.r.Buffered() == 0 {
		if err := ss.flush(); err != nil {
			return nil, false, err
		}
	}
	ss.conn.SetReadDeadline(ss.deadline()) //nolint:errcheck // seen at Read
	line, err = ss.r.ReadSlice('\n')
	for err == bufio.ErrBufferFull {
		tooLong = true
		_, err = ss.r.ReadSlice('\n')
	}
	if err != nil {
		return line, tooLong, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, tooLong, nil
}

// readFailed says why a read (or a flush before it) failed, answers 421
// where that is still useful, counts timeouts, and returns the reason for
// the event, prefixed with where it happened.
func (ss *session) readFailed(err error, where string) string {
	s := ss.s
	switch {
	case s.life.Closing():
		ss.goodbye("421 4.3.2 Shutting down\r\n")
		return "shutdown" + where
	case isTimeout(err) && !time.Now().Before(ss.hard):
		s.m.limits[limitSessionTimeout].Inc()
		ss.goodbye("421 4.4.2 Session time limit exceeded\r\n")
		return "session timeout" + where
	case isTimeout(err):
		s.m.limits[limitCommandTimeout].Inc()
		ss.goodbye("421 4.4.2 Timeout exceeded\r\n")
		return "command timeout" + where
	case isClosed(err):
		return "connection closed without QUIT" + where
	}
	return "read error" + where
}

// resetTx forgets the mail transaction (RSET, EHLO, after DATA).
func (ss *session) resetTx() {
	ss.from, ss.mail, ss.rcpts, ss.refusedR = "", false, 0, 0
	ss.domains = ss.domains[:0]
}

func (ss *session) addDomain(d string) {
	if d == "" {
		return
	}
	for _, have := range ss.domains {
		if have == d {
			return
		}
	}
	ss.domains = append(ss.domains, d)
}

// startTLS runs the STARTTLS handshake; over reports that the session
// ended.
func (ss *session) startTLS() (end string, over bool) {
	s := ss.s
	ss.reply("220 2.0.0 Ready to start TLS\r\n")
	if err := ss.flush(); err != nil {
		return ss.readFailed(err, " in STARTTLS"), true
	}
	// Plain text sent after STARTTLS before the handshake is discarded
	// (RFC 3207 section 5): it must not be read as if it came over TLS.
	if ss.r.Buffered() > 0 {
		ss.malformed = true
		ss.note = "plain text after STARTTLS discarded"
	}
	jc := ja4.NewConn(ss.raw)
	tc := tls.Server(jc, s.tls)
	tc.SetDeadline(ss.deadline()) //nolint:errcheck // seen at Handshake
	if err := tc.Handshake(); err != nil {
		s.m.starttls.WithLabelValues("failed").Inc()
		if s.life.Closing() {
			return "shutdown in STARTTLS", true
		}
		return "tls handshake: " + strings.TrimPrefix(err.Error(), "local error: "), true
	}
	s.m.starttls.WithLabelValues("ok").Inc()
	cs := tc.ConnectionState()
	ss.tlsVersion = strings.TrimPrefix(tls.VersionName(cs.Version), "TLS ")
	ss.tlsCipher = tls.CipherSuiteName(cs.CipherSuite)
	ss.tlsJA4, _ = jc.JA4()
	ss.conn = tc
	ss.dlg.c = tc
	ss.r.Reset(&ss.dlg)
	ss.w.Reset(tc)
	// The client starts over with EHLO (RFC 3207 section 4.2).
	ss.helo = ""
	ss.resetTx()
	return "", false
}

// data reads one message after DATA, discards it, records it and answers.
// over reports that the session ended (the reason in end).
func (ss *session) data() (end string, over bool) {
	s := ss.s
	ss.messages++
	ss.dlg.on = false // from here on the session's events are messages
	ss.reply("354 End data with <CR><LF>.<CR><LF>\r\n")
	if err := ss.flush(); err != nil {
		end = ss.readFailed(err, " in DATA")
		ss.recordMessage(nil, 0, false, end)
		s.m.messages.WithLabelValues(resultBroken).Inc()
		return end, true
	}
	bp := s.bufs.Get().(*[]byte)
	keep := (*bp)[:0]
	defer func() { *bp = keep[:0]; s.bufs.Put(bp) }()
	ss.mh.Reset()
	var size int64
	tooLarge, bol := false, true
	var last time.Time
	var rerr error
	for {
		if ss.r.Buffered() == 0 {
			// Renew the deadline at most once a second: each chunk of
			// data must come within CommandTimeout.
			if now := time.Now(); now.Sub(last) >= time.Second || s.life.Closing() {
				ss.conn.SetReadDeadline(ss.deadline()) //nolint:errcheck // seen at Read
				last = now
			}
		}
		chunk, err := ss.r.ReadSlice('\n')
		if len(chunk) > 0 {
			if bol && chunk[0] == '.' {
				if err == nil && (len(chunk) == 2 || len(chunk) == 3 && chunk[1] == '\r') {
					break // the end: ".\r\n" (or a bare ".\n")
				}
				chunk = chunk[1:] // dot-stuffing
			}
			bol = err == nil
			size += int64(len(chunk))
			if !tooLarge {
				if size > s.cfg.MaxMessageBytes {
					tooLarge = true
				} else {
					ss.mh.Write(chunk)
					if room := cap(keep) - len(keep); room > 0 {
						keep = append(keep, chunk[:min(len(chunk), room)]...)
					}
				}
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			rerr = err
			break
		}
	}
	s.m.bytes.Add(float64(size))
	switch {
	case rerr != nil:
		end = ss.readFailed(rerr, " in DATA")
		ss.recordMessage(keep, size, !tooLarge, end)
		s.m.messages.WithLabelValues(resultBroken).Inc()
		return end, true
	case tooLarge:
		s.m.limits[limitMessageSize].Inc()
		s.m.messages.WithLabelValues(resultTooLarge).Inc()
		ss.recordMessage(keep, size, false, "message too large: more than "+strconv.FormatInt(s.cfg.MaxMessageBytes, 10)+" bytes")
		ss.reply(s.tooLargeReply)
		ss.resetTx()
		return "", false
	}
	res := ss.recordMessage(keep, size, true, "")
	code, text := 250, "2.0.0 Ok"
	if r := res.Response; r != nil && r.Status >= 200 && r.Status <= 599 {
		code = r.Status
		text = r.Body
		if text == "" {
			text = "Ok"
			if code >= 400 {
				text = "Error"
			}
		}
	}
	if code < 400 {
		s.m.messages.WithLabelValues(resultAccepted).Inc()
	} else {
		s.m.messages.WithLabelValues(resultRefused).Inc()
	}
	ss.resetTx()
	if code == 421 { // the server closes the session (RFC 5321 3.8)
		ss.goodbye("421 " + text + "\r\n")
		return "", true
	}
	ss.reply(strconv.Itoa(code) + " " + text + "\r\n")
	return "", false
}

// recordMessage records the message whose start is keep and whose size is
// size (hashed when whole), with the transaction's envelope.
func (ss *session) recordMessage(keep []byte, size int64, whole bool, errText string) classify.Result {
	s := ss.s
	e := &ss.e
	*e = event.Event{}
	s.fillConn(e, ss.src, ss.dst)
	ss.fillSession(e)
	e.Bytes = size
	if whole {
		var sum [sha256.Size]byte
		e.PayloadSHA256 = hex.EncodeToString(ss.mh.Sum(sum[:0]))
	}
	e.PayloadHead = keep[:min(len(keep), s.cfg.HeadBytes)]
	hdr := parseHeader(keep, size > int64(len(keep)))
	e.SMTPSubject = decodeSubject(hdr.Get("Subject"))
	e.SMTPMessageID = clip(strings.TrimSpace(hdr.Get("Message-Id")))
	if ss.refusedR > 0 {
		errText = joinErr(errText, "recipient limit: "+strconv.Itoa(ss.refusedR)+" refused")
	}
	e.Error = errText
	r := classify.Request{HELO: ss.helo, Headers: hdr, Body: keep[:min(len(keep), s.cfg.MatchBytes)]}
	return s.record(e, &r, ss.domains...)
}

// recordSession records a session that carried no message.
func (ss *session) recordSession(reason string) {
	s := ss.s
	e := &ss.e
	*e = event.Event{}
	s.fillConn(e, ss.src, ss.dst)
	ss.fillSession(e)
	e.Error = joinErr(reason, ss.note)
	if ss.refusedR > 0 {
		e.Error = joinErr(e.Error, "recipient limit: "+strconv.Itoa(ss.refusedR)+" refused")
	}
	e.Malformed = ss.malformed
	if n := ss.dlg.n; n > 0 {
		e.Bytes = n
		var sum [sha256.Size]byte
		e.PayloadSHA256 = hex.EncodeToString(ss.dlg.h.Sum(sum[:0]))
		e.PayloadHead = ss.dlg.head
	}
	domains := ss.domains
	if h := heloDomain(ss.helo); h != "" {
		domains = append(domains, h)
	}
	r := classify.Request{HELO: ss.helo, Body: ss.dlg.head}
	s.record(e, &r, domains...)
}

// fillSession sets the envelope and TLS fields.
func (ss *session) fillSession(e *event.Event) {
	e.TLSVersion, e.TLSCipher, e.TLSFingerprint = ss.tlsVersion, ss.tlsCipher, ss.tlsJA4
	e.SMTPHelo = ss.helo
	e.SMTPFrom = ss.from
	e.SMTPRcptCount = uint32(ss.rcpts)
	e.SMTPRcptDomains = strings.Join(ss.domains, ",")
}

func joinErr(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe)
}
