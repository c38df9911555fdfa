package event

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func FuzzJSONDecode(f *testing.F) {
	for _, name := range caseNames {
		e := cases()[name]
		f.Add(AppendJSON(nil, &e))
	}
	for _, s := range []string{
		`{"source.ip":"300.1.1.1"}`,
		`{"extra.payload_head":"AAEC","source.geolocation.longitude":-0.0,"source.geolocation.latitude":1E-2}`,
		`{"source\u002eip":"::1","malware.name":"\ud83e\udda0\ud800x\u00"}`,
		`{"malware.name":"a","classification.identifier":"a","feed.name":"x"}`,
		`{"malware.name":[1,{"a":"}"}]}`,
		`{"source.port":65535,"source.asn":4294967295,"extra.bytes":9223372036854775807}`,
		`{"time.source":"0000-01-01T00:00:00.999999999-23:59"}`,
		`{"time.source":"9999-12-31T23:59:59+00:00"}`,
		`{"source.ip":"fe80::1%eth0"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeJSON(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		again := AppendJSON(nil, &e)
		if !json.Valid(again) {
			t.Fatalf("wrote invalid JSON %s", again)
		}
		e2, err := DecodeJSON(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", e2, e)
		}
	})
}

func FuzzCSVDecode(f *testing.F) {
	// One event a seed: large inputs make the engine's minimisation slow.
	for _, name := range caseNames {
		var buf bytes.Buffer
		w := NewCSVWriter(&buf)
		e := cases()[name]
		w.Write(&e)
		w.Flush()
		f.Add(buf.Bytes())
	}
	for _, s := range []string{
		"infection,ip\nwaledac,1.2.3.4\n",
		"family,infection\nnew,old\n",
		"ip,port\n1.2.3.4,http\n",
		"\ufeff latitude ,longitude\r\n-0,0x1p-2\r\nNaN,Inf\r\n",
		"timestamp,bytes,asn\n2010-02-25T14:55:00.5+01:00,+7,0080\n",
		"http_agent,hostname\n\"a\r\nb\",\"x,\"\"y\"\"\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewCSVReader(bytes.NewReader(data), "f.csv")
		for range 100 {
			e, err := r.Read()
			if err != nil {
				return
			}
			var out bytes.Buffer
			w := NewCSVWriter(&out)
			if err := w.Write(&e); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			e2, err := NewCSVReader(&out, "again.csv").Read()
			if err != nil {
				t.Fatalf("re-encoded event does not decode: %v\n%s", err, out.Bytes())
			}
			if !reflect.DeepEqual(e, e2) {
				t.Fatalf("round trip\n got %+v\nwant %+v", e2, e)
			}
		}
	})
}

// FuzzRoundTrip builds events from fuzzed fields and checks that both
// encodings give them back.
func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(1267106100123456789), "198.51.100.7", uint16(49152), "2001:db8::1", uint16(80), "waledac", "POST /\x00", "Mozilla,\"x\"", "Zürich", 47.37, 8.54, []byte{0, 1, 2}, int64(10), uint32(64500), true)
	f.Add(int64(1), "::ffff:1.2.3.4", uint16(0), "", uint16(0), "", "", "", "", 0.0, -0.0, []byte(nil), int64(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, ns int64, src string, sport uint16, dst string, dport uint16, family, path, agent, city string, lat, lon float64, head []byte, n int64, asn uint32, do bool) {
		sa, err := netip.ParseAddr(src)
		if err != nil || ns == 0 || n < 0 {
			return
		}
		da, _ := netip.ParseAddr(dst) // the zero Addr when not an address
		if math.IsNaN(lat) || math.IsNaN(lon) || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
			return
		}
		if lat == 0 && lon == 0 {
			lat, lon = 0, 0 // -0 is not kept: it is "unknown" as 0 is
		}
		// Invalid UTF-8 is replaced in JSON; encoding/csv reads CR LF as LF.
		clean := func(s string) string { return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\r", "") }
		e := Event{
			Time: time.Unix(0, ns).UTC(), Protocol: ProtoHTTP, Transport: TransportTCP,
			SrcIP: sa, SrcPort: sport, DstIP: da, DstPort: dport,
			Family: clean(family), HTTPPath: clean(path), HTTPUserAgent: clean(agent), City: clean(city),
			Latitude: lat, Longitude: lon, Bytes: n, ASN: asn, DNSDO: do,
		}
		if len(head) > 0 {
			e.PayloadHead = head
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("fuzzed event invalid: %v", err)
		}
		got, err := DecodeJSON(AppendJSON(nil, &e))
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("json: %v\n got %+v\nwant %+v", err, got, e)
		}
		var buf bytes.Buffer
		w := NewCSVWriter(&buf)
		w.Write(&e)
		w.Flush()
		got, err = NewCSVReader(&buf, "f.csv").Read()
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("csv: %v\n got %+v\nwant %+v\n%s", err, got, e, buf.String())
		}
	})
}
