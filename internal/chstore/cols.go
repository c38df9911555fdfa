package chstore

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/takedown-project/takedown/internal/event"
)

// stringColumns are the String columns of events and the fields they
// hold, in the order of insertColumns after the others.
var stringColumns = []struct {
	name string
	get  func(e *event.Event) string
}{
	{"sensor", func(e *event.Event) string { return e.Sensor }},
	{"protocol", func(e *event.Event) string { return string(e.Protocol) }},
	{"transport", func(e *event.Event) string { return string(e.Transport) }},
	{"domain", func(e *event.Event) string { return e.Domain }},
	{"zone", func(e *event.Event) string { return e.Zone }},
	{"case_name", func(e *event.Event) string { return e.Case }},
	{"family", func(e *event.Event) string { return e.Family }},
	{"tag", func(e *event.Event) string { return e.Tag }},
	{"bot_id", func(e *event.Event) string { return e.BotID }},
	{"http_method", func(e *event.Event) string { return e.HTTPMethod }},
	{"http_path", func(e *event.Event) string { return e.HTTPPath }},
	{"http_user_agent", func(e *event.Event) string { return e.HTTPUserAgent }},
	{"http_referer", func(e *event.Event) string { return e.HTTPReferer }},
	{"forwarded_by", func(e *event.Event) string { return e.HTTPForwardedBy }},
	{"content_type", func(e *event.Event) string { return e.HTTPContentType }},
	{"tls_version", func(e *event.Event) string { return e.TLSVersion }},
	{"tls_cipher", func(e *event.Event) string { return e.TLSCipher }},
	{"tls_fingerprint", func(e *event.Event) string { return e.TLSFingerprint }},
	{"tls_alpn", func(e *event.Event) string { return e.TLSALPN }},
	{"dns_qtype", func(e *event.Event) string { return e.DNSQType }},
	{"dns_rcode", func(e *event.Event) string { return e.DNSRcode }},
	{"dns_client_subnet", func(e *event.Event) string { return e.DNSClientSubnet }},
	{"smtp_helo", func(e *event.Event) string { return e.SMTPHelo }},
	{"smtp_from", func(e *event.Event) string { return e.SMTPFrom }},
	{"smtp_rcpt_domains", func(e *event.Event) string { return e.SMTPRcptDomains }},
	{"smtp_subject", func(e *event.Event) string { return e.SMTPSubject }},
	{"smtp_message_id", func(e *event.Event) string { return e.SMTPMessageID }},
	{"error", func(e *event.Event) string { return e.Error }},
	{"payload_sha256", func(e *event.Event) string { return e.PayloadSHA256 }},
	{"payload_head", func(e *event.Event) string { return string(e.PayloadHead) }},
	{"as_name", func(e *event.Event) string { return e.ASName }},
	{"country_code", func(e *event.Event) string { return e.CountryCode }},
	{"region", func(e *event.Event) string { return e.Region }},
	{"city", func(e *event.Event) string { return e.City }},
}

