package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The JSON encoding is one flat object per event with the key names of
// IntelMQ's harmonisation, which abuse desks and IntelMQ bots parse as they
// are; fields IntelMQ has no key for go under "extra.". Keys whose value is
// the zero value are left out, so an empty PayloadHead decodes as nil, and
// the coordinates are written only when HasGeo (both of them then, so that
// a latitude or longitude of 0 survives).
const (
	// FeedName is the feed.name of every exported event.
	FeedName = "takedown-sinkhole"
	// ClassificationTaxonomy and ClassificationType are IntelMQ's
	// classification of a sinkhole hit; DecodeJSON accepts no other.
	ClassificationTaxonomy = "malicious-code"
	ClassificationType     = "infected-system"
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
	keyReferer     = "extra.http_referer"
	keyForwarded   = "extra.forwarded_by"
	keyContentType = "extra.content_type"
	keyALPN        = "extra.tls_alpn"
	keyHelo        = "extra.smtp_helo"
	keyMailFrom    = "extra.smtp_mail_from"
	keyRcptDomains = "extra.smtp_rcpt_domains"
	keyRcptCount   = "extra.smtp_rcpt_count"
	keySubject     = "extra.smtp_subject"
	keyMessageID   = "extra.smtp_message_id"
	keyError       = "extra.error"
)

