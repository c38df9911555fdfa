package report

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// Shadowserver's sinkhole event reports, one row per event, in the layout
// Shadowserver sends them today, so that a tool that reads Shadowserver's
// files (IntelMQ's Shadowserver parser, an abuse desk's script) reads ours
// as it reads theirs. Four reports, named as Shadowserver names them, by the
// address family of the infected host and whether the callback was HTTP:
//
//	event4_sinkhole        "Sinkhole Events" (IPv4): every callback but HTTP(S)
//	event4_sinkhole_http   "Sinkhole HTTP Events" (IPv4): HTTP and HTTPS callbacks
//	event6_sinkhole        "Sinkhole Events" (IPv6)
//	event6_sinkhole_http   "Sinkhole HTTP Events" (IPv6)
//
// The columns, in order, are Shadowserver's (SinkholeColumns); the HTTP
// reports add six. Values as Shadowserver writes them: timestamp
// "2006-01-02 15:04:05" UTC, numbers in decimal, region and city in upper
// case ("METROPOLITANA DE LIMA", "LIMA" in Shadowserver's sample rows that
// IntelMQ's tests keep), empty for unknown. What
// the sinkhole does not know is left empty: reverse DNS (src_hostname,
// dst_hostname), NAICS codes and sectors, device vendor, type and model,
// the sinkhole's own network and place (dst_asn, dst_geo, dst_region,
// dst_city), public_source and event_id.
//
//	timestamp      time of the callback
//	protocol       transport: tcp or udp
//	src_ip, src_port, src_asn, src_geo, src_region, src_city   the infected host
//	dst_ip, dst_port   the sinkhole's address and port called
//	infection      the family; "unknown" for a host that called a seized name
//	               the classifier did not attribute (Shadowserver's word,
//	               which IntelMQ reads as no value)
//	family         as infection
//	tag            the classifier's sub-classification
//	application    dns, http, https, smtp, tcp or udp
//	version        TLS version of an HTTPS callback
//	http_url       path and query of the request; without a Host, a URL on
//	               the sinkhole's address (http://192.0.2.53/path)
//	http_host      the seized name called (Host header, TLS SNI)
//	http_agent, http_referer   the request's User-Agent and Referer
//	forwarded_by   the request's X-Forwarded-For (a proxy in front of the bot)
//	ssl_cipher     TLS cipher of an HTTPS callback
//
// Only events of infected hosts are written (with a family or a seized
// name's case), as in the daily reports.
const (
	SinkholeEvents4 = "event4_sinkhole"
	SinkholeHTTP4   = "event4_sinkhole_http"
	SinkholeEvents6 = "event6_sinkhole"
	SinkholeHTTP6   = "event6_sinkhole_http"
)

// SinkholeReports lists Shadowserver's sinkhole event reports that
// SinkholeCSV writes.
func SinkholeReports() []string {
	return []string{SinkholeEvents4, SinkholeHTTP4, SinkholeEvents6, SinkholeHTTP6}
}

var sinkholeColumns = []string{
	"timestamp", "protocol", "src_ip", "src_port", "src_asn", "src_geo", "src_region", "src_city",
	"src_hostname", "src_naics", "src_sector", "device_vendor", "device_type", "device_model",
	"dst_ip", "dst_port", "dst_asn", "dst_geo", "dst_region", "dst_city", "dst_hostname",
	"dst_naics", "dst_sector", "public_source", "infection", "family", "tag", "application",
	"version", "event_id",
}

var sinkholeHTTPColumns = append(slices.Clone(sinkholeColumns),
	"http_url", "http_host", "http_agent", "forwarded_by", "ssl_cipher", "http_referer")

// IsSinkholeReport reports whether format names one of Shadowserver's
// sinkhole event reports.
func IsSinkholeReport(format string) bool { return slices.Contains(SinkholeReports(), format) }

// SubscriberFormats lists every format a subscriber may choose, in the
// order it is offered: the reports of NewWriter (Formats), then
// Shadowserver's sinkhole event reports, which WriteSinkholeEvents writes
// from the events.
func SubscriberFormats() []string { return append(Formats(), SinkholeReports()...) }

