package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// The JSON encoding is one flat object per event with the key names of
// IntelMQ's harmonisation, which abuse desks and IntelMQ bots parse as they
// are; fields IntelMQ has no key for go under "extra.". Keys whose value is
// the zero value are left out.
const (
	// FeedName is the feed.name of every exported event.
	FeedName = "takedown-sinkhole"
	// Taxonomy and Type are IntelMQ's classification of a sinkhole hit.
	Taxonomy = "malicious-code"
	Type     = "infected-system"
)

// JSON keys.
const (
	keyTime        = "time.source"
	keyFeed        = "feed.name"
	keyTaxonomy    = "classification.taxonomy"
	keyType        = "classification.type"
	keyIdentifier  = "classification.identifier"
	keyMalware     = "malware.name"
	keyProtocol    = "protocol.application"
	keyTransport   = "protocol.transport"
	keySrcIP       = "source.ip"
	keySrcPort     = "source.port"
	keyDstIP       = "destination.ip"
	keyDstPort     = "destination.port"
	keyFQDN        = "destination.fqdn"
	keyURLPath     = "destination.urlpath"
	keyASN         = "source.asn"
	keyASName      = "source.as_name"
	keyCC          = "source.geolocation.cc"
	keyRegion      = "source.geolocation.region"
	keyCity        = "source.geolocation.city"
	keyLat         = "source.geolocation.latitude"
	keyLon         = "source.geolocation.longitude"
	keySensor      = "extra.sensor"
	keyZone        = "extra.zone"
	keyCase        = "extra.case"
	keyTag         = "extra.tag"
	keyBotID       = "extra.bot_id"
	keyMethod      = "extra.http_method"
	keyAgent       = "extra.user_agent"
	keyTLSVersion  = "extra.tls_version"
	keyTLSCipher   = "extra.tls_cipher"
	keyJA4         = "extra.ja4"
	keyQType       = "extra.dns_qtype"
	keyRcode       = "extra.dns_rcode"
	keyDO          = "extra.dns_do"
	keyECS         = "extra.dns_client_subnet"
	keyMalformed   = "extra.malformed"
	keyBytes       = "extra.bytes"
	keyPayloadHash = "extra.payload_sha256"
	keyPayloadHead = "extra.payload_head"
)

// AppendJSON appends the JSON object of e to dst. Strings that are not valid
// UTF-8 are written with U+FFFD in place of the bad bytes; coordinates that
// are not finite numbers are left out.
func AppendJSON(dst []byte, e *Event) []byte {
	w := jsonWriter{b: append(dst, '{')}
	if !e.Time.IsZero() {
		w.key(keyTime)
		w.b = append(w.b, '"')
		w.b = e.Time.UTC().AppendFormat(w.b, time.RFC3339Nano)
		w.b = append(w.b, '"')
	}
	w.str(keyFeed, FeedName)
	w.str(keyTaxonomy, Taxonomy)
	w.str(keyType, Type)
	w.str(keyMalware, e.Family)
	w.str(keyIdentifier, e.Family)
	w.str(keyProtocol, string(e.Protocol))
	w.str(keyTransport, string(e.Transport))
	w.addr(keySrcIP, e.SrcIP)
	w.uint(keySrcPort, uint64(e.SrcPort))
	w.addr(keyDstIP, e.DstIP)
	w.uint(keyDstPort, uint64(e.DstPort))
	w.str(keyFQDN, e.Domain)
	w.str(keyURLPath, e.HTTPPath)
	w.uint(keyASN, uint64(e.ASN))
	w.str(keyASName, e.ASName)
	w.str(keyCC, e.CountryCode)
	w.str(keyRegion, e.Region)
	w.str(keyCity, e.City)
	if e.HasGeo() && !math.IsNaN(e.Latitude+e.Longitude) && !math.IsInf(e.Latitude+e.Longitude, 0) {
		w.key(keyLat)
		w.b = strconv.AppendFloat(w.b, e.Latitude, 'g', -1, 64)
		w.key(keyLon)
		w.b = strconv.AppendFloat(w.b, e.Longitude, 'g', -1, 64)
	}
	w.str(keySensor, e.Sensor)
	w.str(keyZone, e.Zone)
	w.str(keyCase, e.Case)
	w.str(keyTag, e.Tag)
	w.str(keyBotID, e.BotID)
	w.str(keyMethod, e.HTTPMethod)
	w.str(keyAgent, e.HTTPUserAgent)
	w.str(keyTLSVersion, e.TLSVersion)
	w.str(keyTLSCipher, e.TLSCipher)
	w.str(keyJA4, e.TLSFingerprint)
	w.str(keyQType, e.DNSQType)
	w.str(keyRcode, e.DNSRcode)
	w.boolean(keyDO, e.DNSDO)
	w.str(keyECS, e.DNSClientSubnet)
	w.boolean(keyMalformed, e.Malformed)
	if e.Bytes != 0 {
		w.key(keyBytes)
		w.b = strconv.AppendInt(w.b, e.Bytes, 10)
	}
	w.str(keyPayloadHash, e.PayloadSHA256)
	if len(e.PayloadHead) > 0 {
		w.key(keyPayloadHead)
		w.b = append(w.b, '"')
		w.b = base64.StdEncoding.AppendEncode(w.b, e.PayloadHead)
		w.b = append(w.b, '"')
	}
	return append(w.b, '}')
}

