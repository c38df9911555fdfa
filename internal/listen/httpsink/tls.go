package httpsink

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/ja4"
)

// sawHello is the tls.Config.GetConfigForClient hook: the ClientHello has
// been read in full; note what the client offered.
func (s *Server) sawHello(hi *tls.ClientHelloInfo) (*tls.Config, error) {
	if sc := sinkOf(hi.Conn); sc != nil {
		sc.tls.sni = strings.ToLower(strings.TrimSuffix(hi.ServerName, "."))
		sc.tls.alpn = strings.Join(hi.SupportedProtos, ",")
		if jc, ok := hi.Conn.(*ja4.Conn); ok {
			sc.tls.ja4, _ = jc.JA4()
		}
	}
	return nil, nil
}

// handshake runs the TLS handshake of sc within ReadHeaderTimeout. A
// failure is recorded as one event and counted.
func (s *Server) handshake(sc *sinkConn) (*tls.Conn, bool) {
	jc := ja4.NewConn(sc)
	tc := tls.Server(jc, s.tls)
	if s.cfg.HeadBytes > 0 {
		sc.raw = make([]byte, 0, s.cfg.HeadBytes)
	}
	sc.recording = true
	sc.SetDeadline(sc.start.Add(s.cfg.ReadHeaderTimeout)) //nolint:errcheck
	err := tc.Handshake()
	sc.recording = false
	sc.SetDeadline(sc.hard) //nolint:errcheck
	if err == nil {
		cs := tc.ConnectionState()
		sc.tls.version = strings.TrimPrefix(tls.VersionName(cs.Version), "TLS ")
		sc.tls.cipher = tls.CipherSuiteName(cs.CipherSuite)
		sc.raw = nil
		return tc, true
	}
	if sc.tls.ja4 == "" {
		sc.tls.ja4, _ = jc.JA4() // a complete hello with nothing in common
	}
	_, jerr := jc.JA4()
	e := s.newEvent(sc)
	reason := "tls"
	switch {
	case sc.rawN == 0 && isClosed(err):
		reason, e.Error = "closed", "connection closed before the handshake"
	case sc.rawN == 0 && isTimeout(err):
		reason, e.Error = "timeout", "handshake timeout"
	case errors.Is(jerr, ja4.ErrNotClientHello):
		reason, e.Error, e.Malformed = "not_tls", "not TLS", true
	case errors.Is(jerr, ja4.ErrMalformed) || jerr != nil && jc.ClientHello() != nil:
		e.Error, e.Malformed = "malformed ClientHello: "+tlsError(err), true
	case isTimeout(err):
		reason, e.Error = "timeout", "handshake timeout"
	case isClosed(err):
		reason, e.Error = "closed", "connection closed during the handshake"
	default:
		e.Error = tlsError(err)
	}
	if sc.rawN > 0 {
		e.Bytes = sc.rawN
		e.PayloadHead = sc.raw
		if sc.rawN == int64(len(sc.raw)) {
			sum := sha256.Sum256(sc.raw)
			e.PayloadSHA256 = hex.EncodeToString(sum[:])
		}
	}
	s.m.handshakeFail.WithLabelValues(reason).Inc()
	if e.Malformed {
		s.m.malformed[protoHTTPS].Inc()
	}
	s.record(e, nil)
	s.putEvent(e)
	sc.raw = nil
	return nil, false
}

// helloFields puts into e what the ClientHello at the start of b, sent to
// a plain-HTTP port, says: the SNI as Domain (for the zone and case) and
// the JA4. A hello that did not come whole in b is recorded without them.
// (The offered ALPN list is left out: ja4.ClientHello keeps only the
// first protocol, which the JA4 shows.)
func helloFields(e *event.Event, b []byte) {
	msg, complete, err := ja4.HandshakeFromRecords(b)
	if !complete || err != nil {
		return
	}
	var ch ja4.ClientHello
	if ch.Unmarshal(msg) != nil {
		return
	}
	if sni := ch.ServerName(); sni != "" {
		e.Domain = hostName([]byte(sni))
	}
	e.TLSFingerprint = ch.JA4(ja4.TCP)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE)
}

// tlsError is the text of a handshake error without crypto/tls's "local
// error: " (an alert we sent): "tls: no cipher suite supported by both
// client and server; client offered: [9c]".
func tlsError(err error) string {
	return strings.TrimPrefix(err.Error(), "local error: ")
}