// AppendJSON appends the JSON object of e to dst, without a newline.
// DecodeJSON gives back every event that passes Validate, with two
// exceptions: strings that are not valid UTF-8 are written with U+FFFD in
// place of the bad bytes, and coordinates that are not finite numbers are
// left out.
func AppendJSON(dst []byte, e *Event) []byte {
	w := jsonWriter{b: append(dst, '{')}
	if !e.Time.IsZero() {
		w.key(keyTime)
		w.b = append(w.b, '"')
		w.b = e.Time.UTC().AppendFormat(w.b, time.RFC3339Nano)
		w.b = append(w.b, '"')
	}
	w.str(keyFeed, FeedName)
	w.str(keyTaxonomy, ClassificationTaxonomy)
	w.str(keyType, ClassificationType)
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
	w.str(keyReferer, e.HTTPReferer)
	w.str(keyForwarded, e.HTTPForwardedBy)
	w.str(keyContentType, e.HTTPContentType)
	w.str(keyTLSVersion, e.TLSVersion)
	w.str(keyTLSCipher, e.TLSCipher)
	w.str(keyJA4, e.TLSFingerprint)
	w.str(keyALPN, e.TLSALPN)
	w.str(keyHelo, e.SMTPHelo)
	w.str(keyMailFrom, e.SMTPFrom)
	w.str(keyRcptDomains, e.SMTPRcptDomains)
	w.uint(keyRcptCount, uint64(e.SMTPRcptCount))
	w.str(keySubject, e.SMTPSubject)
	w.str(keyMessageID, e.SMTPMessageID)
	w.str(keyError, e.Error)
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
	w.b = AppendJSONString(w.b, v)
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

// AppendJSONString appends s as a JSON string; bytes that are not UTF-8
// become U+FFFD, as encoding/json writes them.
func AppendJSONString(b []byte, s string) []byte {
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

// jsonKeys lists every key DecodeJSON knows, to tell repeated keys apart.
var jsonKeys = []string{
	keyTime, keyFeed, keyTaxonomy, keyType, keyIdentifier, keyMalware, keyProtocol, keyTransport,
	keySrcIP, keySrcPort, keyDstIP, keyDstPort, keyFQDN, keyURLPath, keyASN, keyASName,
	keyCC, keyRegion, keyCity, keyLat, keyLon, keySensor, keyZone, keyCase, keyTag, keyBotID,
	keyMethod, keyAgent, keyTLSVersion, keyTLSCipher, keyJA4, keyQType, keyRcode, keyDO, keyECS,
	keyMalformed, keyBytes, keyPayloadHash, keyPayloadHead, keyReferer, keyForwarded, keyContentType,
	keyALPN, keyHelo, keyMailFrom, keyRcptDomains, keyRcptCount, keySubject, keyMessageID, keyError,
}

var jsonKeyIndex = func() map[string]int {
	m := make(map[string]int, len(jsonKeys))
	for i, k := range jsonKeys {
		m[k] = i
	}
	return m
}()

// DecodeJSON decodes one event object as AppendJSON writes it. Keys may come
// in any order. An unknown or repeated key, a value of the wrong type or out
// of range, or a classification other than a sinkhole hit's is an error that
// names the key and quotes the value. Times are returned in UTC; strings that
// are not valid UTF-8 have U+FFFD in place of the bad bytes, as with
// encoding/json.
func DecodeJSON(data []byte) (Event, error) {
	var (
		e          Event
		identifier string
		seen       [64]bool
	)
	p := jsonParser{b: data}
	p.ws()
	if !p.eat('{') {
		v, err := p.value()
		if err != nil {
			return Event{}, fmt.Errorf("event json: %w", err)
		}
		return Event{}, fmt.Errorf("event json: want an object, got %s", cut(string(v)))
	}
	p.ws()
	if !p.eat('}') {
		for {
			p.ws()
			rawKey, err := p.str()
			if err != nil {
				return Event{}, fmt.Errorf("event json: object key: %w", err)
			}
			p.ws()
			if !p.eat(':') {
				return Event{}, fmt.Errorf("event json: %w", p.syntax("':' after object key"))
			}
			p.ws()
			raw, err := p.value()
			if err != nil {
				return Event{}, fmt.Errorf("event json: %w", err)
			}
			k, idx := lookupKey(rawKey)
			if idx < 0 {
				return Event{}, fmt.Errorf("event json: key %s: unknown key", cut(k))
			}
			if seen[idx] {
				return Event{}, fmt.Errorf("event json: key %q: given twice", k)
			}
			seen[idx] = true
			if err := decodeKey(&e, k, raw, &identifier); err != nil {
				return Event{}, fmt.Errorf("event json: key %q: %w", k, err)
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				break
			}
			return Event{}, fmt.Errorf("event json: %w", p.syntax("',' or '}' after object value"))
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return Event{}, fmt.Errorf("event json: data after the object: %s", cut(string(p.b[p.i:])))
	}
	if e.Family == "" {
		e.Family = identifier
	} else if identifier != "" && identifier != e.Family {
		return Event{}, fmt.Errorf("event json: key %q: %s differs from malware.name %s", keyIdentifier, cut(identifier), cut(e.Family))
	}
	return e, nil
}

// lookupKey returns the key named by the JSON string rawKey and its index in
// jsonKeys, or -1 when the key is unknown.
func lookupKey(rawKey []byte) (string, int) {
	name := rawKey[1 : len(rawKey)-1]
	if idx, ok := jsonKeyIndex[string(name)]; ok { // no allocation
		return jsonKeys[idx], idx
	}
	var k string
	if err := json.Unmarshal(rawKey, &k); err != nil {
		k = string(name)
	}
	if idx, ok := jsonKeyIndex[k]; ok { // a key written with escapes
		return jsonKeys[idx], idx
	}
	return k, -1
}

func decodeKey(e *Event, k string, raw []byte, identifier *string) error {
	switch k {
	case keyTime:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%s is not an RFC 3339 time", cut(s))
		}
		e.Time = t.UTC()
	case keyFeed:
		_, err := jstr(raw) // any feed: events pass through IntelMQ bots
		return err
	case keyTaxonomy:
		return jconst(raw, ClassificationTaxonomy)
	case keyType:
		return jconst(raw, ClassificationType)
	case keyIdentifier:
		return jset(raw, identifier)
	case keyMalware:
		return jset(raw, &e.Family)
	case keyProtocol:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		if !Protocol(s).Valid() {
			return fmt.Errorf("%s is not one of dns, http, https, smtp, tcp, udp", cut(s))
		}
		e.Protocol = Protocol(s)
	case keyTransport:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		if s != string(TransportTCP) && s != string(TransportUDP) {
			return fmt.Errorf("%s is not tcp or udp", cut(s))
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
	case keyRcptCount:
		n, err := juint(raw, math.MaxUint32)
		e.SMTPRcptCount = uint32(n)
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
	case keyReferer:
		return jset(raw, &e.HTTPReferer)
	case keyForwarded:
		return jset(raw, &e.HTTPForwardedBy)
	case keyContentType:
		return jset(raw, &e.HTTPContentType)
	case keyALPN:
		return jset(raw, &e.TLSALPN)
	case keyHelo:
		return jset(raw, &e.SMTPHelo)
	case keyMailFrom:
		return jset(raw, &e.SMTPFrom)
	case keyRcptDomains:
		return jset(raw, &e.SMTPRcptDomains)
	case keySubject:
		return jset(raw, &e.SMTPSubject)
	case keyMessageID:
		return jset(raw, &e.SMTPMessageID)
	case keyError:
		return jset(raw, &e.Error)
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
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%s is not a whole number of bytes ≥ 0", rawq(raw))
		}
		e.Bytes = n
	case keyPayloadHash:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		if !isHexSHA256(s) {
			return fmt.Errorf("%s is not 64 lower-case hex digits", cut(s))
		}
		e.PayloadSHA256 = s
	case keyPayloadHead:
		s, err := jstr(raw)
		if err != nil {
			return err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("%s is not base64", cut(s))
		}
		if len(b) > 0 {
			e.PayloadHead = b
		}
	default:
		return fmt.Errorf("unknown key")
	}
	return nil
}

// jstr returns the string that raw, a JSON value, holds.
func jstr(raw []byte) (string, error) {
	if raw[0] != '"' {
		return "", fmt.Errorf("%s is not a string", rawq(raw))
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return string(body), nil // p.str has checked for control characters
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s is not a string", rawq(raw))
	}
	return s, nil
}

func jset(raw []byte, dst *string) error {
	s, err := jstr(raw)
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

func jconst(raw []byte, want string) error {
	s, err := jstr(raw)
	if err != nil {
		return err
	}
	if s != want {
		return fmt.Errorf("%s is not %q: takedown events are sinkhole hits", cut(s), want)
	}
	return nil
}

func jbool(raw []byte, dst *bool) error {
	switch string(raw) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return fmt.Errorf("%s is not true or false", rawq(raw))
	}
	return nil
}

func jaddr(raw []byte, dst *netip.Addr) error {
	s, err := jstr(raw)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%s is not an IP address", cut(s))
	}
	*dst = a
	return nil
}

func juint(raw []byte, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%s is not a whole number from 0 to %d", rawq(raw), max)
	}
	return n, nil
}

