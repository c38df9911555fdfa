// Package ja4 computes the JA4 fingerprint of a TLS client (FoxIO's JA4,
// technical_details/JA4.md of github.com/FoxIO-LLC/ja4) from the raw bytes
// of its ClientHello, and records those bytes on a server connection so that
// a Go TLS listener can fingerprint the clients it accepts.
//
// A JA4 reads
//
//	t13d1516h2_8daaf6152771_e5627efa2ab1
//	│││ │ │ │  │            └ sha256[:12] of the sorted extensions (no SNI, no ALPN) "_" signature algorithms in order
//	│││ │ │ │  └ sha256[:12] of the sorted cipher suites
//	│││ │ │ └ first and last character of the first ALPN value ("00" if none)
//	│││ │ └ number of extensions (at most 99)
//	│││ └ number of cipher suites (at most 99)
//	││└ d: the client sent SNI, i: it did not
//	│└ TLS version: the highest of supported_versions, else the legacy version
//	└ t: TLS over TCP, q: QUIC, d: DTLS
//
// GREASE values (RFC 8701) are left out everywhere.
//
// The parser is written by hand against RFC 8446 section 4.1.2 and never
// panics on hostile input (see FuzzParse).
package ja4

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// Transport is the first character of a JA4: how the ClientHello travelled.
type Transport byte

// Transports.
const (
	TCP  Transport = 't'
	QUIC Transport = 'q'
	DTLS Transport = 'd'
)

// Extension types that JA4 looks into.
const (
	extServerName          = 0x0000
	extSignatureAlgorithms = 0x000d
	extALPN                = 0x0010
	extSupportedVersions   = 0x002b
)

// Errors of the parser. Parse wraps them with the place of the fault.
var (
	// ErrTruncated means the bytes end inside the ClientHello.
	ErrTruncated = errors.New("ja4: truncated ClientHello")
	// ErrNotClientHello means the bytes are not a TLS handshake record or
	// message of type client_hello.
	ErrNotClientHello = errors.New("ja4: not a TLS ClientHello")
	// ErrMalformed means a length or field of the ClientHello is invalid.
	ErrMalformed = errors.New("ja4: malformed ClientHello")
)

// ClientHello holds the fields of a ClientHello that JA4 uses, as sent:
// GREASE values are kept here and left out only when fingerprinting.
//
// A ClientHello may be reused with Unmarshal to avoid allocation. Its
// slices point into the buffer given to Unmarshal or
// into the ClientHello's own storage; they are valid until the next
// Unmarshal.
type ClientHello struct {
	// LegacyVersion is the client_version field (0x0303 for TLS 1.2 and
	// 1.3 clients).
	LegacyVersion uint16
	// CipherSuites in the order sent.
	CipherSuites []uint16
	// Extensions are the extension types in the order sent.
	Extensions []uint16
	// SupportedVersions is the content of the supported_versions
	// extension, nil without it.
	SupportedVersions []uint16
	// SignatureAlgorithms is the content of the signature_algorithms
	// extension, in the order sent.
	SignatureAlgorithms []uint16
	// ALPN is the first protocol of the ALPN extension; nil without one.
	ALPN []byte
	// HasSNI reports whether the server_name extension was sent.
	HasSNI bool

	sni []byte // first host_name of server_name

	store [256]uint16 // backing for the uint16 slices of small hellos
}

// Parse parses a ClientHello handshake message: the 4-byte handshake
// header (type 1, 24-bit length) followed by the body. Use
// HandshakeFromRecords to get the message out of TLS records.
func Parse(msg []byte) (*ClientHello, error) {
	h := new(ClientHello)
	if err := h.Unmarshal(msg); err != nil {
		return nil, err
	}
	return h, nil
}