// MarshalJSON encodes e as one IntelMQ-style JSON object.
func (e Event) MarshalJSON() ([]byte, error) { return AppendJSON(nil, &e), nil }

// UnmarshalJSON decodes what MarshalJSON writes; see DecodeJSON.
func (e *Event) UnmarshalJSON(data []byte) error {
	ev, err := DecodeJSON(data)
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

type jsonWriter struct{ b []byte }

func (w *jsonWriter) key(k string) {
	if w.b[len(w.b)-1] != '{' {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) str(k, v string) {
	if v == "" {
		return
	}
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonWriter) uint(k string, v uint64) {
	if v == 0 {
		return
	}
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonWriter) boolean(k string, v bool) {
	if !v {
		return
	}
	w.key(k)
	w.b = append(w.b, "true"...)
}

func (w *jsonWriter) addr(k string, a netip.Addr) {
	if !a.IsValid() {
		return
	}
	w.key(k)
	w.b = append(w.b, '"')
	w.b = a.AppendTo(w.b)
	w.b = append(w.b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// DecodeJSON decodes one event object. An unknown key, a value of the wrong
// type or out of range, or a classification other than a sinkhole hit's is
// an error that names the key and quotes the value.
func DecodeJSON(data []byte) (Event, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return Event{}, fmt.Errorf("event json: %v", err)
	}
	if m == nil {
		return Event{}, fmt.Errorf("event json: want an object, got null")
	}
	if dec.More() {
		return Event{}, fmt.Errorf("event json: data after the object")
	}
	var e Event
	var identifier string
	for k, raw := range m {
		if err := decodeKey(&e, k, raw, &identifier); err != nil {
			return Event{}, fmt.Errorf("event json: key %q: %w", k, err)
		}
	}
	if e.Family == "" {
		e.Family = identifier
	} else if identifier != "" && identifier != e.Family {
		return Event{}, fmt.Errorf("event json: key %q: %s differs from malware.name %s", keyIdentifier, quote(identifier), quote(e.Family))
	}
	return e, nil
}

func decodeKey(e *Event, k string, raw json.RawMessage, identifier *string) error {
	switch k {
	case keyTime:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%s is not an RFC 3339 time", quote(s))
		}
		e.Time = t.UTC()
	case keyFeed:
		_, err := jstr(raw)
		return err
	case keyTaxonomy:
		return jconst(raw, Taxonomy)
	case keyType:
		return jconst(raw, Type)
	case keyIdentifier:
		return jset(raw, identifier)
	case keyMalware:
		return jset(raw, &e.Family)
	case keyProtocol:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		if p := Protocol(s); !p.Valid() {
			return fmt.Errorf("%s is not one of dns, http, https, smtp, tcp, udp", quote(s))
		}
		e.Protocol = Protocol(s)
	case keyTransport:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		if s != "tcp" && s != "udp" {
			return fmt.Errorf("%s is not tcp or udp", quote(s))
		}
		e.Transport = Transport(s)
	case keySrcIP:
		return jaddr(raw, &e.SrcIP)
	case keyDstIP:
		return jaddr(raw, &e.DstIP)
	case keySrcPort:
		return jport(raw, &e.SrcPort)
	case keyDstPort:
		return jport(raw, &e.DstPort)
	case keyFQDN:
		return jset(raw, &e.Domain)
	case keyURLPath:
		return jset(raw, &e.HTTPPath)
	case keyASN:
		n, err := juint(raw, math.MaxUint32)
		e.ASN = uint32(n)
		return err
	case keyASName:
		return jset(raw, &e.ASName)
	case keyCC:
		return jset(raw, &e.CountryCode)
	case keyRegion:
		return jset(raw, &e.Region)
	case keyCity:
		return jset(raw, &e.City)
	case keyLat:
		return jcoord(raw, &e.Latitude, 90)
	case keyLon:
		return jcoord(raw, &e.Longitude, 180)
	case keySensor:
		return jset(raw, &e.Sensor)
	case keyZone:
		return jset(raw, &e.Zone)
	case keyCase:
		return jset(raw, &e.Case)
	case keyTag:
		return jset(raw, &e.Tag)
	case keyBotID:
		return jset(raw, &e.BotID)
	case keyMethod:
		return jset(raw, &e.HTTPMethod)
	case keyAgent:
		return jset(raw, &e.HTTPUserAgent)
	case keyTLSVersion:
		return jset(raw, &e.TLSVersion)
	case keyTLSCipher:
		return jset(raw, &e.TLSCipher)
	case keyJA4:
		return jset(raw, &e.TLSFingerprint)
	case keyQType:
		return jset(raw, &e.DNSQType)
	case keyRcode:
		return jset(raw, &e.DNSRcode)
	case keyDO:
		return jbool(raw, &e.DNSDO)
	case keyECS:
		return jset(raw, &e.DNSClientSubnet)
	case keyMalformed:
		return jbool(raw, &e.Malformed)
	case keyBytes:
		var n int64
		if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
			return fmt.Errorf("%s is not a whole number of bytes ≥ 0", quote(string(raw)))
		}
		e.Bytes = n
	case keyPayloadHash:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		if !isHexSHA256(s) {
			return fmt.Errorf("%s is not 64 lower-case hex digits", quote(s))
		}
		e.PayloadSHA256 = s
	case keyPayloadHead:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("%s is not base64", quote(s))
		}
		if len(b) > 0 {
			e.PayloadHead = b
		}
	default:
		return fmt.Errorf("unknown key")
	}
	return nil
}

