package dnssec

import (
	"crypto"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// State is where a key is in its life. A key is published (in the DNSKEY
// RRset, signing nothing yet), then active (published, and signing), then
// retired (still published, signing nothing), then removed (gone from the
// zones; only the key store remembers it, and the served set no longer
// carries it).
type State string

// The states of a key, in the order a key goes through them.
const (
	StatePublished State = "published"
	StateActive    State = "active"
	StateRetired   State = "retired"
	StateRemoved   State = "removed"
)

// Valid reports whether s is one of the four states.
func (s State) Valid() bool {
	switch s {
	case StatePublished, StateActive, StateRetired, StateRemoved:
		return true
	}
	return false
}

// Algorithms takedown signs with: ECDSA P-256 with SHA-256 (13, the
// default) and Ed25519 (15).
const (
	ECDSAP256SHA256 = dns.ECDSAP256SHA256
	ED25519         = dns.ED25519
)

// FlagsCSK are the DNSKEY flags of a combined signing key: zone key and
// secure entry point (257).
const FlagsCSK = dns.ZONE | dns.SEP

// Key is a signing key of a case as the sinks see it: its public part as a
// DNSKEY has it, its private part as a crypto.Signer, its state and times.
// Published keys (every state but removed) go in the DNSKEY RRset of each of
// the case's zones; active keys sign.
type Key struct {
	// Algorithm is the DNSSEC algorithm number (13 or 15).
	Algorithm uint8
	// Flags are the DNSKEY flags: FlagsCSK (257).
	Flags uint16
	// PublicKey is the public key in base64, as in a DNSKEY record.
	PublicKey string
	// Signer is the private key; nil on a snapshot read without private
	// keys.
	Signer crypto.Signer
	// State is the key's state.
	State State
	// Created is when the key was made and published; Activated when it
	// began to sign (zero if it has not); Retired when it stopped (zero if
	// it has not).
	Created, Activated, Retired time.Time
}

// DNSKEY returns the key's DNSKEY record at the apex of zone (a domain
// name, trailing dot optional) with that TTL.
func (k *Key) DNSKEY(zone string, ttl uint32) *dns.DNSKEY {
	return &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: dns.Fqdn(strings.ToLower(zone)), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: ttl},
		Flags:     k.Flags,
		Protocol:  3,
		Algorithm: k.Algorithm,
		PublicKey: k.PublicKey,
	}
}

// Tag returns the key tag (RFC 4034 appendix B). It does not depend on the
// zone.
func (k *Key) Tag() uint16 { return k.DNSKEY(".", 0).KeyTag() }

// DS returns the DS record of the key for zone, with a SHA-256 digest
// (digest type 2): what the zone's registry puts in its parent. Its TTL is
// zero: the parent chooses it. It is nil if the public key is not valid
// base64.
func (k *Key) DS(zone string) *dns.DS {
	ds := k.DNSKEY(zone, 0).ToDS(dns.SHA256)
	if ds != nil {
		ds.Hdr.Ttl = 0
	}
	return ds
}

// Publishes reports whether the key belongs in the DNSKEY RRset.
func (k *Key) Publishes() bool {
	return k.State == StatePublished || k.State == StateActive || k.State == StateRetired
}

// Signs reports whether the key signs.
func (k *Key) Signs() bool { return k.State == StateActive }

// Equal reports whether k and o are the same key in the same state: every
// field but Signer equal, and both with a signer or both without (a signer
// follows from the public key).
func (k *Key) Equal(o *Key) bool {
	return k.Algorithm == o.Algorithm && k.Flags == o.Flags && k.PublicKey == o.PublicKey &&
		k.State == o.State && k.Created.Equal(o.Created) && k.Activated.Equal(o.Activated) &&
		k.Retired.Equal(o.Retired) && (k.Signer == nil) == (o.Signer == nil)
}