// insertColumns names the columns of an INSERT into events, in the order
// cols.appendTo hands them over.
var insertColumns = func() string {
	names := []string{"day", "time_ns", "src_ip", "src_ip6", "src_port", "dst_ip", "dst_port",
		"dns_do", "malformed", "smtp_rcpt_count", "bytes", "asn", "latitude", "longitude", "batch", "ev_hash"}
	for _, c := range stringColumns {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}()

// cols are the values of rows to insert, a slice per column: the driver
// takes a column at a time.
type cols struct {
	day                  []time.Time
	timeNS, bytes        []int64
	srcIP, batch, evHash []uint64
	srcIP6, dstIP        []string
	srcPort, dstPort     []uint16
	dnsDO, malformed     []uint8
	rcptCount, asn       []uint32
	latitude, longitude  []float64
	// evs are the rows' events: their strings go to the driver a column
	// at a time through str, one array of pointers for the GC to scan
	// rather than one per column.
	evs []*event.Event
	str []string
}

// reset empties c, keeping its arrays: a Store reuses one cols for every
// INSERT, so that a batch's columns do not grow from nothing each time
// (growing them was half of an append's CPU).
func (c *cols) reset() {
	c.day, c.timeNS, c.bytes = c.day[:0], c.timeNS[:0], c.bytes[:0]
	c.srcIP, c.batch, c.evHash = c.srcIP[:0], c.batch[:0], c.evHash[:0]
	c.srcIP6, c.dstIP = c.srcIP6[:0], c.dstIP[:0]
	c.srcPort, c.dstPort = c.srcPort[:0], c.dstPort[:0]
	c.dnsDO, c.malformed = c.dnsDO[:0], c.malformed[:0]
	c.rcptCount, c.asn = c.rcptCount[:0], c.asn[:0]
	c.latitude, c.longitude = c.latitude[:0], c.longitude[:0]
	clear(c.evs) // let the events go
	c.evs = c.evs[:0]
}

func (c *cols) add(e *event.Event, day time.Time, batch, hash uint64) {
	ip, ip6 := srcIPValues(e.SrcIP)
	c.day = append(c.day, day)
	c.timeNS = append(c.timeNS, e.Time.UnixNano())
	c.srcIP = append(c.srcIP, ip)
	c.srcIP6 = append(c.srcIP6, ip6)
	c.srcPort = append(c.srcPort, e.SrcPort)
	c.dstIP = append(c.dstIP, addr16(e.DstIP))
	c.dstPort = append(c.dstPort, e.DstPort)
	c.dnsDO = append(c.dnsDO, flag(e.DNSDO))
	c.malformed = append(c.malformed, flag(e.Malformed))
	c.rcptCount = append(c.rcptCount, e.SMTPRcptCount)
	c.bytes = append(c.bytes, e.Bytes)
	c.asn = append(c.asn, e.ASN)
	c.latitude = append(c.latitude, e.Latitude)
	c.longitude = append(c.longitude, e.Longitude)
	c.batch = append(c.batch, batch)
	c.evHash = append(c.evHash, hash)
	c.evs = append(c.evs, e)
}

// appendTo hands the columns to b, in the order of insertColumns.
func (c *cols) appendTo(b driver.Batch) error {
	vals := []any{c.day, c.timeNS, c.srcIP, c.srcIP6, c.srcPort, c.dstIP, c.dstPort,
		c.dnsDO, c.malformed, c.rcptCount, c.bytes, c.asn, c.latitude, c.longitude, c.batch, c.evHash}
	for i, v := range vals {
		if err := b.Column(i).Append(v); err != nil {
			return fmt.Errorf("column %d of events: %w", i, err)
		}
	}
	for j, sc := range stringColumns {
		c.str = c.str[:0]
		for _, e := range c.evs {
			c.str = append(c.str, sc.get(e))
		}
		if err := b.Column(len(vals) + j).Append(c.str); err != nil {
			return fmt.Errorf("column %s of events: %w", sc.name, err)
		}
	}
	clear(c.str)
	return nil
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// Source addresses are two columns:
//
//	src_ip  UInt64           IPv4: the 32-bit number of the address.
//	                         IPv6: a 64-bit hash of it with the top bit set
//	                         (the DuckDB engine's hash, internal/store/ip.go).
//	src_ip6 FixedString(16)  the 16 bytes of the address, IPv4 as
//	                         ::ffff:a.b.c.d.
//
// src_ip is what the counts count (distinct 64-bit integers); src_ip6
// orders every address, IPv4 and IPv6, as bytes, so that a CIDR scope is
// a range of src_ip6. dst_ip is 16 bytes too, all zero when unknown.

// ipv6Mark is set in src_ip for IPv6 hosts; IPv4 numbers never reach it.
const ipv6Mark = 1 << 63

// srcIPValues returns the values of src_ip and src_ip6 for a.
func srcIPValues(a netip.Addr) (uint64, string) {
	a = a.Unmap().WithZone("")
	b16 := netip.AddrFrom16(a.As16()).As16()
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])), string(b16[:])
	}
	hi, lo := binary.BigEndian.Uint64(b16[:8]), binary.BigEndian.Uint64(b16[8:])
	return ipv6Hash(hi, lo) | ipv6Mark, string(b16[:])
}

// addr16 returns the 16 bytes of a (IPv4 mapped), all zero when a is not
// valid.
func addr16(a netip.Addr) string {
	var b [16]byte
	if a.IsValid() {
		b = a.Unmap().As16()
	}
	return string(b[:])
}

// addrFrom16 reads back what addr16 and srcIPValues stored: an IPv4-mapped
// address as the IPv4 address, all zero as no address.
func addrFrom16(s string) (netip.Addr, error) {
	if len(s) != 16 {
		return netip.Addr{}, fmt.Errorf("address of %d bytes, want 16", len(s))
	}
	var b [16]byte
	copy(b[:], s)
	if b == ([16]byte{}) {
		return netip.Addr{}, nil
	}
	return netip.AddrFrom16(b).Unmap(), nil
}

// ipv6Hash mixes the two halves of an IPv6 address with the finaliser of
// SplitMix64: the DuckDB engine's (internal/store/ip.go), so that both
// engines count the same. It must never change: stored rows depend on it.
func ipv6Hash(hi, lo uint64) uint64 {
	return mix64(hi ^ mix64(lo^0x9e3779b97f4a7c15))
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
