package event

import (
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// CSVColumns are the columns of the CSV encoding, in the order written:
// first the Shadowserver-style names that abuse desks already parse, then
// takedown's own. "infection" repeats "family", as Shadowserver reports do;
// "hostname" (reverse DNS) is left empty: the sinkhole makes no lookups.
//
// Timestamps are RFC 3339 in UTC with nanoseconds, e.g.
// 2010-02-25T13:55:00.123456789Z, so that they round-trip exactly.
var CSVColumns = []string{
	"timestamp", "ip", "port", "asn", "geo", "region", "city", "hostname",
	"type", "infection", "family", "tag", "application",
	"dst_ip", "dst_port", "http_host", "http_url", "http_agent",
	"sensor", "zone", "case", "bot_id", "http_method",
	"ssl_version", "ssl_cipher", "ja4", "dns_qtype", "dns_rcode", "dns_do", "dns_client_subnet",
	"malformed", "bytes", "payload_sha256", "payload_head", "as_name", "latitude", "longitude",
}

// csvField reads and writes one column of an event.
type csvField struct {
	get func(e *Event, buf []byte) []byte
	set func(e *Event, s string) error
}

func strField(p func(e *Event) *string) csvField {
	return csvField{
		get: func(e *Event, b []byte) []byte { return append(b, *p(e)...) },
		set: func(e *Event, s string) error { *p(e) = s; return nil },
	}
}

func addrField(p func(e *Event) *netip.Addr) csvField {
	return csvField{
		get: func(e *Event, b []byte) []byte {
			if a := *p(e); a.IsValid() {
				return a.AppendTo(b)
			}
			return b
		},
		set: func(e *Event, s string) error {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return errors.New("not an IP address")
			}
			*p(e) = a
			return nil
		},
	}
}

func uintField(max uint64, get func(e *Event) uint64, set func(e *Event, v uint64)) csvField {
	return csvField{
		get: func(e *Event, b []byte) []byte {
			if v := get(e); v != 0 {
				return strconv.AppendUint(b, v, 10)
			}
			return b
		},
		set: func(e *Event, s string) error {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil || v > max {
				return fmt.Errorf("not a whole number from 0 to %d", max)
			}
			set(e, v)
			return nil
		},
	}
}

func boolField(p func(e *Event) *bool) csvField {
	return csvField{
		get: func(e *Event, b []byte) []byte {
			if *p(e) {
				return append(b, "true"...)
			}
			return b
		},
		set: func(e *Event, s string) error {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return errors.New("not true or false")
			}
			*p(e) = v
			return nil
		},
	}
}

func coordField(limit float64, p func(e *Event) *float64) csvField {
	return csvField{
		get: func(e *Event, b []byte) []byte {
			if e.HasGeo() && !math.IsNaN(e.Latitude+e.Longitude) && !math.IsInf(e.Latitude+e.Longitude, 0) {
				return strconv.AppendFloat(b, *p(e), 'g', -1, 64)
			}
			return b
		},
		set: func(e *Event, s string) error {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < -limit || v > limit {
				return fmt.Errorf("not a number from %g to %g", -limit, limit)
			}
			*p(e) = v
			return nil
		},
	}
}