func jport(raw []byte, dst *uint16) error {
	n, err := juint(raw, math.MaxUint16)
	if err != nil {
		return err
	}
	*dst = uint16(n)
	return nil
}

func jcoord(raw []byte, dst *float64, limit float64) error {
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !isJSONNumber(raw) || !(f >= -limit && f <= limit) {
		return fmt.Errorf("%s is not a number from %g to %g", rawq(raw), -limit, limit)
	}
	if f == 0 {
		f = 0 // no -0: it would not survive HasGeo
	}
	*dst = f
	return nil
}

// rawq quotes a JSON value for an error message: a string by its content,
// anything else by its text.
func rawq(raw []byte) string {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return cut(s)
		}
	}
	return cut(string(raw))
}

// cut quotes a bad value for an error message, cut to about 80 bytes.
func cut(s string) string {
	const max = 80
	if len(s) > max {
		i := max
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
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

// jsonParser splits a flat JSON object into raw keys and values, checking
// the grammar of RFC 8259 as it goes, without allocating.
type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) syntax(want string) error {
	if p.i >= len(p.b) {
		return fmt.Errorf("offset %d: want %s, got the end of the input", p.i, want)
	}
	return fmt.Errorf("offset %d: want %s, got %s", p.i, want, strconv.QuoteRune(rune(p.b[p.i])))
}

// value returns the next JSON value: a string, number, literal, or a
// nested object or array (which no key of an event accepts).
func (p *jsonParser) value() ([]byte, error) {
	if p.i >= len(p.b) {
		return nil, p.syntax("a value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		for p.i < len(p.b) && strings.IndexByte("+-.0123456789eE", p.b[p.i]) >= 0 {
			p.i++
		}
		if !isJSONNumber(p.b[start:p.i]) {
			p.i = start
			return nil, p.syntax("a number")
		}
		return p.b[start:p.i], nil
	case c == '{' || c == '[':
		start := p.i
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '"':
				if _, err := p.str(); err != nil {
					return nil, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			p.i++
			if depth == 0 {
				v := p.b[start:p.i]
				if !json.Valid(v) {
					p.i = start
					return nil, p.syntax("a valid object or array")
				}
				return v, nil
			}
		}
		return nil, p.syntax("the end of the object or array")
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
				p.i += len(lit)
				return p.b[p.i-len(lit) : p.i], nil
			}
		}
		return nil, p.syntax("a value")
	}
}

// str returns the next JSON string, quotes included.
func (p *jsonParser) str() ([]byte, error) {
	if !p.eat('"') {
		return nil, p.syntax("a string")
	}
	start := p.i - 1
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start:p.i], nil
		case c < 0x20:
			return nil, p.syntax("no control character in a string")
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return nil, p.syntax("an escape")
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				p.i++
				for range 4 {
					if p.i >= len(p.b) || !isHexDigit(p.b[p.i]) {
						return nil, p.syntax("four hex digits after \\u")
					}
					p.i++
				}
			default:
				return nil, p.syntax("an escape")
			}
		default:
			p.i++
		}
	}
	return nil, p.syntax("the end of the string")
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isJSONNumber reports whether b is a number in the grammar of RFC 8259:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(b []byte) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(b)
}
