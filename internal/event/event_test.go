package event

import (
	"bytes"
	"errors"
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
		Domain: "partystore.example", Zone: "partystore.example", Case: "waledac-2010",
		Family: "waledac", Tag: "v2", BotID: "a1b2c3",
		HTTPMethod: "POST", HTTPPath: "/index.php?x=1&y=\"2\"", HTTPUserAgent: "Mozilla/4.0 (compatible; MSIE 7.0)",
		HTTPReferer: "http://partystore.example/", HTTPForwardedBy: "203.0.113.9, 10.0.0.1", HTTPContentType: "application/x-www-form-urlencoded",
		TLSALPN: "h2,http/1.1", SMTPHelo: "bot.example", SMTPFrom: "a@b.example", SMTPRcptDomains: "example.net,example.org",
		SMTPRcptCount: 7, SMTPSubject: "Happy \"Valentine\"", SMTPMessageID: "<1@b.example>", Error: "body too large",
		TLSVersion: "1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", TLSFingerprint: "t13d1516h2_8daaf6152771_e5627efa2ab1",
		DNSQType: "A", DNSRcode: "NOERROR", DNSDO: true, DNSClientSubnet: "198.51.100.0/24", Malformed: true,
		Bytes:         1234,
		PayloadSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		PayloadHead:   []byte("POST /\x00\x01,\"\n\r\xff"),
		ASN:           64500, ASName: "EXAMPLE-NET, Inc.", CountryCode: "DE", Region: "Baden-Württemberg", City: "Zürich \"Nord\"",
		Latitude: 47.3769, Longitude: 8.5417,
	}
}

// caseNames fixes the order of cases, for the CSV stream and the fuzz seeds.
var caseNames = []string{"full", "minimal", "ipv6", "4in6", "unicode", "binary head", "zero latitude", "zero longitude", "no geo", "float digits", "time zone"}

// cases are events that both encodings give back unchanged.
func cases() map[string]Event {
	m := map[string]Event{
		"full":    full(),
		"minimal": {Time: time.Unix(0, 1).UTC(), Protocol: ProtoDNS, SrcIP: netip.MustParseAddr("127.0.0.1")},
	}
	mut := func(name string, f func(e *Event)) {
		e := full()
		f(&e)
		m[name] = e
	}
	mut("ipv6", func(e *Event) {
		e.SrcIP, e.DstIP, e.Protocol = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::1"), ProtoSMTP
	})
	mut("4in6", func(e *Event) { e.SrcIP = netip.MustParseAddr("::ffff:192.0.2.1") }) // kept 4in6, not unmapped
	mut("unicode", func(e *Event) {
		e.City, e.Region, e.ASName = "東京", "Île-de-France", "Ünïcødé 🦠 AS"
		e.HTTPUserAgent = "tab\there, newline\nthere, comma, \"quote\", nul\x00"
	})
	mut("binary head", func(e *Event) { e.PayloadHead = []byte("\x00\x00\n,\"\r\n\x7f\x80\xfe\xff;") })
	mut("zero latitude", func(e *Event) { e.Latitude, e.Longitude = 0, -0.1275 })
	mut("zero longitude", func(e *Event) { e.Latitude, e.Longitude = 51.4779, 0 })
	mut("no geo", func(e *Event) { e.Latitude, e.Longitude = 0, 0 })
	mut("float digits", func(e *Event) { e.Latitude, e.Longitude = 0.1+0.2, -179.99999999999997 })
	mut("time zone", func(e *Event) { e.Time = MaxTime })
	return m
}