var csvFields = map[string]csvField{
	"timestamp": {
		get: func(e *Event, b []byte) []byte {
			if e.Time.IsZero() {
				return b
			}
			return e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		},
		set: func(e *Event, s string) error {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return errors.New("not an RFC 3339 time")
			}
			e.Time = t.UTC()
			return nil
		},
	},
	"ip":       addrField(func(e *Event) *netip.Addr { return &e.SrcIP }),
	"port":     uintField(math.MaxUint16, func(e *Event) uint64 { return uint64(e.SrcPort) }, func(e *Event, v uint64) { e.SrcPort = uint16(v) }),
	"asn":      uintField(math.MaxUint32, func(e *Event) uint64 { return uint64(e.ASN) }, func(e *Event, v uint64) { e.ASN = uint32(v) }),
	"geo":      strField(func(e *Event) *string { return &e.CountryCode }),
	"region":   strField(func(e *Event) *string { return &e.Region }),
	"city":     strField(func(e *Event) *string { return &e.City }),
	"hostname": {get: func(e *Event, b []byte) []byte { return b }, set: func(e *Event, s string) error { return nil }},
	"type": {
		get: func(e *Event, b []byte) []byte { return append(b, e.Transport...) },
		set: func(e *Event, s string) error {
			if s != "tcp" && s != "udp" {
				return errors.New("not tcp or udp")
			}
			e.Transport = Transport(s)
			return nil
		},
	},
	// infection is read in Decode: family wins when both are set.
	"infection": {get: func(e *Event, b []byte) []byte { return append(b, e.Family...) }, set: func(e *Event, s string) error { return nil }},
	"family":    strField(func(e *Event) *string { return &e.Family }),
	"tag":       strField(func(e *Event) *string { return &e.Tag }),
	"application": {
		get: func(e *Event, b []byte) []byte { return append(b, e.Protocol...) },
		set: func(e *Event, s string) error {
			if !Protocol(s).Valid() {
				return errors.New("not one of dns, http, https, smtp, tcp, udp")
			}
			e.Protocol = Protocol(s)
			return nil
		},
	},
	"dst_ip":            addrField(func(e *Event) *netip.Addr { return &e.DstIP }),
	"dst_port":          uintField(math.MaxUint16, func(e *Event) uint64 { return uint64(e.DstPort) }, func(e *Event, v uint64) { e.DstPort = uint16(v) }),
	"http_host":         strField(func(e *Event) *string { return &e.Domain }),
	"http_url":          strField(func(e *Event) *string { return &e.HTTPPath }),
	"http_agent":        strField(func(e *Event) *string { return &e.HTTPUserAgent }),
	"sensor":            strField(func(e *Event) *string { return &e.Sensor }),
	"zone":              strField(func(e *Event) *string { return &e.Zone }),
	"case":              strField(func(e *Event) *string { return &e.Case }),
	"bot_id":            strField(func(e *Event) *string { return &e.BotID }),
	"http_method":       strField(func(e *Event) *string { return &e.HTTPMethod }),
	"ssl_version":       strField(func(e *Event) *string { return &e.TLSVersion }),
	"ssl_cipher":        strField(func(e *Event) *string { return &e.TLSCipher }),
	"ja4":               strField(func(e *Event) *string { return &e.TLSFingerprint }),
	"dns_qtype":         strField(func(e *Event) *string { return &e.DNSQType }),
	"dns_rcode":         strField(func(e *Event) *string { return &e.DNSRcode }),
	"dns_do":            boolField(func(e *Event) *bool { return &e.DNSDO }),
	"dns_client_subnet": strField(func(e *Event) *string { return &e.DNSClientSubnet }),
	"malformed":         boolField(func(e *Event) *bool { return &e.Malformed }),
	"bytes": {
		get: func(e *Event, b []byte) []byte {
			if e.Bytes != 0 {
				return strconv.AppendInt(b, e.Bytes, 10)
			}
			return b
		},
		set: func(e *Event, s string) error {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return errors.New("not a whole number of bytes ≥ 0")
			}
			e.Bytes = v
			return nil
		},
	},
	"payload_sha256": {
		get: func(e *Event, b []byte) []byte { return append(b, e.PayloadSHA256...) },
		set: func(e *Event, s string) error {
			if !isHexSHA256(s) {
				return errors.New("not 64 lower-case hex digits")
			}
			e.PayloadSHA256 = s
			return nil
		},
	},
	"payload_head": {
		get: func(e *Event, b []byte) []byte { return base64.StdEncoding.AppendEncode(b, e.PayloadHead) },
		set: func(e *Event, s string) error {
			v, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return errors.New("not base64")
			}
			if len(v) > 0 {
				e.PayloadHead = v
			}
			return nil
		},
	},
	"as_name":   strField(func(e *Event) *string { return &e.ASName }),
	"latitude":  coordField(90, func(e *Event) *float64 { return &e.Latitude }),
	"longitude": coordField(180, func(e *Event) *float64 { return &e.Longitude }),
}