func jstr(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s is not a string", quote(string(raw)))
	}
	return s, nil
}

func jset(raw json.RawMessage, dst *string) error {
	s, err := jstr(raw)
	*dst = s
	return err
}

func jconst(raw json.RawMessage, want string) error {
	s, err := jstr(raw)
	if err != nil {
		return err
	}
	if s != want {
		return fmt.Errorf("%s is not %q: takedown events are sinkhole hits", quote(s), want)
	}
	return nil
}

func jbool(raw json.RawMessage, dst *bool) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%s is not true or false", quote(string(raw)))
	}
	return nil
}

func jaddr(raw json.RawMessage, dst *netip.Addr) error {
	s, err := jstr(raw)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%s is not an IP address", quote(s))
	}
	*dst = a
	return nil
}

func juint(raw json.RawMessage, max uint64) (uint64, error) {
	var n uint64
	if err := json.Unmarshal(raw, &n); err != nil || n > max {
		return 0, fmt.Errorf("%s is not a whole number from 0 to %d", quote(string(raw)), max)
	}
	return n, nil
}

func jport(raw json.RawMessage, dst *uint16) error {
	n, err := juint(raw, math.MaxUint16)
	*dst = uint16(n)
	return err
}

func jcoord(raw json.RawMessage, dst *float64, limit float64) error {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f < -limit || f > limit {
		return fmt.Errorf("%s is not a number from %g to %g", quote(string(raw)), -limit, limit)
	}
	*dst = f
	return nil
}

// quote quotes a bad value for an error message, cut to 80 bytes.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
