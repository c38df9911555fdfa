package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// The binary form of an event is what the pipeline writes to its disk spool:
// compact, cheap to write on the sinks' hot path and cheap to read back.
//
//	record  = version field*
//	version = 0x01
//	field   = tag value          (fields in any order, each at most once)
//
// Fields whose value is the zero value are left out, so a DNS query is about
// 120 bytes. The value's shape depends on the tag:
//
//	time             8 bytes of seconds since 1970 (int64) and 4 of nanoseconds,
//	                 little-endian
//	string, bytes    uvarint length, then the bytes
//	number           uvarint
//	address          1 byte length (4 or 16), then the address bytes
//	float            8 bytes, little-endian IEEE 754 bits
//	flag             nothing: its presence means true
//
// Tags are never reused; a field added to Event gets a new tag. A reader
// that meets a tag it does not know stops with an error naming it, because
// it cannot know the length of the value.
const binaryVersion = 1

const (
	tagTime byte = iota + 1
	tagSensor
	tagProtocol
	tagTransport
	tagSrcIP
	tagSrcPort
	tagDstIP
	tagDstPort
	tagDomain
	tagZone
	tagCase
	tagFamily
	tagTag
	tagBotID
	tagHTTPMethod
	tagHTTPPath
	tagHTTPUserAgent
	tagTLSVersion
	tagTLSCipher
	tagTLSFingerprint
	tagDNSQType
	tagDNSRcode
	tagDNSDO
	tagDNSClientSubnet
	tagMalformed
	tagBytes
	tagPayloadSHA256
	tagPayloadHead
	tagASN
	tagASName
	tagCountryCode
	tagRegion
	tagCity
	tagLatitude
	tagLongitude
	tagHTTPReferer
	tagHTTPForwardedBy
	tagHTTPContentType
	tagTLSALPN
	tagSMTPHelo
	tagSMTPFrom
	tagSMTPRcptDomains
	tagSMTPRcptCount
	tagSMTPSubject
	tagSMTPMessageID
	tagError
)

// AppendBinary appends the binary form of e to dst and returns the result.
// It does not allocate when dst has room.
func AppendBinary(dst []byte, e *Event) []byte {
	dst = append(dst, binaryVersion)
	if !e.Time.IsZero() {
		dst = append(dst, tagTime)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Time.Unix()))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(e.Time.Nanosecond()))
	}
	dst = appendString(dst, tagSensor, e.Sensor)
	dst = appendString(dst, tagProtocol, string(e.Protocol))
	dst = appendString(dst, tagTransport, string(e.Transport))
	dst = appendAddr(dst, tagSrcIP, e.SrcIP)
	dst = appendNumber(dst, tagSrcPort, uint64(e.SrcPort))
	dst = appendAddr(dst, tagDstIP, e.DstIP)
	dst = appendNumber(dst, tagDstPort, uint64(e.DstPort))
	dst = appendString(dst, tagDomain, e.Domain)
	dst = appendString(dst, tagZone, e.Zone)
	dst = appendString(dst, tagCase, e.Case)
	dst = appendString(dst, tagFamily, e.Family)
	dst = appendString(dst, tagTag, e.Tag)
	dst = appendString(dst, tagBotID, e.BotID)
	dst = appendString(dst, tagHTTPMethod, e.HTTPMethod)
	dst = appendString(dst, tagHTTPPath, e.HTTPPath)
	dst = appendString(dst, tagHTTPUserAgent, e.HTTPUserAgent)
	dst = appendString(dst, tagTLSVersion, e.TLSVersion)
	dst = appendString(dst, tagTLSCipher, e.TLSCipher)
	dst = appendString(dst, tagTLSFingerprint, e.TLSFingerprint)
	dst = appendString(dst, tagDNSQType, e.DNSQType)
	dst = appendString(dst, tagDNSRcode, e.DNSRcode)
	if e.DNSDO {
		dst = append(dst, tagDNSDO)
	}
	dst = appendString(dst, tagDNSClientSubnet, e.DNSClientSubnet)
	if e.Malformed {
		dst = append(dst, tagMalformed)
	}
	if e.Bytes != 0 {
		// Bytes is never negative in a valid event; a negative one is kept
		// as its two's complement so that the round trip is exact anyway.
		dst = appendNumber(dst, tagBytes, uint64(e.Bytes))
	}
	dst = appendString(dst, tagPayloadSHA256, e.PayloadSHA256)
	if len(e.PayloadHead) > 0 {
		dst = append(dst, tagPayloadHead)
		dst = binary.AppendUvarint(dst, uint64(len(e.PayloadHead)))
		dst = append(dst, e.PayloadHead...)
	}
	dst = appendNumber(dst, tagASN, uint64(e.ASN))
	dst = appendString(dst, tagASName, e.ASName)
	dst = appendString(dst, tagCountryCode, e.CountryCode)
	dst = appendString(dst, tagRegion, e.Region)
	dst = appendString(dst, tagCity, e.City)
	dst = appendFloat(dst, tagLatitude, e.Latitude)
	dst = appendFloat(dst, tagLongitude, e.Longitude)
	dst = appendString(dst, tagHTTPReferer, e.HTTPReferer)
	dst = appendString(dst, tagHTTPForwardedBy, e.HTTPForwardedBy)
	dst = appendString(dst, tagHTTPContentType, e.HTTPContentType)
	dst = appendString(dst, tagTLSALPN, e.TLSALPN)
	dst = appendString(dst, tagSMTPHelo, e.SMTPHelo)
	dst = appendString(dst, tagSMTPFrom, e.SMTPFrom)
	dst = appendString(dst, tagSMTPRcptDomains, e.SMTPRcptDomains)
	dst = appendNumber(dst, tagSMTPRcptCount, uint64(e.SMTPRcptCount))
	dst = appendString(dst, tagSMTPSubject, e.SMTPSubject)
	dst = appendString(dst, tagSMTPMessageID, e.SMTPMessageID)
	dst = appendString(dst, tagError, e.Error)
	return dst
}

