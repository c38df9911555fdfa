package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"iter"
	"maps"
	"mime"
	"mime/quotedprintable"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// XARF writes reports as X-ARF 0.2 mails (x-arf.org), the format that
// abuse-desk ticket systems (AbuseIO, OTRS/Znuny modules, …) parse from the
// abuse mailbox: a multipart/mixed mail with the header X-ARF: YES and
// three parts, a text for people, the machine-readable report in YAML
// (text/plain, report.txt), and the evidence (text/plain, evidence.txt:
// the host's row of the CSV report, with its header).
//
// The YAML follows the schema abuse_bot-infection 0.1.1, the one X-ARF
// has for an infected host: Category abuse, Report-Type bot-infection,
// Source and Source-Type, Source-Port, Destination-Port,
// Destination-Domain, Bot-Name, Occurrences, Date, TLP, Report-ID,
// Reported-From, User-Agent, Schema-URL, Attachment and Version 0.2.
//
// An X-ARF report has one Source, and ticket systems open one ticket per
// mail and forward it to the customer behind that address: so a report
// becomes one mail per infected host (address and family). Putting many
// hosts in one mail would hand every customer the others' addresses.
// Subscribers with many hosts take CSV, JSON or STIX instead.
//
// X-ARF v3 is retired (its repository is archived), and v4 (JSON, 2025) is
// still changing: its infected_host schema does not yet agree with its own
// samples. v0.2 is what abuse desks parse today.
type XARF struct {
	Options Options
}

var _ Writer = XARF{}

// XARFSchemaURL is the Schema-URL of takedown's X-ARF reports.
const XARFSchemaURL = "http://www.x-arf.org/schema/abuse_bot-infection_0.1.1.json"

// XARFMessage is the content of one X-ARF mail. The sender adds From, To,
// Date and Message-ID.
type XARFMessage struct {
	Subject string
	// Headers are the header fields X-ARF asks for: X-ARF: YES, and
	// Auto-Submitted: auto-generated (RFC 3834).
	Headers map[string]string
	// Parts are the three parts, in order: text, report.txt, evidence.txt.
	Parts []Part
}

// Part is one MIME part.
type Part struct {
	// ContentType is the media type and charset; the name parameter is
	// the sender's to add from Filename (WriteMIME does).
	ContentType string
	// Filename is the part's file name (empty for the text).
	Filename string
	// Inline shows the part in the body; the others are attachments.
	Inline bool
	Data   []byte
}

func (XARF) Format() string      { return "xarf" }
func (XARF) ContentType() string { return "application/mbox" }
func (XARF) Extension() string   { return "mbox" }

// Messages yields one message per row of r.
func (x XARF) Messages(r *Report) iter.Seq[*XARFMessage] {
	return func(yield func(*XARFMessage) bool) {
		for row := range r.Rows() {
			if !yield(x.Message(r, row)) {
				return
			}
		}
	}
}

// Message returns the message of one row of r.
func (x XARF) Message(r *Report, row *eventstore.HostRow) *XARFMessage {
	tlp := r.TLP()
	day := r.From.Format(time.DateOnly)
	return &XARFMessage{
		Subject: fmt.Sprintf("abuse report about %s - %s - bot-infection %s [TLP:%s]", row.IP, day, row.Family, tlp),
		Headers: map[string]string{"X-ARF": "YES", "Auto-Submitted": "auto-generated"},
		Parts: []Part{
			{ContentType: "text/plain; charset=utf-8", Inline: true, Data: x.text(r, row, tlp)},
			{ContentType: "text/plain; charset=utf-8", Filename: "report.txt", Data: x.yaml(r, row, tlp)},
			{ContentType: "text/plain; charset=utf-8", Filename: "evidence.txt", Data: evidence(row)},
		},
	}
}

// ReportID is the Report-ID of row: the same host, family and period give
// the same id.
func (x XARF) ReportID(r *Report, row *eventstore.HostRow) string {
	return uuid5(reportNamespace, "xarf|"+r.Subscriber.Name+"|"+periodString(r.From, r.To)+"|"+row.IP.String()+"|"+row.Family) +
		"@" + x.Options.emailDomain()
}

