package report

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// CSV writes a report as CSV with a header row: one row per infected host
// (address and family) and day, the daily aggregate of the sinkhole event
// reports (SinkholeCSV). The columns the two share come first, with
// Shadowserver's names and value formats, then takedown's own:
//
//	timestamp    time of the last callback, "2006-01-02 15:04:05", UTC
//	protocol     transport of the last callback: tcp or udp
//	src_ip       source address
//	src_port     source port of the last callback (with timestamp and
//	             src_ip it finds the customer behind a carrier-grade NAT)
//	src_asn      AS number ("" if unknown)
//	src_geo      ISO 3166-1 alpha-2 country code
//	src_region, src_city   geolocation, as the enrichment names them (the
//	             sinkhole event reports write them in upper case, as
//	             Shadowserver does; this aggregate keeps the names, which
//	             read back as they were)
//	src_hostname reverse DNS: always empty, the sinkhole makes no lookups
//	dst_port     destination port of the last callback
//	infection    the family, as Shadowserver repeats it
//	family       malware family; "unknown" for a host that called a seized
//	             name the classifier did not attribute
//	tag          the classifier's sub-classification (first callback)
//	application  protocol of the last callback: dns, http, https, smtp, tcp, udp
//
// and takedown's:
//
//	dst_ports    distinct destination ports called, ascending, separated by
//	             spaces, ending in "+" when less common ports were called too
//	domain       the seized name of the first callback (DNS name, HTTP Host,
//	             TLS SNI); the sinkhole HTTP event report calls it http_host
//	case         the takedown case that seized the domain
//	first_seen   time of the first callback, as timestamp
//	last_seen    time of the last callback, as timestamp
//	callbacks    number of callbacks in the period
//	bot_ids      distinct bot ids: more than 1 when bots share the address
//	as_name      name of the AS
//	latitude     decimal degrees, empty when unknown
//	longitude    decimal degrees, empty when unknown
//
// Rows come in the report's order (by address). Fields are written by
// encoding/csv: quoted when they hold a comma, a quote or a line break.
type CSV struct{}

var _ Writer = CSV{}

// CSVColumns is the header row CSV writes.
func CSVColumns() []string { return slices.Clone(csvColumns) }

var csvColumns = []string{
	"timestamp", "protocol", "src_ip", "src_port", "src_asn", "src_geo", "src_region", "src_city",
	"src_hostname", "dst_port", "infection", "family", "tag", "application",
	"dst_ports", "domain", "case", "first_seen", "last_seen", "callbacks", "bot_ids",
	"as_name", "latitude", "longitude",
}

// CSVTime is the layout of CSV's times, Shadowserver's, always UTC.
const CSVTime = time.DateTime

func (CSV) Format() string      { return "csv" }
func (CSV) ContentType() string { return "text/csv; charset=utf-8; header=present" }
func (CSV) Extension() string   { return "csv" }

// Write writes the header row and one row per host.
func (CSV) Write(w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write(csvColumns); err != nil {
		return fmt.Errorf("report csv: %w", err)
	}
	rec := make([]string, len(csvColumns))
	ends := make([]int, 0, len(csvColumns))
	var buf []byte
	c := &clock{sep: " "}
	for row := range r.Rows() {
		buf, ends = appendCSVFields(buf[:0], ends[:0], row, c)
		s := string(buf) // one allocation for the record
		start := 0
		for i, end := range ends {
			rec[i] = s[start:end]
			start = end
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("report csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report csv: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report csv: %w", err)
	}
	return nil
}

// appendCSVFields appends the fields of r in the order of csvColumns to b,
// and the end of each field in b to ends.
func appendCSVFields(b []byte, ends []int, r *eventstore.HostRow, c *clock) ([]byte, []int) {
	end := func() { ends = append(ends, len(b)) }
	b = c.append(b, r.LastSeen)
	last := b[len(b)-len(CSVTime):]
	end()
	b = append(b, r.Transport...)
	end()
	b = r.IP.AppendTo(b)
	end()
	b = appendNonZero(b, uint64(r.SrcPort))
	end()
	b = appendNonZero(b, uint64(r.ASN))
	end()
	b = append(b, r.Country...)
	end()
	b = append(b, r.Region...)
	end()
	b = append(b, r.City...)
	end()
	end() // src_hostname
	b = appendNonZero(b, uint64(r.DstPort))
	end()
	b = append(b, r.Family...)
	end()
	b = append(b, r.Family...)
	end()
	b = append(b, r.Tag...)
	end()
	b = append(b, r.Protocol...)
	end()
	b = appendPorts(b, r.DstPorts, r.OtherPorts, ' ')
	end()
	b = append(b, r.Domain...)
	end()
	b = append(b, r.Case...)
	end()
	b = c.append(b, r.FirstSeen)
	end()
	b = append(b, last...)
	end()
	b = strconv.AppendInt(b, r.Events, 10)
	end()
	b = strconv.AppendInt(b, r.BotIDs, 10)
	end()
	b = append(b, r.ASName...)
	end()
	if hasGeo(r) {
		b = strconv.AppendFloat(b, r.Latitude, 'f', -1, 64)
	}
	end()
	if hasGeo(r) {
		b = strconv.AppendFloat(b, r.Longitude, 'f', -1, 64)
	}
	end()
	return b, ends
}

func appendNonZero(b []byte, v uint64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendUint(b, v, 10)
}

// appendPorts writes ports separated by sep, and "+" for other ports.
func appendPorts(b []byte, ports []uint16, other bool, sep byte) []byte {
	for i, p := range ports {
		if i > 0 {
			b = append(b, sep)
		}
		b = strconv.AppendUint(b, uint64(p), 10)
	}
	if other {
		if len(ports) > 0 {
			b = append(b, sep)
		}
		b = append(b, '+')
	}
	return b
}

// hasGeo: (0, 0) is "unknown", as in event.Event.HasGeo.
func hasGeo(r *eventstore.HostRow) bool { return r.Latitude != 0 || r.Longitude != 0 }

// clock formats times as "2006-01-02" sep "15:04:05" suffix in UTC, fast:
// rows of a report fall on few days, so the date is formatted once per day
// and the time of day from the seconds.
type clock struct {
	sep, suffix string
	day         int64
	date        []byte
}

func (c *clock) append(b []byte, t time.Time) []byte {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	if c.date == nil || d != c.day {
		c.day = d
		c.date = t.UTC().AppendFormat(c.date[:0], time.DateOnly)
	}
	b = append(b, c.date...)
	b = append(b, c.sep...)
	sod := s - d*86400
	h, m, sec := sod/3600, sod/60%60, sod%60
	b = append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+sec/10), byte('0'+sec%10))
	return append(b, c.suffix...)
}