func TestJSONRoundTrip(t *testing.T) {
	for _, name := range caseNames {
		e := cases()[name]
		t.Run(name, func(t *testing.T) {
			data := AppendJSON(nil, &e)
			got, err := DecodeJSON(data)
			if err != nil {
				t.Fatalf("decode %s: %v", data, err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("round trip\n got %+v\nwant %+v\njson %s", got, e, data)
			}
			var viaStd Event // encoding/json with the methods
			std, err := (&e).MarshalJSON()
			if err != nil || !bytes.Equal(std, data) {
				t.Fatalf("MarshalJSON %s, %v", std, err)
			}
			if err := viaStd.UnmarshalJSON(std); err != nil || !reflect.DeepEqual(viaStd, e) {
				t.Errorf("UnmarshalJSON: %v\n got %+v", err, viaStd)
			}
		})
	}
}

func TestCSVRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	for _, name := range caseNames {
		e := cases()[name]
		if err := w.Write(&e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewCSVReader(&buf, "t.csv")
	for _, name := range caseNames {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := cases()[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s\n got %+v\nwant %+v", name, got, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("after the last record: %v", err)
	}
}

func TestNDJSONRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewJSONWriter(&buf)
	for _, name := range caseNames {
		e := cases()[name]
		if err := w.Write(&e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(caseNames) {
		t.Fatalf("%d lines for %d events:\n%s", n, len(caseNames), buf.String())
	}
	r := NewJSONReader(strings.NewReader("\n"+buf.String()+"\n  \n"), "t.ndjson")
	for _, name := range caseNames {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := cases()[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s\n got %+v\nwant %+v", name, got, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("after the last line: %v", err)
	}
}

// TestGolden pins both encodings of the full event, byte for byte.
func TestGolden(t *testing.T) {
	e := full()
	const wantJSON = `{"time.source":"2010-02-25T13:55:00.123456789Z","feed.name":"takedown-sinkhole",` +
		`"classification.taxonomy":"malicious-code","classification.type":"infected-system",` +
		`"malware.name":"waledac","classification.identifier":"waledac","protocol.application":"http",` +
		`"protocol.transport":"tcp","source.ip":"198.51.100.7","source.port":49152,"destination.ip":"192.0.2.1",` +
		`"destination.port":80,"destination.fqdn":"partystore.example","destination.urlpath":"/index.php?x=1&y=\"2\"",` +
		`"source.asn":64500,"source.as_name":"EXAMPLE-NET, Inc.","source.geolocation.cc":"DE",` +
		`"source.geolocation.region":"Baden-Württemberg","source.geolocation.city":"Zürich \"Nord\"",` +
		`"source.geolocation.latitude":47.3769,"source.geolocation.longitude":8.5417,"extra.sensor":"fra-1",` +
		`"extra.zone":"partystore.example","extra.case":"waledac-2010","extra.tag":"v2","extra.bot_id":"a1b2c3",` +
		`"extra.http_method":"POST","extra.user_agent":"Mozilla/4.0 (compatible; MSIE 7.0)",` +
		`"extra.http_referer":"http://partystore.example/","extra.forwarded_by":"203.0.113.9, 10.0.0.1",` +
		`"extra.content_type":"application/x-www-form-urlencoded","extra.tls_version":"1.3",` +
		`"extra.tls_cipher":"TLS_AES_128_GCM_SHA256","extra.ja4":"t13d1516h2_8daaf6152771_e5627efa2ab1",` +
		`"extra.tls_alpn":"h2,http/1.1","extra.smtp_helo":"bot.example","extra.smtp_mail_from":"a@b.example",` +
		`"extra.smtp_rcpt_domains":"example.net,example.org","extra.smtp_rcpt_count":7,` +
		`"extra.smtp_subject":"Happy \"Valentine\"","extra.smtp_message_id":"<1@b.example>","extra.error":"body too large",` +
		`"extra.dns_qtype":"A","extra.dns_rcode":"NOERROR","extra.dns_do":true,"extra.dns_client_subnet":"198.51.100.0/24",` +
		`"extra.malformed":true,"extra.bytes":1234,` +
		`"extra.payload_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",` +
		`"extra.payload_head":"UE9TVCAvAAEsIgoN/w=="}`
	if got := string(AppendJSON(nil, &e)); got != wantJSON {
		t.Errorf("json\n got %s\nwant %s", got, wantJSON)
	}
	const wantCSV = "timestamp,ip,port,asn,geo,region,city,hostname,type,infection,family,tag,application," +
		"dst_ip,dst_port,http_host,http_url,http_agent,sensor,zone,case,bot_id,http_method," +
		"ssl_version,ssl_cipher,ja4,dns_qtype,dns_rcode,dns_do,dns_client_subnet," +
		"malformed,bytes,payload_sha256,payload_head,as_name,latitude,longitude," +
		"http_referer,forwarded_by,content_type,alpn,smtp_helo,smtp_from,smtp_rcpt_domains," +
		"smtp_rcpt_count,smtp_subject,smtp_message_id,error\n" +
		`2010-02-25T13:55:00.123456789Z,198.51.100.7,49152,64500,DE,Baden-Württemberg,"Zürich ""Nord""",,tcp,waledac,waledac,v2,http,` +
		`192.0.2.1,80,partystore.example,"/index.php?x=1&y=""2""",Mozilla/4.0 (compatible; MSIE 7.0),fra-1,partystore.example,waledac-2010,a1b2c3,POST,` +
		`1.3,TLS_AES_128_GCM_SHA256,t13d1516h2_8daaf6152771_e5627efa2ab1,A,NOERROR,true,198.51.100.0/24,` +
		`true,1234,9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,UE9TVCAvAAEsIgoN/w==,"EXAMPLE-NET, Inc.",47.3769,8.5417,` +
		`http://partystore.example/,"203.0.113.9, 10.0.0.1",application/x-www-form-urlencoded,"h2,http/1.1",bot.example,a@b.example,` +
		`"example.net,example.org",7,"Happy ""Valentine""",<1@b.example>,body too large` + "\n"
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	if err := w.Write(&e); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != wantCSV {
		t.Errorf("csv\n got %s\nwant %s", got, wantCSV)
	}
	if got := strings.Join(CSVColumns(), ",") + "\n"; !strings.HasPrefix(wantCSV, got) {
		t.Errorf("CSVColumns %s", got)
	}
}

// TestEmptyPayloadHead: an empty head is not written and reads back as nil.
func TestEmptyPayloadHead(t *testing.T) {
	e := cases()["minimal"]
	e.PayloadHead = []byte{}
	want := cases()["minimal"]
	if got, err := DecodeJSON(AppendJSON(nil, &e)); err != nil || !reflect.DeepEqual(got, want) || got.PayloadHead != nil {
		t.Errorf("json: %v %+v", err, got)
	}
	if got, err := DecodeJSON([]byte(`{"extra.payload_head":""}`)); err != nil || got.PayloadHead != nil {
		t.Errorf("json, empty string: %v %#v", err, got.PayloadHead)
	}
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	w.Write(&e)
	w.Flush()
	if got, err := NewCSVReader(&buf, "").Read(); err != nil || !reflect.DeepEqual(got, want) || got.PayloadHead != nil {
		t.Errorf("csv: %v %+v", err, got)
	}
}

func TestJSONDecodeLenient(t *testing.T) {
	for in, want := range map[string]Event{
		// Any key order, white space, an offset, escapes in keys and values.
		" {\n\"source\\u002eip\" : \"192.0.2.9\",\t\"time.source\":\"2010-02-25T14:55:00+01:00\", \"malware.name\":\"w\\u00e4\"} \n": {
			Time: time.Date(2010, 2, 25, 13, 55, 0, 0, time.UTC), SrcIP: netip.MustParseAddr("192.0.2.9"), Family: "wä",
		},
		// classification.identifier alone names the family; feed.name may be any.
		`{"classification.identifier":"conficker","feed.name":"other","classification.type":"infected-system"}`: {Family: "conficker"},
		`{"source.geolocation.latitude":-0,"source.geolocation.longitude":1e1}`:                                 {Longitude: 10},
		`{"extra.payload_head":"AA\u003d\u003d"}`:                                                               {PayloadHead: []byte{0}},
		`{}`: {},
	} {
		got, err := DecodeJSON([]byte(in))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v, %v\nwant %+v", in, got, err, want)
		}
	}
}

func TestCSVDecodeLenient(t *testing.T) {
	for in, want := range map[string]Event{
		// Columns by name in any order; infection alone is the family;
		// hostname is accepted; a byte order mark and spaces in the header.
		"\ufeffinfection, ip ,timestamp,application,hostname\r\nwaledac,192.0.2.9,2010-02-25T14:55:00+01:00,http,bot.example\r\n": {
			Family: "waledac", SrcIP: netip.MustParseAddr("192.0.2.9"), Time: time.Date(2010, 2, 25, 13, 55, 0, 0, time.UTC), Protocol: ProtoHTTP,
		},
		// family wins over infection.
		"infection,family\nold,new\n": {Family: "new"},
		"family,infection\nnew,old\n": {Family: "new"},
		"latitude\n-0\n":              {},
	} {
		got, err := NewCSVReader(strings.NewReader(in), "s.csv").Read()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %+v, %v\nwant %+v", in, got, err, want)
		}
	}
}

func TestJSONDecodeErrors(t *testing.T) {
	long := strings.Repeat("ä", 100)
	for _, tc := range []struct{ in, want string }{
		{`{"source.ip":"300.1.1.1"}`, `event json: key "source.ip": "300.1.1.1" is not an IP address`},
		{`{"destination.ip":""}`, `key "destination.ip": "" is not an IP address`},
		{`{"source.port":70000}`, `key "source.port": "70000" is not a whole number from 0 to 65535`},
		{`{"destination.port":-1}`, `key "destination.port": "-1" is not a whole number`},
		{`{"source.port":80.5}`, `key "source.port": "80.5" is not a whole number`},
		{`{"source.port":"80"}`, `key "source.port": "80" is not a whole number`},
		{`{"source.asn":"AS1"}`, `key "source.asn": "AS1" is not a whole number from 0 to 4294967295`},
		{`{"time.source":"yesterday"}`, `key "time.source": "yesterday" is not an RFC 3339 time`},
		{`{"time.source":12}`, `key "time.source": "12" is not a string`},
		{`{"colour":"red"}`, `key "colour": unknown key`},
		{`{"source.ip":"192.0.2.1","source.ip":"192.0.2.2"}`, `key "source.ip": given twice`},
		{`{"classification.type":"phishing"}`, `key "classification.type": "phishing" is not "infected-system"`},
		{`{"classification.taxonomy":"fraud"}`, `key "classification.taxonomy": "fraud" is not "malicious-code"`},
		{`{"protocol.application":"gopher"}`, `key "protocol.application": "gopher" is not one of`},
		{`{"protocol.transport":"sctp"}`, `key "protocol.transport": "sctp" is not tcp or udp`},
		{`{"source.geolocation.latitude":91}`, `key "source.geolocation.latitude": "91" is not a number from -90 to 90`},
		{`{"source.geolocation.longitude":1e999}`, `key "source.geolocation.longitude": "1e999" is not a number from -180 to 180`},
		{`{"extra.payload_head":"!!"}`, `key "extra.payload_head": "!!" is not base64`},
		{`{"extra.payload_sha256":"ABC"}`, `key "extra.payload_sha256": "ABC" is not 64 lower-case hex digits`},
		{`{"extra.bytes":-5}`, `key "extra.bytes": "-5" is not a whole number of bytes`},
		{`{"extra.dns_do":1}`, `key "extra.dns_do": "1" is not true or false`},
		{`{"malware.name":null}`, `key "malware.name": "null" is not a string`},
		{`{"malware.name":["a"]}`, `key "malware.name": "[\"a\"]" is not a string`},
		{`{"malware.name":"a","classification.identifier":"b"}`, `key "classification.identifier": "b" differs from malware.name "a"`},
		{`{"source.ip":"` + long + `"}`, `key "source.ip": "` + strings.Repeat("ä", 40) + `…" is not an IP address`},
		{`[1]`, `event json: want an object, got "[1]"`},
		{`null`, `event json: want an object, got "null"`},
		{``, `event json: offset 0: want a value, got the end of the input`},
		{`{} {}`, `event json: data after the object: "{}"`},
		{`{}}`, `event json: data after the object: "}"`},
		{`{"malware.name":"a",}`, `event json: object key: offset 20: want a string, got '}'`},
		{`{"malware.name":"a"`, `want ',' or '}' after object value, got the end of the input`},
		{`{"malware.name" "a"}`, `want ':' after object key`},
		{`{"malware.name":"a` + "\n" + `"}`, `want no control character in a string`},
		{`{"malware.name":"\x"}`, `want an escape`},
		{`{"source.port":08}`, `want a number`},
		{`{"source.port":tru}`, `want a value`},
		{`{"malware.name":{"a":}}`, `want a valid object or array`},
	} {
		_, err := DecodeJSON([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant …%s…", tc.in, err, tc.want)
		}
	}
}

func TestCSVDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ip,colour\n1.2.3.4,red\n", `s.csv:1: unknown column "colour"`},
		{"ip,ip\n1.2.3.4,1.2.3.4\n", `s.csv:1: column "ip" given twice`},
		{"ip,port\n1.2.3.4,80\n1.2.3.4,http\n", `s.csv:3: column port: "http" is not a whole number from 0 to 65535`},
		{"ip,port\n1.2.3.4\n", `s.csv:2: 1 fields, the header has 2`},
		{"ip\n300.1.2.3\n", `s.csv:2: column ip: "300.1.2.3" is not an IP address`},
		{"timestamp\n2010-13-01\n", `s.csv:2: column timestamp: "2010-13-01" is not an RFC 3339 time`},
		{"type\nsctp\n", `column type: "sctp" is not tcp or udp`},
		{"application\ngopher\n", `column application: "gopher" is not one of dns`},
		{"latitude\nNaN\n", `column latitude: "NaN" is not a number from -90 to 90`},
		{"longitude\n180.1\n", `column longitude: "180.1" is not a number from -180 to 180`},
		{"asn\n4294967296\n", `column asn: "4294967296" is not a whole number from 0 to 4294967295`},
		{"bytes\n-1\n", `column bytes: "-1" is not a whole number of bytes`},
		{"dns_do\nyes\n", `column dns_do: "yes" is not true or false`},
		{"payload_head\n%%\n", `column payload_head: "%%" is not base64`},
		{"payload_sha256\nabc\n", `column payload_sha256: "abc" is not 64 lower-case hex digits`},
		// The line of a record that spans lines is the line of the bad cell.
		{"http_agent,port\n\"a\nb\",x\n", `s.csv:3: column port: "x" is not`},
		{"ip\n\"1.2.3.4\n", `s.csv: parse error on line 2, column 10: extraneous or missing " in quoted-field`},
	} {
		r := NewCSVReader(strings.NewReader(tc.in), "s.csv")
		var err error
		for err == nil {
			_, err = r.Read()
		}
		if err == io.EOF || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant …%s…", tc.in, err, tc.want)
		}
	}
}

func TestCSVHeaderErrorSticks(t *testing.T) {
	r := NewCSVReader(strings.NewReader("colour\nip\n1.2.3.4\n"), "s.csv")
	_, err1 := r.Read()
	_, err2 := r.Read()
	if err1 == nil || !errors.Is(err2, err1) {
		t.Errorf("first %v, then %v", err1, err2)
	}
}

func TestCSVEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := NewCSVWriter(&buf).Flush(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != strings.Join(CSVColumns(), ",")+"\n" {
		t.Errorf("no events: %q", got)
	}
	if _, err := NewCSVReader(&buf, "").Read(); err != io.EOF {
		t.Errorf("header only: %v", err)
	}
	if _, err := NewCSVReader(strings.NewReader(""), "").Read(); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
}

func TestJSONReaderErrors(t *testing.T) {
	in := `{"source.port":80}` + "\n\n" + `{"source.port":"http"}` + "\n"
	r := NewJSONReader(strings.NewReader(in), "s.ndjson")
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Read()
	if want := `s.ndjson:3: event json: key "source.port": "http" is not a whole number`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want …%s…", err, want)
	}
	r = NewJSONReader(strings.NewReader(strings.Repeat(" ", MaxJSONLine+2)), "big.ndjson")
	if _, err := r.Read(); err == nil || !strings.Contains(err.Error(), "big.ndjson:1: ") {
		t.Errorf("long line: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, name := range caseNames {
		e := cases()[name]
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, mut := range map[string]func(*Event){
		"time is not set": func(e *Event) { e.Time = time.Time{} },
		"time 10000-01-01 00:00:00 +0000 UTC is not between": func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"time 1000-01-01T00:00:00Z is not between 1970":      func(e *Event) { e.Time = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"time 2262-01-01T00:00:00Z":                          func(e *Event) { e.Time = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC) },
		`country code "de"`:                                  func(e *Event) { e.CountryCode = "de" },
		"source ip is not set":                               func(e *Event) { e.SrcIP = netip.Addr{} },
		`protocol "gopher"`:                                  func(e *Event) { e.Protocol = "gopher" },
		`protocol ""`:                                        func(e *Event) { e.Protocol = "" },
		`transport "sctp"`:                                   func(e *Event) { e.Transport = "sctp" },
		"bytes -1":                                           func(e *Event) { e.Bytes = -1 },
		"latitude 100":                                       func(e *Event) { e.Latitude = 100 },
		"longitude NaN":                                      func(e *Event) { e.Longitude = nan() },
		`sha256 "XYZ"`:                                       func(e *Event) { e.PayloadSHA256 = "XYZ" },
	} {
		e := full()
		mut(&e)
		if err := e.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func nan() float64 { var z float64; return z / z }

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

func BenchmarkCSVDecode(b *testing.B) {
	e := full()
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	w.Write(&e)
	w.Flush()
	header, row, _ := strings.Cut(buf.String(), "\n")
	const n = 1024
	data := header + "\n" + strings.Repeat(row, n)
	b.ReportAllocs()
	b.SetBytes(int64(len(row)))
	var r *CSVReader
	i := n
	for b.Loop() {
		if i == n {
			r, i = NewCSVReader(strings.NewReader(data), "b.csv"), 0
		}
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestValidFamily: the one rule for a family name.
func TestValidFamily(t *testing.T) {
	for s, want := range map[string]bool{
		"waledac": true, "conficker.c": true, "dga-2026_1": true, "0day": true,
		"": false, "Waledac": false, "-x": false, ".x": false, "a b": false, "a/b": false,
		string(make([]byte, 65)): false,
	} {
		if got := ValidFamily(s); got != want {
			t.Errorf("ValidFamily(%q) = %v", s, got)
		}
	}
}