// yaml writes the machine-readable part: one "Key: value" line per field,
// strings plain when that is safe, double-quoted otherwise, numbers plain.
func (x XARF) yaml(r *Report, row *eventstore.HostRow, tlp string) []byte {
	var b []byte
	str := func(k, v string) {
		b = append(b, k...)
		b = append(b, ": "...)
		b = appendYAMLString(b, v)
		b = append(b, '\n')
	}
	num := func(k string, v int64) {
		b = append(b, k...)
		b = append(b, ": "...)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, '\n')
	}
	b = append(b, "---\n"...)
	str("Reported-From", x.Options.Operator.Email)
	str("Category", "abuse")
	str("Report-Type", "bot-infection")
	b = append(b, "Version: 0.2\n"...)
	str("User-Agent", x.Options.userAgent())
	str("Date", row.LastSeen.UTC().Format(time.RFC3339))
	str("Report-ID", x.ReportID(r, row))
	str("Source-Type", sourceType(row.IP))
	str("Source", row.IP.String())
	if row.SrcPort != 0 {
		num("Source-Port", int64(row.SrcPort))
	}
	if row.DstPort != 0 {
		num("Destination-Port", int64(row.DstPort))
	}
	if row.Domain != "" {
		str("Destination-Domain", row.Domain)
	}
	str("Bot-Name", row.Family)
	num("Occurrences", row.Events)
	str("TLP", xarfTLP(tlp))
	str("Schema-URL", XARFSchemaURL)
	str("Attachment", "text/plain")
	return b
}

// appendYAMLString appends s as a YAML scalar that every YAML 1.1 and 1.2
// parser reads as that string: plain if it is a word of letters, digits
// and ._@/+- that starts with a letter and is not a boolean or null word;
// else double-quoted with JSON's escapes, which YAML shares.
func appendYAMLString(b []byte, s string) []byte {
	if plainYAML(s) {
		return append(b, s...)
	}
	return event.AppendJSONString(b, s)
}

func plainYAML(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@/+-", c) >= 0) {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "true", "false", "on", "off", "null":
		return false
	}
	return true
}

// xarfTLP maps TLP 2.0 onto the schema's white, green, amber and red.
func xarfTLP(tlp string) string {
	switch tlp {
	case "CLEAR":
		return "white"
	case "AMBER+STRICT":
		return "amber"
	}
	return strings.ToLower(tlp)
}

// text writes the part for people.
func (x XARF) text(r *Report, row *eventstore.HostRow, tlp string) []byte {
	var b bytes.Buffer
	op := x.Options.Operator
	b.WriteString(wrap("Dear abuse team of "+orDefault(r.Subscriber.Org, r.Subscriber.Name)+",") + "\n\n")
	b.WriteString(wrap(fmt.Sprintf("The sinkhole of %s recorded a host in your network calling a name that a court has seized from a botnet: "+
		"the host is very likely infected with the malware %q. Please find its owner and help them clean it.",
		orDefault(op.Name, "a botnet takedown"), row.Family)) + "\n\n")
	line := func(label, value string) { fmt.Fprintf(&b, "  %-10s %s\n", label+":", value) }
	host := row.IP.String()
	if row.SrcPort != 0 {
		host += fmt.Sprintf(", source port %d at %s UTC", row.SrcPort, row.LastSeen.UTC().Format(CSVTime))
	}
	line("Host", host)
	if row.ASN != 0 || row.Country != "" {
		line("Network", joinNonEmpty(", ", asLabel(row.ASN, row.ASName), row.Country))
	}
	line("Malware", joinNonEmpty(" ", row.Family, paren(row.Tag)))
	if row.Domain != "" {
		line("Called", joinNonEmpty(" ", row.Domain, paren(prefixed("seized in case ", row.Case))))
	}
	line("Seen", fmt.Sprintf("%s from %s to %s UTC", plural(row.Events, "callback"), row.FirstSeen.UTC().Format(CSVTime), row.LastSeen.UTC().Format(CSVTime)))
	if row.BotIDs > 1 {
		line("Bots", fmt.Sprintf("%d distinct bot ids: several infected machines share the address", row.BotIDs))
	}
	b.WriteString("\n" + wrap("The sinkhole only answers the bots harmlessly: it never sends them a command. "+
		"This report is TLP:"+tlp+" (FIRST TLP 2.0). The machine-readable report is report.txt (X-ARF 0.2), "+
		"the observations are in evidence.txt.") + "\n")
	if op.Email != "" || op.URL != "" {
		b.WriteString("\n-- \n")
		b.WriteString(joinNonEmpty(" ", op.Name, angle(op.Email)) + "\n")
		if op.URL != "" {
			b.WriteString(op.URL + "\n")
		}
	}
	return b.Bytes()
}

