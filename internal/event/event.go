// Package event defines the canonical sinkhole observation that every stage of
// takedown passes along: the DNS sinkhole and the listeners produce events, the
// classifier and enricher fill them in, the store keeps them and the reports
// export them.
//
// The package is a leaf: it imports nothing else of takedown's, so that every
// stage can depend on it.
package event

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Protocol is the application protocol on which a bot reached the sinkhole.
type Protocol string

// Protocols the sinkhole observes.
const (
	ProtoDNS   Protocol = "dns"
	ProtoHTTP  Protocol = "http"
	ProtoHTTPS Protocol = "https"
	ProtoSMTP  Protocol = "smtp"
	ProtoTCP   Protocol = "tcp"
	ProtoUDP   Protocol = "udp"
)

// Valid reports whether p is one of the known protocols.
func (p Protocol) Valid() bool {
	switch p {
	case ProtoDNS, ProtoHTTP, ProtoHTTPS, ProtoSMTP, ProtoTCP, ProtoUDP:
		return true
	}
	return false
}

// Transport is the transport protocol of the observation: "tcp" or "udp".
type Transport string

// Transports.
const (
	TransportTCP Transport = "tcp"
	TransportUDP Transport = "udp"
)

// Event is one observation of the sinkhole: a DNS query, an HTTP request, a
// TLS handshake, an SMTP session or a raw connection.
//
// The zero value of every field means "not known"; encoders leave such fields
// out.
type Event struct {
	// Time is when the sinkhole saw the event, in UTC with nanoseconds.
	Time time.Time
	// Sensor names the sinkhole node that saw the event.
	Sensor string
	// Protocol is the application protocol.
	Protocol Protocol
	// Transport is tcp or udp.
	Transport Transport

	SrcIP   netip.Addr
	SrcPort uint16
	DstIP   netip.Addr
	DstPort uint16

	// Domain is the name the bot asked for: the DNS qname, HTTP Host, TLS SNI,
	// or SMTP HELO / recipient domain. Lower case, no trailing dot.
	Domain string
	// Zone is the seized zone that Domain falls under.
	Zone string
	// Case is the name of the takedown case that seized Zone.
	Case string

	// Family is the malware family named by the classifier.
	Family string
	// Tag is a free-form sub-classification (variant, campaign, rule name).
	Tag string
	// BotID is the family-specific identifier of the bot, which tells apart
	// several infected hosts behind one NAT address.
	BotID string

	HTTPMethod    string
	HTTPPath      string // path and query
	HTTPUserAgent string
	HTTPReferer   string
	// HTTPForwardedBy is the X-Forwarded-For header as received: kept as
	// evidence, never taken as the source.
	HTTPForwardedBy string
	HTTPContentType string

	TLSVersion     string // e.g. "1.3"
	TLSCipher      string // IANA name, e.g. TLS_AES_128_GCM_SHA256
	TLSFingerprint string // JA4
	TLSALPN        string // the protocols the client offered, comma-separated

	DNSQType string // e.g. "A", "TXT", "TYPE65534"
	DNSRcode string // e.g. "NOERROR", "REFUSED"
	// DNSDO is the DNSSEC OK bit of the query's EDNS0 record.
	DNSDO bool
	// DNSClientSubnet is the query's EDNS0 client subnet, as a prefix such
	// as "198.51.100.0/24"; empty when the query carried none.
	DNSClientSubnet string

	// SMTP envelope and headers of a message a spam bot sent (accepted,
	// never relayed). SMTPRcptDomains lists the distinct recipient domains,
	// comma-separated; SMTPRcptCount counts every recipient.
	SMTPHelo        string
	SMTPFrom        string
	SMTPRcptDomains string
	SMTPRcptCount   uint32
	SMTPSubject     string
	SMTPMessageID   string

	// Error says why a request or session ended badly: a TLS handshake
	// that failed, a limit that was hit ("header timeout", "body too
	// large"). Empty when all went well.
	Error string

	// Malformed marks a request that failed to parse (a DNS packet, an
	// HTTP request line, an SMTP command); PayloadHead holds its start.
	Malformed bool

	// Bytes is the size of the request or payload in bytes.
	Bytes int64
	// PayloadSHA256 is the lower-case hex SHA-256 of the whole payload.
	PayloadSHA256 string
	// PayloadHead is the first bytes of the payload, as received.
	PayloadHead []byte

	// Enrichment of SrcIP.
	ASN         uint32
	ASName      string
	CountryCode string // ISO 3166-1 alpha-2, upper case
	Region      string
	City        string
	Latitude    float64
	Longitude   float64
}

