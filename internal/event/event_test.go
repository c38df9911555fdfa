package event

import (
	"bytes"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func full() Event {
	return Event{
		Time:     time.Date(2010, 2, 25, 13, 55, 0, 123456789, time.UTC),
		Sensor:   "fra-1",
		Protocol: ProtoHTTP, Transport: TransportTCP,
		SrcIP: netip.MustParseAddr("198.51.100.7"), SrcPort: 49152,
		DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 80,
		Domain: "partystore.com", Zone: "partystore.com", Case: "waledac-2010",
		Family: "waledac", Tag: "v2", BotID: "a1b2c3",
		HTTPMethod: "POST", HTTPPath: "/index.php?x=1&y=\"2\"", HTTPUserAgent: "Mozilla/4.0 (compatible; MSIE 7.0)",
		TLSVersion: "1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", TLSFingerprint: "t13d1516h2_8daaf6152771_e5627efa2ab1",
		DNSQType: "A", DNSRcode: "NOERROR", DNSDO: true, DNSClientSubnet: "198.51.100.0/24", Malformed: true,
		Bytes:         1234,
		PayloadSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		PayloadHead:   []byte("POST /\x00\x01,\"\n\r\xff"),
		ASN:           64500, ASName: "EXAMPLE-NET, Inc.", CountryCode: "DE", Region: "Baden-Württemberg", City: "Zürich \"Nord\"",
		Latitude: 47.3769, Longitude: 8.5417,
	}
}

func cases() map[string]Event {
	minimal := Event{Time: time.Unix(0, 1).UTC(), Protocol: ProtoDNS, SrcIP: netip.MustParseAddr("127.0.0.1")}
	v6 := full()
	v6.SrcIP = netip.MustParseAddr("2001:db8::1")
	v6.DstIP = netip.MustParseAddr("::ffff:192.0.2.1")
	v6.Protocol = ProtoSMTP
	geoZeroLat := full()
	geoZeroLat.Latitude = 0
	geoZeroLat.Longitude = -0.1275
	noGeo := full()
	noGeo.Latitude, noGeo.Longitude = 0, 0
	unicode := full()
	unicode.City = "東京"
	unicode.HTTPUserAgent = "tab\there, newline\nthere, ünïcødé 🦠"
	return map[string]Event{"full": full(), "minimal": minimal, "ipv6": v6, "zero latitude": geoZeroLat, "no geo": noGeo, "unicode": unicode}
}

func TestJSONRoundTrip(t *testing.T) {
	for name, e := range cases() {
		t.Run(name, func(t *testing.T) {
			data := AppendJSON(nil, &e)
			got, err := DecodeJSON(data)
			if err != nil {
				t.Fatalf("decode %s: %v", data, err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("round trip\n got %+v\nwant %+v\njson %s", got, e, data)
			}
		})
	}
}

func TestJSONNames(t *testing.T) {
	e := full()
	data := string(AppendJSON(nil, &e))
	for _, want := range []string{
		`"time.source":"2010-02-25T13:55:00.123456789Z"`, `"source.ip":"198.51.100.7"`, `"source.port":49152`,
		`"source.asn":64500`, `"source.as_name":"EXAMPLE-NET, Inc."`, `"source.geolocation.cc":"DE"`,
		`"source.geolocation.city":"Zürich \"Nord\""`, `"destination.fqdn":"partystore.com"`, `"destination.port":80`,
		`"protocol.application":"http"`, `"malware.name":"waledac"`, `"classification.taxonomy":"malicious-code"`,
		`"classification.type":"infected-system"`, `"feed.name":"takedown-sinkhole"`,
	} {
		if !strings.Contains(data, want) {
			t.Errorf("JSON lacks %s:\n%s", want, data)
		}
	}
}

func TestCSVRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	var want []Event
	for _, name := range []string{"full", "minimal", "ipv6", "zero latitude", "no geo", "unicode"} {
		e := cases()[name]
		want = append(want, e)
		if err := w.Write(&e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if head, _, _ := strings.Cut(buf.String(), "\n"); !strings.HasPrefix(head, "timestamp,ip,port,asn,geo,region,city,hostname,type,infection,family,tag,application,dst_ip,dst_port,http_host,http_url,http_agent") {
		t.Errorf("header %q", head)
	}
	r := NewCSVReader(&buf, "t.csv")
	for i, e := range want {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("record %d\n got %+v\nwant %+v", i, got, e)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("after the last record: %v", err)
	}
}

func TestCSVColumnsByName(t *testing.T) {
	in := "infection,ip,timestamp,application\nwaledac,192.0.2.9,2010-02-25T00:00:00Z,http\n"
	e, err := NewCSVReader(strings.NewReader(in), "s.csv").Read()
	if err != nil {
		t.Fatal(err)
	}
	if e.Family != "waledac" || e.SrcIP.String() != "192.0.2.9" || e.Protocol != ProtoHTTP {
		t.Errorf("got %+v", e)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"source.ip":"300.1.1.1"}`, `key "source.ip": "300.1.1.1" is not an IP address`},
		{`{"source.port":70000}`, `key "source.port": "70000" is not a whole number`},
		{`{"time.source":"yesterday"}`, `key "time.source": "yesterday" is not an RFC 3339 time`},
		{`{"colour":"red"}`, `key "colour": unknown key`},
		{`{"classification.type":"phishing"}`, `"phishing" is not "infected-system"`},
		{`{"protocol.application":"gopher"}`, `"gopher" is not one of`},
		{`{"source.geolocation.latitude":91}`, `"91" is not a number from -90 to 90`},
		{`{"extra.payload_head":"!!"}`, `"!!" is not base64`},
		{`{"source.asn":"AS1"}`, `key "source.asn"`},
		{`{"malware.name":"a","classification.identifier":"b"}`, `differs from malware.name`},
		{`[1]`, `event json`},
		{`null`, `want an object`},
		{`{} {}`, `data after the object`},
	} {
		_, err := DecodeJSON([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.in, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"ip,colour\n1.2.3.4,red\n", `s.csv:1: unknown column "colour"`},
		{"ip,ip\n1.2.3.4,1.2.3.4\n", `column "ip" given twice`},
		{"ip,port\n1.2.3.4,80\n1.2.3.4,http\n", `s.csv:3: column port: "http" not a whole number`},
		{"ip,port\n1.2.3.4\n", `s.csv:2: 1 fields, the header has 2`},
		{"timestamp\n2010-13-01\n", `column timestamp: "2010-13-01" not an RFC 3339 time`},
		{"type\nsctp\n", `column type: "sctp" not tcp or udp`},
	} {
		r := NewCSVReader(strings.NewReader(tc.in), "s.csv")
		var err error
		for err == nil {
			_, err = r.Read()
		}
		if err == io.EOF || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	e := full()
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Event){
		"time":      func(e *Event) { e.Time = time.Time{} },
		"source ip": func(e *Event) { e.SrcIP = netip.Addr{} },
		"protocol":  func(e *Event) { e.Protocol = "gopher" },
		"transport": func(e *Event) { e.Transport = "sctp" },
		"bytes":     func(e *Event) { e.Bytes = -1 },
		"latitude":  func(e *Event) { e.Latitude = 100 },
		"sha256":    func(e *Event) { e.PayloadSHA256 = "XYZ" },
	} {
		e := full()
		mut(&e)
		if err := e.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func BenchmarkJSONEncode(b *testing.B) {
	e := full()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkJSONDecode(b *testing.B) {
	e := full()
	data := AppendJSON(nil, &e)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCSVEncode(b *testing.B) {
	e := full()
	w := NewCSVWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(&e); err != nil {
			b.Fatal(err)
		}
	}
}