// wrap breaks s into lines of at most 72 bytes at spaces.
func wrap(s string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(w) > 72 {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}

// evidence writes what the sinkhole saw of the host: the row as the CSV
// report has it, with the header row.
func evidence(row *eventstore.HostRow) []byte {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write(csvColumns)
	fields, ends := appendCSVFields(nil, nil, row, &clock{sep: " "})
	rec := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		rec[i] = string(fields[start:end])
		start = end
	}
	cw.Write(rec)
	cw.Flush()
	return b.Bytes()
}

// Write writes every message of r as an mbox (mboxrd: "From " lines in a
// body are quoted with '>'), each message a MIME entity as WriteMIME makes
// it, so that a mail client or a ticket system's importer reads them all.
func (x XARF) Write(w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var msg bytes.Buffer
	i := 0
	for m := range x.Messages(r) {
		msg.Reset()
		if err := m.WriteMIME(&msg, fmt.Sprintf("takedown-xarf-%d", i)); err != nil {
			return fmt.Errorf("report xarf: %w", err)
		}
		i++
		fmt.Fprintf(bw, "From %s %s\n", orDefault(x.Options.Operator.Email, "takedown"), r.To.Format("Mon Jan _2 15:04:05 2006"))
		for line := range bytes.Lines(msg.Bytes()) {
			if isFromLine(line) {
				bw.WriteByte('>')
			}
			bw.Write(bytes.ReplaceAll(line, []byte("\r\n"), []byte("\n")))
		}
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report xarf: %w", err)
	}
	return nil
}

// isFromLine reports whether line is ">*From ", which mboxrd quotes.
func isFromLine(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}

// WriteMIME writes m as a MIME entity: the Subject and Headers (names as
// given: some parsers match "X-ARF" literally), MIME-Version and a
// multipart/mixed body with the given boundary, text parts
// quoted-printable, CRLF line ends. The sender adds From, To, Date and
// Message-ID in front. The subject is encoded (RFC 2047) if not ASCII.
func (m *XARFMessage) WriteMIME(w io.Writer, boundary string) error {
	bw := bufio.NewWriter(w)
	field := func(k, v string) { bw.WriteString(k + ": " + v + "\r\n") }
	field("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		field(k, m.Headers[k])
	}
	field("MIME-Version", "1.0")
	field("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	bw.WriteString("\r\n")
	for _, p := range m.Parts {
		bw.WriteString("--" + boundary + "\r\n")
		ct := p.ContentType
		if p.Filename != "" {
			ct += `; name="` + p.Filename + `"`
		}
		field("Content-Type", ct)
		field("Content-Transfer-Encoding", "quoted-printable")
		if p.Inline {
			field("Content-Disposition", "inline")
		} else {
			field("Content-Disposition", `attachment; filename="`+p.Filename+`"`)
		}
		bw.WriteString("\r\n")
		qp := quotedprintable.NewWriter(bw)
		qp.Write(bytes.ReplaceAll(p.Data, []byte("\n"), []byte("\r\n")))
		if err := qp.Close(); err != nil {
			return err
		}
		bw.WriteString("\r\n")
	}
	bw.WriteString("--" + boundary + "--\r\n")
	return bw.Flush()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func angle(email string) string {
	if email == "" {
		return ""
	}
	return "<" + email + ">"
}

func asLabel(asn uint32, name string) string {
	if asn == 0 {
		return name
	}
	return strings.TrimSpace("AS" + strconv.FormatUint(uint64(asn), 10) + " " + name)
}
