package event

import (
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// csvColumns are the columns of the CSV encoding, in the order written:
// first the Shadowserver-style names that abuse desks already parse, then
// takedown's own. "infection" repeats "family", as Shadowserver reports do
// (on reading, family wins when both are set); "hostname" (reverse DNS) is
// written empty and ignored on reading: the sinkhole makes no lookups.
//
// Timestamps are RFC 3339 in UTC with nanoseconds, as time.RFC3339Nano
// writes them (2010-02-25T13:55:00.123456789Z, trailing zeros of the
// fraction dropped), so that they round-trip exactly; readers may give any
// offset. Coordinates are written with the fewest digits that read back to
// the same float64, and only when Event.HasGeo. payload_head is standard
// base64 with padding. Empty cells are zero values, so an empty PayloadHead
// reads back as nil. encoding/csv reads a CR LF inside a quoted cell as LF;
// no field of an event from the sinkhole holds one.
var csvColumns = []string{
	"timestamp", "ip", "port", "asn", "geo", "region", "city", "hostname",
	"type", "infection", "family", "tag", "application",
	"dst_ip", "dst_port", "http_host", "http_url", "http_agent",
	"sensor", "zone", "case", "bot_id", "http_method",
	"ssl_version", "ssl_cipher", "ja4", "dns_qtype", "dns_rcode", "dns_do", "dns_client_subnet",
	"malformed", "bytes", "payload_sha256", "payload_head", "as_name", "latitude", "longitude",
	"http_referer", "forwarded_by", "content_type", "alpn", "smtp_helo", "smtp_from", "smtp_rcpt_domains",
	"smtp_rcpt_count", "smtp_subject", "smtp_message_id", "error",
}

// CSVColumns returns the header row that CSVWriter writes, in order.
func CSVColumns() []string { return slices.Clone(csvColumns) }

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
				return errors.New("an IP address")
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
				return fmt.Errorf("a whole number from 0 to %d", max)
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
				return errors.New("true or false")
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
			if err != nil || !(v >= -limit && v <= limit) { // NaN too
				return fmt.Errorf("a number from %g to %g", -limit, limit)
			}
			if v == 0 {
				v = 0 // no -0: it would not survive HasGeo
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
				return errors.New("an RFC 3339 time")
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
				return errors.New("tcp or udp")
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
				return errors.New("one of dns, http, https, smtp, tcp, udp")
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
	"http_referer":      strField(func(e *Event) *string { return &e.HTTPReferer }),
	"forwarded_by":      strField(func(e *Event) *string { return &e.HTTPForwardedBy }),
	"content_type":      strField(func(e *Event) *string { return &e.HTTPContentType }),
	"alpn":              strField(func(e *Event) *string { return &e.TLSALPN }),
	"smtp_helo":         strField(func(e *Event) *string { return &e.SMTPHelo }),
	"smtp_from":         strField(func(e *Event) *string { return &e.SMTPFrom }),
	"smtp_rcpt_domains": strField(func(e *Event) *string { return &e.SMTPRcptDomains }),
	"smtp_rcpt_count":   uintField(math.MaxUint32, func(e *Event) uint64 { return uint64(e.SMTPRcptCount) }, func(e *Event, v uint64) { e.SMTPRcptCount = uint32(v) }),
	"smtp_subject":      strField(func(e *Event) *string { return &e.SMTPSubject }),
	"smtp_message_id":   strField(func(e *Event) *string { return &e.SMTPMessageID }),
	"error":             strField(func(e *Event) *string { return &e.Error }),
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
				return errors.New("a whole number of bytes ≥ 0")
			}
			e.Bytes = v
			return nil
		},
	},
	"payload_sha256": {
		get: func(e *Event, b []byte) []byte { return append(b, e.PayloadSHA256...) },
		set: func(e *Event, s string) error {
			if !isHexSHA256(s) {
				return errors.New("64 lower-case hex digits")
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
				return errors.New("base64")
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

// csvOrder is csvFields in the order of csvColumns.
var csvOrder = func() []csvField {
	fs := make([]csvField, len(csvColumns))
	for i, col := range csvColumns {
		fs[i] = csvFields[col]
	}
	return fs
}()

// CSVWriter writes events as CSV with a header row of CSVColumns. It is
// not safe for concurrent use.
type CSVWriter struct {
	w      *csv.Writer
	header bool
	rec    []string
	ends   []int
	buf    []byte
}

// NewCSVWriter returns a writer to w. Call Flush when done.
func NewCSVWriter(w io.Writer) *CSVWriter {
	return &CSVWriter{w: csv.NewWriter(w), rec: make([]string, len(csvColumns)), ends: make([]int, 0, len(csvColumns))}
}

// Write writes one event, after the header row on the first call.
func (cw *CSVWriter) Write(e *Event) error {
	if err := cw.writeHeader(); err != nil {
		return err
	}
	cw.buf = cw.buf[:0]
	cw.ends = cw.ends[:0]
	for _, f := range csvOrder {
		cw.buf = f.get(e, cw.buf)
		cw.ends = append(cw.ends, len(cw.buf))
	}
	s := string(cw.buf) // one allocation for the whole record
	start := 0
	for i, end := range cw.ends {
		cw.rec[i] = s[start:end]
		start = end
	}
	if err := cw.w.Write(cw.rec); err != nil {
		return fmt.Errorf("event csv: %w", err)
	}
	return nil
}

func (cw *CSVWriter) writeHeader() error {
	if cw.header {
		return nil
	}
	if err := cw.w.Write(csvColumns); err != nil {
		return fmt.Errorf("event csv: %w", err)
	}
	cw.header = true
	return nil
}

// Flush writes what is buffered, and the header row if no event was
// written, and returns the first error met.
func (cw *CSVWriter) Flush() error {
	if err := cw.writeHeader(); err != nil {
		return err
	}
	cw.w.Flush()
	if err := cw.w.Error(); err != nil {
		return fmt.Errorf("event csv: %w", err)
	}
	return nil
}

// CSVReader reads events from CSV with a header row, as CSVWriter writes it
// or as a person or another tool may: columns are found by name, in any
// order; missing columns are left zero; an unknown or repeated column is an
// error. It is not safe for concurrent use.
type CSVReader struct {
	r      *csv.Reader
	name   string
	fields []csvField
	cols   []string
	infIdx int
	err    error // of the header, returned by every Read
}

// NewCSVReader returns a reader of r; name labels errors (a file name).
func NewCSVReader(r io.Reader, name string) *CSVReader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	if name == "" {
		name = "event csv"
	}
	return &CSVReader{r: cr, name: name, infIdx: -1}
}

// Read returns the next event, or io.EOF after the last. Errors name the
// line and the column and quote the bad value, e.g.
//
//	hits.csv:3: column port: "http" is not a whole number from 0 to 65535
func (cr *CSVReader) Read() (Event, error) {
	if cr.err != nil {
		return Event{}, cr.err
	}
	if cr.fields == nil {
		if cr.err = cr.readHeader(); cr.err != nil {
			return Event{}, cr.err
		}
	}
	rec, err := cr.r.Read()
	if err == io.EOF {
		return Event{}, io.EOF
	}
	if err != nil {
		return Event{}, fmt.Errorf("%s: %w", cr.name, err)
	}
	if len(rec) != len(cr.fields) {
		line, _ := cr.r.FieldPos(0)
		return Event{}, fmt.Errorf("%s:%d: %d fields, the header has %d", cr.name, line, len(rec), len(cr.fields))
	}
	var e Event
	for i, s := range rec {
		if s == "" {
			continue
		}
		if err := cr.fields[i].set(&e, s); err != nil {
			line, _ := cr.r.FieldPos(i)
			return Event{}, fmt.Errorf("%s:%d: column %s: %s is not %v", cr.name, line, cr.cols[i], cut(s), err)
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
		return fmt.Errorf("%s: header: %w", cr.name, err)
	}
	seen := make(map[string]bool, len(rec))
	for i, col := range rec {
		if i == 0 {
			col = strings.TrimPrefix(col, "\ufeff") // a byte order mark
		}
		col = strings.TrimSpace(col)
		f, ok := csvFields[col]
		if !ok {
			return fmt.Errorf("%s:1: unknown column %s (known: %s)", cr.name, cut(col), strings.Join(csvColumns, ", "))
		}
		if seen[col] {
			return fmt.Errorf("%s:1: column %s given twice", cr.name, cut(col))
		}
		seen[col] = true
		if col == "infection" {
			cr.infIdx = i
		}
		cr.fields = append(cr.fields, f)
		cr.cols = append(cr.cols, col)
	}
	return nil
}