// CSVWriter writes events as CSV with a header row of CSVColumns.
type CSVWriter struct {
	w      *csv.Writer
	header bool
	rec    []string
	ends   []int
	buf    []byte
}

// NewCSVWriter returns a writer to w. Call Flush when done.
func NewCSVWriter(w io.Writer) *CSVWriter {
	return &CSVWriter{w: csv.NewWriter(w), rec: make([]string, len(CSVColumns))}
}

// Write writes one event, after the header row on the first call.
func (cw *CSVWriter) Write(e *Event) error {
	if !cw.header {
		if err := cw.w.Write(CSVColumns); err != nil {
			return err
		}
		cw.header = true
	}
	cw.buf = cw.buf[:0]
	cw.ends = cw.ends[:0]
	for _, col := range CSVColumns {
		cw.buf = csvFields[col].get(e, cw.buf)
		cw.ends = append(cw.ends, len(cw.buf))
	}
	s := string(cw.buf) // one allocation for the whole record
	start := 0
	for i, end := range cw.ends {
		cw.rec[i] = s[start:end]
		start = end
	}
	return cw.w.Write(cw.rec)
}

// Flush writes what is buffered and returns the first error met.
func (cw *CSVWriter) Flush() error {
	if !cw.header {
		if err := cw.w.Write(CSVColumns); err != nil {
			return err
		}
		cw.header = true
	}
	cw.w.Flush()
	return cw.w.Error()
}

// CSVReader reads events from CSV with a header row. Columns are found by
// name, in any order; missing columns are left empty; an unknown or
// repeated column is an error.
type CSVReader struct {
	r      *csv.Reader
	name   string
	fields []csvField
	cols   []string
	infIdx int
	famIdx int
}

// NewCSVReader returns a reader of r; name labels errors (a file name).
func NewCSVReader(r io.Reader, name string) *CSVReader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &CSVReader{r: cr, name: name}
}

// Read returns the next event, or io.EOF after the last. Errors name the
// line, the column and the bad value.
func (cr *CSVReader) Read() (Event, error) {
	if cr.fields == nil {
		if err := cr.readHeader(); err != nil {
			return Event{}, err
		}
	}
	rec, err := cr.r.Read()
	if err == io.EOF {
		return Event{}, io.EOF
	}
	if err != nil {
		return Event{}, fmt.Errorf("%s: %v", cr.name, err)
	}
	line, _ := cr.r.FieldPos(0)
	if len(rec) != len(cr.fields) {
		return Event{}, fmt.Errorf("%s:%d: %d fields, the header has %d", cr.name, line, len(rec), len(cr.fields))
	}
	var e Event
	for i, s := range rec {
		if s == "" {
			continue
		}
		if err := cr.fields[i].set(&e, s); err != nil {
			return Event{}, fmt.Errorf("%s:%d: column %s: %s %v", cr.name, line, cr.cols[i], quote(s), err)
		}
	}
	if e.Family == "" && cr.infIdx >= 0 {
		e.Family = rec[cr.infIdx]
	}
	return e, nil
}

func (cr *CSVReader) readHeader() error {
	rec, err := cr.r.Read()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return fmt.Errorf("%s: header: %v", cr.name, err)
	}
	cr.infIdx, cr.famIdx = -1, -1
	seen := map[string]bool{}
	for i, col := range rec {
		col = strings.TrimSpace(strings.TrimPrefix(col, "\ufeff"))
		f, ok := csvFields[col]
		if !ok {
			return fmt.Errorf("%s:1: unknown column %s (known: %s)", cr.name, quote(col), strings.Join(CSVColumns, ", "))
		}
		if seen[col] {
			return fmt.Errorf("%s:1: column %s given twice", cr.name, quote(col))
		}
		seen[col] = true
		if col == "infection" {
			cr.infIdx = i
		}
		cr.fields = append(cr.fields, f)
		cr.cols = append(cr.cols, col)
	}
	if len(cr.fields) == 0 {
		return fmt.Errorf("%s:1: empty header", cr.name)
	}
	return nil
}