// HasGeo reports whether the event carries coordinates. (0, 0) is taken as
// "unknown": nobody is infected on Null Island.
func (e *Event) HasGeo() bool { return e.Latitude != 0 || e.Longitude != 0 }

// The times an event may have: from the Unix epoch, before which nothing
// was sinkholed, to the last whole year that a store keeping nanoseconds in
// 64 bits can hold (DuckDB's TIMESTAMP_NS ends in April 2262). Validate
// refuses anything outside, so that an event that passed it at one entry
// (a sink, the ingest endpoint, the spool) is never refused by a store for
// its time.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2261, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// InTimeRange reports whether t is between MinTime and MaxTime.
func InTimeRange(t time.Time) bool { return !t.Before(MinTime) && !t.After(MaxTime) }

// Validate reports the first thing wrong with e for storing it: the time and
// the source address must be set, the time between MinTime and MaxTime, the
// protocol and transport known, sizes, coordinates and the country code in
// range.
func (e *Event) Validate() error {
	switch {
	case e.Time.IsZero():
		return errors.New("event: time is not set")
	case !InTimeRange(e.Time):
		return fmt.Errorf("event: time %s is not between %s and %s", formatTime(e.Time),
			MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339))
	case !e.SrcIP.IsValid():
		return errors.New("event: source ip is not set")
	case !e.Protocol.Valid():
		return fmt.Errorf("event: protocol %q is not one of dns, http, https, smtp, tcp, udp", e.Protocol)
	case e.Transport != "" && e.Transport != TransportTCP && e.Transport != TransportUDP:
		return fmt.Errorf("event: transport %q is not tcp or udp", e.Transport)
	case e.Bytes < 0:
		return fmt.Errorf("event: bytes %d is negative", e.Bytes)
	case math.IsNaN(e.Latitude) || e.Latitude < -90 || e.Latitude > 90:
		return fmt.Errorf("event: latitude %v is not from -90 to 90", e.Latitude)
	case math.IsNaN(e.Longitude) || e.Longitude < -180 || e.Longitude > 180:
		return fmt.Errorf("event: longitude %v is not from -180 to 180", e.Longitude)
	case e.PayloadSHA256 != "" && !isHexSHA256(e.PayloadSHA256):
		return fmt.Errorf("event: payload sha256 %q is not 64 lower-case hex digits", e.PayloadSHA256)
	case e.CountryCode != "" && !isCountryCode(e.CountryCode):
		return fmt.Errorf("event: country code %q is not two upper-case letters", e.CountryCode)
	}
	return nil
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// formatTime writes t in RFC 3339 where it can, and as Go prints it where
// RFC 3339 cannot (years before 0 or after 9999).
func formatTime(t time.Time) string {
	if y := t.UTC().Year(); y >= 0 && y <= 9999 {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return t.UTC().String()
}

// MaxFamilyLen is the longest malware family name.
const MaxFamilyLen = 64

// FamilyRule says in words what ValidFamily takes, for error messages.
const FamilyRule = "1 to 64 lower-case letters, digits, '.', '_' or '-', beginning with a letter or digit, e.g. \"waledac\""

// ValidFamily reports whether s is a malware family name: the one rule for
// a case's family, a classification rule's family and a family asked for in
// a query.
func ValidFamily(s string) bool {
	if s == "" || len(s) > MaxFamilyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// SensorIDRule says in words what ValidSensorID takes, for error messages.
const SensorIDRule = "a DNS label: 1 to 63 lower-case letters, digits or '-', not beginning or ending with '-', e.g. \"fra-1\""

// ValidSensorID reports whether s can name a sensor of a deployment with
// several machines: a DNS label in lower case. It is a token of the
// sensor's NATS subjects and its user name in the servers' permissions,
// where '.', '*' and '>' would mean something else. (A single serve's
// Sensor may be any host name.)
func ValidSensorID(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