func appendString(dst []byte, tag byte, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendNumber(dst []byte, tag byte, n uint64) []byte {
	if n == 0 {
		return dst
	}
	return binary.AppendUvarint(append(dst, tag), n)
}

func appendAddr(dst []byte, tag byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return dst
	case a.Is4():
		b := a.As4()
		return append(append(dst, tag, 4), b[:]...)
	default:
		b := a.As16()
		return append(append(dst, tag, 16), b[:]...)
	}
}

func appendFloat(dst []byte, tag byte, f float64) []byte {
	if f == 0 && !math.Signbit(f) {
		return dst
	}
	return binary.LittleEndian.AppendUint64(append(dst, tag), math.Float64bits(f))
}

// ErrBinaryVersion is returned for a record written by another version of
// the binary form.
var ErrBinaryVersion = errors.New("event: unknown binary version")

// Decoder reads the binary form. It keeps the strings of the fields that
// take few distinct values (protocol, family, zone, country…) and hands out
// the same string for the same bytes, so that reading a spool back does not
// allocate a new copy of them per event. A Decoder is not safe for
// concurrent use; its zero value is ready.
type Decoder struct {
	interned map[string]string
	// last is the string each tag had last: events from one sinkhole
	// repeat most of their interned fields from one record to the next,
	// and a comparison is cheaper than a lookup.
	last [64]string
}

// internLimit bounds the Decoder's table; past it the table starts over.
const internLimit = 1 << 16

func (d *Decoder) intern(tag byte, b []byte) string {
	last := &d.last[tag&63]
	if *last == string(b) {
		return *last
	}
	s, ok := d.interned[string(b)]
	if !ok {
		if d.interned == nil || len(d.interned) >= internLimit {
			d.interned = make(map[string]string, 1024)
		}
		s = string(b)
		d.interned[s] = s
	}
	*last = s
	return s
}

// Decode reads the record b into e, which it resets first. The event does
// not share memory with b. An error names the offset and the field that is
// wrong.
func (d *Decoder) Decode(b []byte, e *Event) error {
	*e = Event{}
	if len(b) == 0 {
		return errors.New("event: empty binary record")
	}
	if b[0] != binaryVersion {
		return fmt.Errorf("%w %d", ErrBinaryVersion, b[0])
	}
	var seen [64]bool
	for i := 1; i < len(b); {
		tag := b[i]
		off := i
		i++
		if int(tag) >= len(seen) {
			return fmt.Errorf("event: binary record: unknown field tag %d at offset %d", tag, off)
		}
		if seen[tag] {
			return fmt.Errorf("event: binary record: field tag %d repeated at offset %d", tag, off)
		}
		seen[tag] = true
		var err error
		switch tag {
		case tagTime:
			if len(b)-i < 12 {
				return truncated(tag, off)
			}
			ns := binary.LittleEndian.Uint32(b[i+8:])
			if ns >= 1e9 {
				return fmt.Errorf("event: binary record: nanoseconds %d out of range at offset %d", ns, off)
			}
			e.Time = time.Unix(int64(binary.LittleEndian.Uint64(b[i:])), int64(ns)).UTC()
			i += 12
		case tagDNSDO:
			e.DNSDO = true
		case tagMalformed:
			e.Malformed = true
		case tagSrcIP, tagDstIP:
			var a netip.Addr
			if i >= len(b) {
				return truncated(tag, off)
			}
			n := int(b[i])
			i++
			if (n != 4 && n != 16) || len(b)-i < n {
				return fmt.Errorf("event: binary record: bad address of field tag %d at offset %d", tag, off)
			}
			a, _ = netip.AddrFromSlice(b[i : i+n])
			i += n
			if tag == tagSrcIP {
				e.SrcIP = a
			} else {
				e.DstIP = a
			}
		case tagLatitude, tagLongitude:
			if len(b)-i < 8 {
				return truncated(tag, off)
			}
			f := math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
			i += 8
			if tag == tagLatitude {
				e.Latitude = f
			} else {
				e.Longitude = f
			}
		case tagSrcPort, tagDstPort, tagBytes, tagASN, tagSMTPRcptCount:
			n, w := binary.Uvarint(b[i:])
			if w <= 0 {
				return truncated(tag, off)
			}
			i += w
			err = d.setNumber(e, tag, n)
		default:
			n, w := binary.Uvarint(b[i:])
			if w <= 0 || n > uint64(len(b)-i-w) {
				return truncated(tag, off)
			}
			i += w
			err = d.setBytes(e, tag, b[i:i+int(n)])
			i += int(n)
		}
		if err != nil {
			return fmt.Errorf("event: binary record: %w at offset %d", err, off)
		}
	}
	return nil
}

