package report

import (
	"crypto/sha1"
	"encoding/hex"
)

// uuid5 returns the name-based UUID (RFC 9562, version 5, SHA-1) of name in
// namespace, in its text form.
func uuid5(namespace [16]byte, name string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// mustUUID parses the text form of a UUID.
func mustUUID(s string) [16]byte {
	var u [16]byte
	b := []byte(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if _, err := hex.Decode(u[:], b); err != nil || len(s) != 36 {
		panic("report: bad UUID " + s)
	}
	return u
}

var (
	// stixSCONamespace is the namespace of the deterministic ids of STIX
	// Cyber-observable Objects (STIX 2.1, section 2.9).
	stixSCONamespace = mustUUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
	// reportNamespace is takedown's namespace for the ids of the objects it
	// makes: STIX domain and relationship objects, bundles, X-ARF reports.
	// It is the UUIDv5 of "takedown.report" in the URL namespace.
	reportNamespace = mustUUID(uuid5(mustUUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), "takedown.report"))
)
