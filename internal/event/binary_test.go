package event

import (
	"bytes"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// filled returns an event in which every field holds a value that is not
// its zero value, set by reflection so that a field added to Event later is
// covered too (the test fails until the binary form carries it).
func filled(t testing.TB) Event {
	var e Event
	v := reflect.ValueOf(&e).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			f.SetString(strings.ToLower(name) + "-ü")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(60000 + i))
		case reflect.Int64:
			f.SetInt(int64(1 << 40))
		case reflect.Float64:
			f.SetFloat(-12.5 - float64(i))
		case reflect.Slice:
			f.SetBytes([]byte{0, 1, 2, 255})
		default:
			switch f.Interface().(type) {
			case time.Time, netip.Addr:
			default:
				t.Fatalf("filled: field %s of kind %s is not handled", name, f.Kind())
			}
		}
	}
	e.Time = time.Date(2010, 2, 25, 13, 55, 0, 123456789, time.UTC)
	e.SrcIP = netip.MustParseAddr("198.51.100.7")
	e.DstIP = netip.MustParseAddr("2001:db8::53")
	return e
}

func TestBinaryRoundTrip(t *testing.T) {
	all := map[string]Event{"every field": filled(t)}
	for _, name := range caseNames {
		all[name] = cases()[name]
	}
	all["zero"] = Event{}
	all["before 1678"] = Event{Time: time.Date(1000, 1, 1, 0, 0, 0, 1, time.UTC)}
	all["negative zero latitude"] = Event{Latitude: math.Copysign(0, -1)}
	var d Decoder
	for name, e := range all {
		b := AppendBinary(nil, &e)
		var got Event
		if err := d.Decode(b, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := e
		want.Time = want.Time.UTC()
		if e.Time.IsZero() {
			want.Time = time.Time{}
		}
		if !reflect.DeepEqual(got, want) || math.Signbit(got.Latitude) != math.Signbit(want.Latitude) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

func TestBinaryDoesNotShareMemory(t *testing.T) {
	e := filled(t)
	b := AppendBinary(nil, &e)
	var got Event
	var d Decoder
	if err := d.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if got.PayloadHead[3] != 255 || got.Domain != "domain-ü" || got.Family != "family-ü" {
		t.Fatalf("decoded event changed with its buffer: %+v", got)
	}
}

func TestBinaryErrors(t *testing.T) {
	e := filled(t)
	good := AppendBinary(nil, &e)
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"version", []byte{9}, "unknown binary version 9"},
		{"unknown tag", []byte{1, 200}, "unknown field tag 200 at offset 1"},
		{"repeated", []byte{1, tagDNSDO, tagDNSDO}, "repeated at offset 2"},
		{"cut time", []byte{1, tagTime, 1, 2}, "cut short"},
		{"bad nanos", append([]byte{1, tagTime, 0, 0, 0, 0, 0, 0, 0, 0}, 0xff, 0xff, 0xff, 0xff), "nanoseconds"},
		{"bad address", []byte{1, tagSrcIP, 5, 1, 2, 3, 4, 5}, "bad address"},
		{"long string", []byte{1, tagDomain, 10, 'a'}, "cut short"},
		{"port range", []byte{1, tagSrcPort, 0x80, 0x80, 0x04}, "port 65536 is out of range"},
		{"cut whole", good[:len(good)-1], "cut short"},
	} {
		var got Event
		var d Decoder
		err := d.Decode(c.b, &got)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestBinaryDNSQueryIsSmall(t *testing.T) {
	e := Event{
		Time: time.Now(), Sensor: "ns1", Protocol: ProtoDNS, Transport: TransportUDP,
		SrcIP: netip.MustParseAddr("127.3.4.5"), SrcPort: 40000, DstIP: netip.MustParseAddr("127.0.0.1"), DstPort: 53,
		Domain: "a1b2.seized.example.com", Zone: "seized.example.com", Case: "waledac", Family: "waledac",
		DNSQType: "A", DNSRcode: "NOERROR",
	}
	if n := len(AppendBinary(nil, &e)); n > 128 {
		t.Fatalf("a DNS query takes %d bytes", n)
	}
}

func FuzzBinaryDecode(f *testing.F) {
	for _, name := range caseNames {
		e := cases()[name]
		f.Add(AppendBinary(nil, &e))
	}
	e := filled(f)
	f.Add(AppendBinary(nil, &e))
	f.Add([]byte{1, tagSrcIP, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		var got Event
		if err := d.Decode(b, &got); err != nil {
			return
		}
		// Whatever decodes encodes to a record that decodes the same.
		var again Event
		if err := d.Decode(AppendBinary(nil, &got), &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		// (Compared as bytes: a NaN coordinate is not equal to itself.)
		if a, b := AppendBinary(nil, &got), AppendBinary(nil, &again); !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", again, got)
		}
	})
}

func BenchmarkBinary(b *testing.B) {
	e := cases()["full"]
	buf := AppendBinary(nil, &e)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		dst := make([]byte, 0, 512)
		for b.Loop() {
			dst = AppendBinary(dst[:0], &e)
		}
		b.ReportMetric(float64(len(dst)), "bytes/event")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var d Decoder
		var got Event
		for b.Loop() {
			if err := d.Decode(buf, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecoderRemembersNoStaleValue decodes events whose interned fields
// repeat, change and go missing from one record to the next with one
// Decoder, which keeps each field's last value.
func TestDecoderRemembersNoStaleValue(t *testing.T) {
	a := filled(t)
	b := a
	b.Sensor, b.Family, b.HTTPUserAgent, b.Case = "other-sensor", "other-family", "", ""
	var d Decoder
	for i, e := range []Event{a, a, b, b, a, b, {}, a} {
		var got Event
		if err := d.Decode(AppendBinary(nil, &e), &got); err != nil {
			t.Fatal(err)
		}
		if got.Sensor != e.Sensor || got.Family != e.Family || got.HTTPUserAgent != e.HTTPUserAgent || got.Case != e.Case {
			t.Fatalf("record %d: got %q %q %q %q, want %q %q %q %q", i,
				got.Sensor, got.Family, got.HTTPUserAgent, got.Case, e.Sensor, e.Family, e.HTTPUserAgent, e.Case)
		}
	}
}