// SinkholeColumns returns the header row of a sinkhole event report, nil
// for a name that is not one.
func SinkholeColumns(report string) []string {
	switch report {
	case SinkholeEvents4, SinkholeEvents6:
		return slices.Clone(sinkholeColumns)
	case SinkholeHTTP4, SinkholeHTTP6:
		return slices.Clone(sinkholeHTTPColumns)
	}
	return nil
}

// SinkholeReportOf names the report that e belongs in.
func SinkholeReportOf(e *event.Event) string {
	http := e.Protocol == event.ProtoHTTP || e.Protocol == event.ProtoHTTPS
	switch {
	case e.SrcIP.Unmap().Is4() && http:
		return SinkholeHTTP4
	case e.SrcIP.Unmap().Is4():
		return SinkholeEvents4
	case http:
		return SinkholeHTTP6
	}
	return SinkholeEvents6
}

// SinkholeFileName is the file name of a subscriber's report of a day as
// Shadowserver names its files, "2026-12-06-event4_sinkhole-isp-a.csv":
// the day, the report, the recipient. The recipient's name is reduced to
// letters, digits and "_" between single "-", which is what tools that
// take the report from the name expect (IntelMQ: `(\w+)(-\w+)*\.csv`).
func SinkholeFileName(report, subscriber string, day time.Time) string {
	var b strings.Builder
	for part := range strings.FieldsFuncSeq(subscriber, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		b.WriteByte('-')
		b.WriteString(part)
	}
	return day.UTC().Format(time.DateOnly) + "-" + report + b.String() + ".csv"
}

// EventSource gives the stored events of a time range in time order; every
// eventstore.Reader is one.
type EventSource interface {
	Scan(ctx context.Context, q eventstore.ScanQuery, fn func(*event.Event) error) error
}

// SinkholeCSV writes one subscriber's events as Shadowserver's sinkhole
// event reports: a file per report that has rows, opened on its first row.
// Add the events in time order, then Close.
type SinkholeCSV struct {
	sub   Subscriber
	day   time.Time
	open  func(name string) (io.Writer, error)
	files map[string]*sinkholeFile
	buf   []byte
	ends  []int
	rec   []string
	c     clock
}

type sinkholeFile struct {
	name string
	bw   *bufio.Writer
	cw   *csv.Writer
	rows int
}

// NewSinkholeCSV returns the writer of sub's reports of the UTC day of
// day; open gives the writer of a file by its SinkholeFileName.
func NewSinkholeCSV(sub Subscriber, day time.Time, open func(name string) (io.Writer, error)) *SinkholeCSV {
	d, _ := Day(day)
	return &SinkholeCSV{sub: sub, day: d, open: open, files: map[string]*sinkholeFile{}, c: clock{sep: " "}}
}

// Add writes e into its report if it is an infected host's in the
// subscriber's scope, and reports whether it did.
func (s *SinkholeCSV) Add(e *event.Event) (bool, error) {
	if e.Family == "" && e.Case == "" || !e.SrcIP.IsValid() ||
		!s.sub.Scope.Contains(e.SrcIP, e.ASN, e.CountryCode) {
		return false, nil
	}
	report := SinkholeReportOf(e)
	f := s.files[report]
	if f == nil {
		name := SinkholeFileName(report, s.sub.Name, s.day)
		w, err := s.open(name)
		if err != nil {
			return false, fmt.Errorf("report %s: %w", name, err)
		}
		f = &sinkholeFile{name: name, bw: bufio.NewWriterSize(w, 64<<10)}
		f.cw = csv.NewWriter(f.bw)
		if err := f.cw.Write(SinkholeColumns(report)); err != nil {
			return false, fmt.Errorf("report %s: %w", name, err)
		}
		s.files[report] = f
	}
	http := report == SinkholeHTTP4 || report == SinkholeHTTP6
	s.buf, s.ends = appendSinkholeFields(s.buf[:0], s.ends[:0], e, http, &s.c)
	str := string(s.buf)
	s.rec = s.rec[:0]
	start := 0
	for _, end := range s.ends {
		s.rec = append(s.rec, str[start:end])
		start = end
	}
	if err := f.cw.Write(s.rec); err != nil {
		return false, fmt.Errorf("report %s: %w", f.name, err)
	}
	f.rows++
	return true, nil
}