// reader is a bounds-checked cursor over a byte slice.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := uint16(r.b[0])<<8 | uint16(r.b[1])
	r.b = r.b[2:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// vec8 and vec16 read a vector with a 1- or 2-byte length prefix.
func (r *reader) vec8() reader  { return reader{b: r.bytes(int(r.u8())), bad: r.bad} }
func (r *reader) vec16() reader { return reader{b: r.bytes(int(r.u16())), bad: r.bad} }

// Unmarshal parses a ClientHello handshake message into h, reusing h's
// storage.
func (h *ClientHello) Unmarshal(msg []byte) error {
	*h = ClientHello{}
	// The uint16 slices share h.store; appends that outgrow it move to the
	// heap, which only unusually large hellos do.
	buf := h.store[:0]
	if len(msg) < 4 {
		return fmt.Errorf("%w: %d bytes, need a 4-byte handshake header", ErrTruncated, len(msg))
	}
	if msg[0] != 1 {
		return fmt.Errorf("%w: handshake type %d", ErrNotClientHello, msg[0])
	}
	n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	if len(msg)-4 < n {
		return fmt.Errorf("%w: handshake length %d, have %d bytes", ErrTruncated, n, len(msg)-4)
	}
	r := reader{b: msg[4 : 4+n]}
	h.LegacyVersion = r.u16()
	r.bytes(32) // random
	r.vec8()    // legacy_session_id
	cs := r.vec16()
	if r.bad {
		return fmt.Errorf("%w: ends before the cipher suites", ErrTruncated)
	}
	if len(cs.b)%2 != 0 {
		return fmt.Errorf("%w: cipher suites length %d is odd", ErrMalformed, len(cs.b))
	}
	start := len(buf)
	for len(cs.b) > 0 {
		buf = append(buf, cs.u16())
	}
	h.CipherSuites = buf[start:len(buf):len(buf)]
	r.vec8() // legacy_compression_methods
	if r.bad {
		return fmt.Errorf("%w: ends before the compression methods", ErrTruncated)
	}
	if len(r.b) == 0 {
		return nil // no extensions: SSL 3.0 style hello
	}
	exts := r.vec16()
	if r.bad {
		return fmt.Errorf("%w: extensions length exceeds the message", ErrMalformed)
	}
	// Two passes over the extensions: their types first, so that
	// h.Extensions is one run of buf, then the values of the two list
	// extensions JA4 reads.
	start = len(buf)
	for p := exts; len(p.b) > 0; {
		typ := p.u16()
		data := p.vec16()
		if p.bad || data.bad {
			return fmt.Errorf("%w: extension %#04x overruns the extensions", ErrMalformed, typ)
		}
		buf = append(buf, typ)
		switch typ {
		case extServerName:
			h.HasSNI = true
			list := data.vec16()
			for len(list.b) > 0 && !list.bad {
				kind := list.u8()
				name := list.vec16()
				if kind == 0 && h.sni == nil && !name.bad {
					h.sni = name.b
				}
			}
		case extALPN:
			list := data.vec16()
			if len(list.b) > 0 {
				if p := list.vec8(); !p.bad {
					h.ALPN = p.b
				}
			}
		}
	}
	h.Extensions = buf[start:len(buf):len(buf)]
	for p := exts; len(p.b) > 0; {
		typ := p.u16()
		data := p.vec16()
		var list reader
		switch typ {
		case extSignatureAlgorithms:
			list = data.vec16()
		case extSupportedVersions:
			list = data.vec8()
		default:
			continue
		}
		if list.bad || len(list.b)%2 != 0 {
			return fmt.Errorf("%w: extension %#04x has a bad list length", ErrMalformed, typ)
		}
		start = len(buf)
		for len(list.b) > 0 {
			buf = append(buf, list.u16())
		}
		vs := buf[start:len(buf):len(buf)]
		if typ == extSignatureAlgorithms {
			h.SignatureAlgorithms = vs
		} else {
			h.SupportedVersions = vs
		}
	}
	return nil
}

// ServerName returns the first host_name of the server_name extension.
func (h *ClientHello) ServerName() string { return string(h.sni) }

// IsGREASE reports whether v is one of the reserved GREASE values of RFC
// 8701 (0x0a0a, 0x1a1a, … 0xfafa).
func IsGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

// Version returns the TLS version JA4 names: the highest non-GREASE value
// of supported_versions, else the legacy version.
func (h *ClientHello) Version() uint16 {
	var best uint16
	for _, v := range h.SupportedVersions {
		if !IsGREASE(v) && v > best {
			best = v
		}
	}
	if best == 0 {
		return h.LegacyVersion
	}
	return best
}

func versionCode(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

const hexDigits = "0123456789abcdef"

// alpnCode returns the two ALPN characters of the fingerprint.
func alpnCode(p []byte) (byte, byte) {
	if len(p) == 0 {
		return '0', '0'
	}
	first, last := p[0], p[len(p)-1]
	if isAlnum(first) && isAlnum(last) {
		return first, last
	}
	return hexDigits[first>>4], hexDigits[last&0xf]
}

// Fingerprint returns the JA4 of a ClientHello handshake message sent over
// TCP.
func Fingerprint(msg []byte) (string, error) {
	var h ClientHello
	if err := h.Unmarshal(msg); err != nil {
		return "", err
	}
	return h.JA4(TCP), nil
}

// JA4 returns the fingerprint, e.g. "t13d1516h2_8daaf6152771_e5627efa2ab1".
func (h *ClientHello) JA4(t Transport) string { return h.format(t, true, false) }

// JA4R returns the raw fingerprint JA4_r: the sorted lists in clear
// instead of their hashes.
func (h *ClientHello) JA4R(t Transport) string { return h.format(t, true, true) }

// JA4O returns JA4_o: hashes of the lists in the order sent, SNI and ALPN
// included.
func (h *ClientHello) JA4O(t Transport) string { return h.format(t, false, false) }

// JA4RO returns JA4_ro: the lists in the order sent, in clear.
func (h *ClientHello) JA4RO(t Transport) string { return h.format(t, false, true) }

func countNonGREASE(vs []uint16) int {
	n := 0
	for _, v := range vs {
		if !IsGREASE(v) {
			n++
		}
	}
	return n
}

func count2(n int) (byte, byte) {
	n = min(n, 99)
	return byte('0' + n/10), byte('0' + n%10)
}

func appendHex16(b []byte, v uint16) []byte {
	return append(b, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
}

// appendList appends the non-GREASE values of vs as comma-separated
// 4-digit hex; skipSNIALPN leaves out extensions 0x0000 and 0x0010.
func appendList(b []byte, vs []uint16, skipSNIALPN bool) []byte {
	first := true
	for _, v := range vs {
		if IsGREASE(v) || skipSNIALPN && (v == extServerName || v == extALPN) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendHex16(b, v)
	}
	return b
}

// appendHash appends the first 12 hex digits of the SHA-256 of s, or
// twelve zeros when s is empty.
func appendHash(b, s []byte) []byte {
	if len(s) == 0 {
		return append(b, "000000000000"...)
	}
	sum := sha256.Sum256(s)
	var x [12]byte
	hex.Encode(x[:], sum[:6])
	return append(b, x[:]...)
}

func sortedCopy(dst *[128]uint16, vs []uint16) []uint16 {
	s := append(dst[:0], vs...)
	slices.Sort(s)
	return s
}

func (h *ClientHello) format(t Transport, sorted, raw bool) string {
	nCiphers, nExts := countNonGREASE(h.CipherSuites), countNonGREASE(h.Extensions)
	var out [512]byte
	b := append(out[:0], byte(t))
	b = append(b, versionCode(h.Version())...)
	if h.HasSNI {
		b = append(b, 'd')
	} else {
		b = append(b, 'i')
	}
	c1, c2 := count2(nCiphers)
	e1, e2 := count2(nExts)
	a1, a2 := alpnCode(h.ALPN)
	b = append(b, c1, c2, e1, e2, a1, a2, '_')

	ciphers, exts := h.CipherSuites, h.Extensions
	var cbuf, ebuf [128]uint16
	if sorted {
		ciphers = sortedCopy(&cbuf, ciphers)
		exts = sortedCopy(&ebuf, exts)
	}
	var scratch [1024]byte
	list := appendList(scratch[:0], ciphers, false)
	if raw {
		b = append(b, list...)
	} else {
		b = appendHash(b, list)
	}
	b = append(b, '_')
	// The extension list: sorted without SNI and ALPN, or as sent. The
	// signature algorithms follow in the order sent after "_", unless there
	// are none; an empty extension list hashes to twelve zeros.
	list = appendList(list[:0], exts, sorted)
	if len(list) > 0 && countNonGREASE(h.SignatureAlgorithms) > 0 {
		list = append(list, '_')
		list = appendList(list, h.SignatureAlgorithms, false)
	}
	if raw {
		b = append(b, list...)
	} else {
		b = appendHash(b, list)
	}
	return string(b)
}
