package dnssink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/netip"
	"time"
)

// cookie returns the cookie option of the response to a client cookie
// option (hex, as miekg/dns keeps it): the client cookie followed by a
// server cookie in the layout of RFC 9018: version 1, three reserved
// bytes, a 32-bit timestamp, and an 8-byte hash. The hash is HMAC-SHA256,
// cut to 8 bytes, of client cookie, version, reserved, timestamp and the
// client address under a secret made at start (RFC 9018 names SipHash;
// the layout, not the hash, is what matters to clients). The sinkhole does
// not check server cookies that clients send back: it never answers
// BADCOOKIE, it only lets clients see that cookies work.
func (s *Server) cookie(hexCookie string, client netip.Addr, now time.Time) (string, bool) {
	var cc [8]byte
	if _, err := hex.Decode(cc[:], []byte(hexCookie[:16])); err != nil {
		return "", false
	}
	var out [24]byte
	copy(out[:8], cc[:])
	out[8] = 1 // version
	binary.BigEndian.PutUint32(out[12:16], uint32(now.Unix()))

	h := s.macPool.Get().(hash.Hash)
	h.Reset()
	h.Write(out[:16])
	ip := client.Unmap().AsSlice()
	h.Write(ip)
	var sum [sha256.Size]byte
	copy(out[16:], h.Sum(sum[:0]))
	s.macPool.Put(h)
	return hex.EncodeToString(out[:]), true
}

func (s *Server) newMAC() any { return hmac.New(sha256.New, s.cookieSecret[:]) }