func truncated(tag byte, off int) error {
	return fmt.Errorf("event: binary record: field tag %d at offset %d is cut short", tag, off)
}

func (d *Decoder) setNumber(e *Event, tag byte, n uint64) error {
	switch tag {
	case tagSrcPort, tagDstPort:
		if n > math.MaxUint16 {
			return fmt.Errorf("port %d is out of range", n)
		}
		if tag == tagSrcPort {
			e.SrcPort = uint16(n)
		} else {
			e.DstPort = uint16(n)
		}
	case tagBytes:
		e.Bytes = int64(n)
	case tagASN:
		if n > math.MaxUint32 {
			return fmt.Errorf("asn %d is out of range", n)
		}
		e.ASN = uint32(n)
	case tagSMTPRcptCount:
		if n > math.MaxUint32 {
			return fmt.Errorf("recipient count %d is out of range", n)
		}
		e.SMTPRcptCount = uint32(n)
	}
	return nil
}

func (d *Decoder) setBytes(e *Event, tag byte, v []byte) error {
	switch tag {
	case tagSensor:
		e.Sensor = d.intern(tag, v)
	case tagProtocol:
		e.Protocol = Protocol(d.intern(tag, v))
	case tagTransport:
		e.Transport = Transport(d.intern(tag, v))
	case tagDomain:
		e.Domain = string(v)
	case tagZone:
		e.Zone = d.intern(tag, v)
	case tagCase:
		e.Case = d.intern(tag, v)
	case tagFamily:
		e.Family = d.intern(tag, v)
	case tagTag:
		e.Tag = d.intern(tag, v)
	case tagBotID:
		e.BotID = string(v)
	case tagHTTPMethod:
		e.HTTPMethod = d.intern(tag, v)
	case tagHTTPPath:
		e.HTTPPath = string(v)
	case tagHTTPUserAgent:
		e.HTTPUserAgent = d.intern(tag, v)
	case tagTLSVersion:
		e.TLSVersion = d.intern(tag, v)
	case tagTLSCipher:
		e.TLSCipher = d.intern(tag, v)
	case tagTLSFingerprint:
		e.TLSFingerprint = d.intern(tag, v)
	case tagDNSQType:
		e.DNSQType = d.intern(tag, v)
	case tagDNSRcode:
		e.DNSRcode = d.intern(tag, v)
	case tagDNSClientSubnet:
		e.DNSClientSubnet = string(v)
	case tagPayloadSHA256:
		e.PayloadSHA256 = string(v)
	case tagPayloadHead:
		if len(v) > 0 {
			e.PayloadHead = append([]byte(nil), v...)
		}
	case tagASName:
		e.ASName = d.intern(tag, v)
	case tagCountryCode:
		e.CountryCode = d.intern(tag, v)
	case tagRegion:
		e.Region = d.intern(tag, v)
	case tagCity:
		e.City = d.intern(tag, v)
	case tagHTTPReferer:
		e.HTTPReferer = string(v)
	case tagHTTPForwardedBy:
		e.HTTPForwardedBy = string(v)
	case tagHTTPContentType:
		e.HTTPContentType = d.intern(tag, v)
	case tagTLSALPN:
		e.TLSALPN = d.intern(tag, v)
	case tagSMTPHelo:
		e.SMTPHelo = d.intern(tag, v)
	case tagSMTPFrom:
		e.SMTPFrom = string(v)
	case tagSMTPRcptDomains:
		e.SMTPRcptDomains = string(v)
	case tagSMTPSubject:
		e.SMTPSubject = string(v)
	case tagSMTPMessageID:
		e.SMTPMessageID = string(v)
	case tagError:
		e.Error = d.intern(tag, v)
	default:
		return fmt.Errorf("unknown field tag %d", tag)
	}
	return nil
}