// Close flushes every file opened, and returns the rows written per file
// name.
func (s *SinkholeCSV) Close() (map[string]int, error) {
	rows := make(map[string]int, len(s.files))
	for _, f := range s.files {
		f.cw.Flush()
		if err := f.cw.Error(); err != nil {
			return rows, fmt.Errorf("report %s: %w", f.name, err)
		}
		if err := f.bw.Flush(); err != nil {
			return rows, fmt.Errorf("report %s: %w", f.name, err)
		}
		rows[f.name] = f.rows
	}
	return rows, nil
}

// WriteSinkholeEvents writes sub's events of the UTC day of day from src as
// Shadowserver's sinkhole event reports, reading the day's events once, and
// returns the rows written per file name.
func WriteSinkholeEvents(ctx context.Context, src EventSource, sub Subscriber, day time.Time, open func(name string) (io.Writer, error)) (map[string]int, error) {
	from, to := Day(day)
	s := NewSinkholeCSV(sub, from, open)
	err := src.Scan(ctx, eventstore.ScanQuery{From: from, To: to}, func(e *event.Event) error {
		_, err := s.Add(e)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("report: events of %s: %w", periodString(from, to), err)
	}
	return s.Close()
}

// appendSinkholeFields appends the fields of e in the order of the
// report's columns to b, and the end of each field to ends.
func appendSinkholeFields(b []byte, ends []int, e *event.Event, http bool, c *clock) ([]byte, []int) {
	end := func() { ends = append(ends, len(b)) }
	empty := func(n int) {
		for range n {
			end()
		}
	}
	b = c.append(b, e.Time)
	end()
	b = append(b, e.Transport...)
	end()
	b = e.SrcIP.AppendTo(b)
	end()
	b = strconv.AppendUint(b, uint64(e.SrcPort), 10)
	end()
	b = appendNonZero(b, uint64(e.ASN))
	end()
	b = append(b, e.CountryCode...)
	end()
	b = appendUpper(b, e.Region)
	end()
	b = appendUpper(b, e.City)
	end()
	empty(6) // src_hostname, src_naics, src_sector, device_vendor, device_type, device_model
	if e.DstIP.IsValid() {
		b = e.DstIP.AppendTo(b)
	}
	end()
	b = strconv.AppendUint(b, uint64(e.DstPort), 10)
	end()
	empty(8) // dst_asn, dst_geo, dst_region, dst_city, dst_hostname, dst_naics, dst_sector, public_source
	family := e.Family
	if family == "" {
		family = "unknown"
	}
	b = append(b, family...)
	end()
	b = append(b, family...)
	end()
	b = append(b, e.Tag...)
	end()
	b = append(b, e.Protocol...)
	end()
	b = append(b, e.TLSVersion...)
	end()
	end() // event_id
	if !http {
		return b, ends
	}
	if e.Domain == "" && e.HTTPPath != "" && e.DstIP.IsValid() {
		// No Host: a URL on the sinkhole's address, which readers
		// take as it is (IntelMQ builds one from http_host and the
		// path only when a host is there).
		b = append(b, e.Protocol...)
		b = append(b, "://"...)
		if a := e.DstIP.Unmap(); a.Is6() {
			b = append(b, '[')
			b = a.WithZone("").AppendTo(b)
			b = append(b, ']')
		} else {
			b = a.AppendTo(b)
		}
	}
	b = append(b, e.HTTPPath...)
	end()
	b = append(b, e.Domain...)
	end()
	b = append(b, e.HTTPUserAgent...)
	end()
	b = append(b, e.HTTPForwardedBy...)
	end()
	b = append(b, e.TLSCipher...)
	end()
	b = append(b, e.HTTPReferer...)
	end()
	return b, ends
}

// appendUpper appends s in upper case, as Shadowserver writes regions and
// cities; without allocating when s is ASCII.
func appendUpper(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return append(b, strings.ToUpper(s)...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
