package chstore

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/event"
)

// Every field of an event lands in its column as the package
// documentation says, read back with plain SQL: the IPv6 source as its
// hash and 16 bytes, the IPv4 one as its number and the mapped bytes, an
// unknown destination as zero bytes, the day of a time before 1970 as the
// first day.
func TestColumns(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	s := open(t, config(c, "takedown"))
	e := event.Event{
		Time: time.Date(2024, 5, 1, 12, 0, 1, 123456789, time.FixedZone("CEST", 2*3600)), Sensor: "sink-1",
		Protocol: event.ProtoHTTPS, Transport: event.TransportTCP,
		SrcIP: netip.MustParseAddr("2001:db8::5"), SrcPort: 40001, DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 443,
		Domain: "c2.bad.example", Zone: "bad.example", Case: "case-1", Family: "waledac", Tag: "v2", BotID: "b",
		HTTPMethod: "POST", HTTPPath: "/ü?a=1", HTTPUserAgent: "ua", HTTPReferer: "r", HTTPForwardedBy: "203.0.113.9",
		HTTPContentType: "ct", TLSVersion: "1.3", TLSCipher: "c", TLSFingerprint: "f", TLSALPN: "h2", DNSQType: "A",
		DNSRcode: "NOERROR", DNSDO: true, DNSClientSubnet: "198.51.100.0/24", SMTPHelo: "h", SMTPFrom: "f@x",
		SMTPRcptDomains: "a,b", SMTPRcptCount: 7, SMTPSubject: "Ünï", SMTPMessageID: "<m>", Error: "e", Malformed: true,
		Bytes: 1234, PayloadSHA256: "ab", PayloadHead: []byte{0, 1, 0xff}, ASN: 4294967295, ASName: "AS",
		CountryCode: "NL", Region: "NH", City: "Amsterdam", Latitude: 52.374, Longitude: -4.8897,
	}
	old := event.Event{Time: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC), SrcIP: netip.MustParseAddr("::ffff:10.1.2.3")}
	if err := s.Append(t.Context(), []event.Event{e, old}); err != nil {
		t.Fatal(err)
	}
	conn := c.Conn(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var (
		day                  time.Time
		timeNS, bytes        int64
		srcIP, batch, evHash uint64
		srcIP6, dstIP        string
		srcPort, dstPort     uint16
		dnsDO, malformed     uint8
		rcpt, asn            uint32
		lat, lon             float64
	)
	q := "SELECT day, time_ns, src_ip, src_ip6, src_port, dst_ip, dst_port, dns_do, malformed, smtp_rcpt_count, bytes, asn, latitude, longitude, batch, ev_hash FROM takedown.events WHERE time_ns = ?"
	if err := conn.QueryRow(ctx, q, e.Time.UnixNano()).Scan(&day, &timeNS, &srcIP, &srcIP6, &srcPort, &dstIP, &dstPort,
		&dnsDO, &malformed, &rcpt, &bytes, &asn, &lat, &lon, &batch, &evHash); err != nil {
		t.Fatal(err)
	}
	ip6 := e.SrcIP.As16()
	dst := netip.MustParseAddr("::ffff:192.0.2.1").As16()
	if !day.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) || timeNS != e.Time.UnixNano() ||
		srcIP&ipv6Mark == 0 || srcIP6 != string(ip6[:]) || srcPort != 40001 || dstIP != string(dst[:]) || dstPort != 443 ||
		dnsDO != 1 || malformed != 1 || rcpt != 7 || bytes != 1234 || asn != 4294967295 || lat != 52.374 || lon != -4.8897 ||
		batch != 0 || evHash == 0 {
		t.Errorf("numbers: day %v time %d src %x %x:%d dst %x:%d do %d malformed %d rcpt %d bytes %d asn %d at %v,%v batch %d hash %x",
			day, timeNS, srcIP, srcIP6, srcPort, dstIP, dstPort, dnsDO, malformed, rcpt, bytes, asn, lat, lon, batch, evHash)
	}
	if a, err := addrFrom16(srcIP6); err != nil || a != e.SrcIP {
		t.Errorf("src_ip6 reads back as %v (%v)", a, err)
	}
	if a, err := addrFrom16(dstIP); err != nil || a != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("dst_ip reads back as %v (%v)", a, err)
	}
	for _, sc := range stringColumns {
		var got string
		if err := conn.QueryRow(ctx, "SELECT "+sc.name+" FROM takedown.events WHERE time_ns = ?", e.Time.UnixNano()).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := sc.get(&e); got != want || want == "" {
			t.Errorf("%s = %q, want %q (not empty)", sc.name, got, want)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT day, src_ip, src_ip6, dst_ip FROM takedown.events WHERE time_ns = ?", old.Time.UnixNano()).Scan(&day, &srcIP, &srcIP6, &dstIP); err != nil {
		t.Fatal(err)
	}
	if !day.Equal(firstDay) || srcIP != 10<<24|1<<16|2<<8|3 || dstIP != string(make([]byte, 16)) {
		t.Errorf("old event: day %v src %x dst %x", day, srcIP, dstIP)
	}
	if a, err := addrFrom16(srcIP6); err != nil || a != netip.MustParseAddr("10.1.2.3") {
		t.Errorf("src_ip6 of an IPv4 address reads back as %v (%v)", a, err)
	}
	if a, err := addrFrom16(dstIP); err != nil || a.IsValid() {
		t.Errorf("no dst_ip reads back as %v (%v)", a, err)
	}
}

// The column list of the INSERT names every column of the table once.
func TestInsertColumns(t *testing.T) {
	seen := map[string]int{}
	for _, n := range splitComma(insertColumns) {
		seen[n]++
	}
	for _, n := range columnNames {
		if seen[n] != 1 {
			t.Errorf("column %s appears %d times in the INSERT", n, seen[n])
		}
		delete(seen, n)
	}
	for n := range seen {
		t.Errorf("the INSERT names %s, which the table lacks", n)
	}
}

func splitComma(s string) []string {
	return strings.Split(strings.ReplaceAll(s, " ", ""), ",")
}
