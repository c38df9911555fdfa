package event

import (
	"bytes"
	"io"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzJSONDecode(f *testing.F) {
	for _, e := range cases() {
		f.Add(AppendJSON(nil, &e))
	}
	f.Add([]byte(`{"source.ip":"300.1.1.1"}`))
	f.Add([]byte(`{"extra.payload_head":"AAEC","source.geolocation.longitude":-0.0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeJSON(data)
		if err != nil {
			return
		}
		again := AppendJSON(nil, &e)
		e2, err := DecodeJSON(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, again)
		}
		if !validStrings(&e) {
			return // invalid UTF-8 is replaced on encode
		}
		if !equalEvents(e, e2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", e2, e)
		}
	})
}

func FuzzCSVDecode(f *testing.F) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	for _, e := range cases() {
		w.Write(&e)
	}
	w.Flush()
	f.Add(buf.Bytes())
	f.Add([]byte("infection,ip\nwaledac,1.2.3.4\n"))
	f.Add([]byte("ip,port\n1.2.3.4,http\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewCSVReader(bytes.NewReader(data), "f.csv")
		for i := 0; i < 100; i++ {
			e, err := r.Read()
			if err != nil {
				return
			}
			var out bytes.Buffer
			w := NewCSVWriter(&out)
			if err := w.Write(&e); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			e2, err := NewCSVReader(&out, "again.csv").Read()
			if err != nil {
				t.Fatalf("re-encoded event does not decode: %v\n%s", err, out.Bytes())
			}
			if !equalEvents(e, e2) {
				t.Fatalf("round trip\n got %+v\nwant %+v", e2, e)
			}
		}
	})
}

// FuzzRoundTrip builds events from fuzzed fields and checks that both
// encodings give them back.
func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(1267106100123456789), "198.51.100.7", uint16(49152), "waledac", "POST /\x00", "Mozilla,\"x\"", 47.37, 8.54, []byte{0, 1, 2}, int64(10), uint32(64500))
	f.Add(int64(1), "2001:db8::1", uint16(0), "", "", "", 0.0, 0.0, []byte(nil), int64(0), uint32(0))
	f.Fuzz(func(t *testing.T, ns int64, ip string, port uint16, family, path, agent string, lat, lon float64, head []byte, n int64, asn uint32) {
		a, err := netip.ParseAddr(ip)
		if err != nil || ns == 0 || n < 0 {
			return
		}
		if math.IsNaN(lat) || math.IsNaN(lon) || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
			return
		}
		clean := func(s string) string { return strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\r", "") }
		e := Event{
			Time: time.Unix(0, ns).UTC(), Protocol: ProtoHTTP, Transport: TransportTCP,
			SrcIP: a, SrcPort: port, Family: clean(family), HTTPPath: clean(path), HTTPUserAgent: clean(agent),
			Latitude: lat, Longitude: lon, Bytes: n, ASN: asn,
		}
		if len(head) > 0 {
			e.PayloadHead = head
		}
		got, err := DecodeJSON(AppendJSON(nil, &e))
		if err != nil || !equalEvents(got, e) {
			t.Fatalf("json: %v\n got %+v\nwant %+v", err, got, e)
		}
		var buf bytes.Buffer
		w := NewCSVWriter(&buf)
		w.Write(&e)
		w.Flush()
		got, err = NewCSVReader(&buf, "f.csv").Read()
		if err != nil && err != io.EOF || !equalEvents(got, e) {
			t.Fatalf("csv: %v\n got %+v\nwant %+v\n%s", err, got, e, buf.String())
		}
	})
}

// equalEvents compares events, taking -0 and 0 as one coordinate.
func equalEvents(a, b Event) bool {
	if a.Latitude == b.Latitude {
		a.Latitude = b.Latitude
	}
	if a.Longitude == b.Longitude {
		a.Longitude = b.Longitude
	}
	return reflect.DeepEqual(a, b)
}

func validStrings(e *Event) bool {
	for _, s := range []string{e.Sensor, e.Domain, e.Zone, e.Case, e.Family, e.Tag, e.BotID, e.HTTPMethod, e.HTTPPath,
		e.HTTPUserAgent, e.TLSVersion, e.TLSCipher, e.TLSFingerprint, e.DNSQType, e.DNSRcode, e.DNSClientSubnet,
		e.ASName, e.CountryCode, e.Region, e.City} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
