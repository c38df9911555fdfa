package deliver

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Part is one MIME part of a Message.
type Part struct {
	// ContentType is the media type with its parameters, e.g. "text/csv"
	// or "text/plain; charset=utf-8". A text type without a charset gets
	// charset=utf-8 when Data is valid UTF-8. Empty: application/octet-stream.
	ContentType string
	// Filename names the part in Content-Disposition (and in the name
	// parameter of Content-Type). Non-ASCII names are encoded (RFC 2231).
	Filename string
	// Description, when set, becomes the Content-Description header.
	Description string
	// Data is the content, not encoded: text/* parts are sent
	// quoted-printable, all others base64.
	Data []byte
	// Inline shows the part in the body (Content-Disposition: inline);
	// otherwise it is an attachment.
	Inline bool
}

// Message is a mail whose content the caller gives. From, Date,
// Message-ID, MIME-Version and the Content-* headers are the Deliverer's.
type Message struct {
	// To are the recipients, each an address with or without a display
	// name ("Abuse <abuse@example.net>"). Domains must be ASCII (A-labels).
	To []string
	// Subject may hold any UTF-8 text; it is encoded (RFC 2047) as needed.
	Subject string
	// Headers are more header fields, e.g. "X-ARF": "YES". Values are
	// encoded (RFC 2047) when not ASCII; Reply-To holds addresses and
	// overrides Config.ReplyTo. The Deliverer adds Auto-Submitted:
	// auto-generated unless it is set here.
	Headers map[string]string
	// Parts are the body: one inline part is the whole body, more (or an
	// attachment) make a multipart/mixed message.
	Parts []Part
}

// ErrNoData is what a build function returns when there is nothing to
// report: Deliver then sends and records nothing.
var ErrNoData = errors.New("no data to report")

// Report is the content of one daily report mail, for ReportMessage.
type Report struct {
	// To are the subscriber's addresses.
	To []string
	// Subscriber names the network owner in the text, e.g. "AS64500 Example".
	Subscriber string
	// Day is the day the report covers.
	Day time.Time
	// Format is the report's file extension: csv, json, …
	Format string
	// Name, if set, is the attachment's file name before ".gz" (e.g.
	// Shadowserver's "2026-12-06-event4_sinkhole-isp-a.csv"); default
	// "report-YYYY-MM-DD.FORMAT".
	Name string
	// ContentType of the uncompressed report, e.g. "text/csv"; it is
	// named in the text only, the attachment is application/gzip.
	ContentType string
	// Data is the uncompressed report; empty means ErrNoData.
	Data []byte
	// Rows counts the report's entries, for the text; 0 with Data means
	// unknown.
	Rows int
	// Subject overrides the default subject.
	Subject string
	// Text overrides the default body text.
	Text string
}

// ReportMessage makes the mail of a daily report: a short text and the
// report attached gzip-compressed as report-YYYY-MM-DD.FORMAT.gz. It
// returns ErrNoData when the report is empty.
func ReportMessage(r Report) (Message, error) {
	if len(r.Data) == 0 {
		return Message{}, ErrNoData
	}
	if err := checkFormat(r.Format); err != nil {
		return Message{}, err
	}
	day := r.Day.Format(time.DateOnly)
	name := "report-" + day + "." + r.Format
	if r.Name != "" {
		name = r.Name
	}
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zw.Name = name // no ModTime: the same report compresses to the same bytes
	if _, err := zw.Write(r.Data); err != nil {
		return Message{}, err
	}
	if err := zw.Close(); err != nil {
		return Message{}, err
	}
	entries := "entries"
	if r.Rows > 0 {
		entries = fmt.Sprintf("%d entries", r.Rows)
		if r.Rows == 1 {
			entries = "1 entry"
		}
	}
	subject := r.Subject
	if subject == "" {
		subject = fmt.Sprintf("takedown report %s for %s", day, r.Subscriber)
		if r.Rows > 0 {
			subject += fmt.Sprintf(": %d", r.Rows)
		}
	}
	text := r.Text
	if text == "" {
		kind := r.Format
		if r.ContentType != "" {
			kind = r.ContentType
		}
		text = fmt.Sprintf(`Hello,

attached is the takedown report of %s for

    %s

It lists %s about machines in your network that contacted
a sinkhole of a botnet that was taken down: they are most likely infected.
The file %s.gz is %s, compressed with gzip.

This message is sent automatically, once a day and only when there is
something to report. Its Message-ID is the same for the same report, so a
copy sent twice can be recognised.
`, day, r.Subscriber, entries, name, kind)
	}
	return Message{
		To:      r.To,
		Subject: subject,
		Parts: []Part{
			{ContentType: "text/plain; charset=utf-8", Data: []byte(text), Inline: true},
			{ContentType: "application/gzip", Filename: name + ".gz", Data: z.Bytes()},
		},
	}, nil
}

// entity is a MIME entity: its header lines (folded, without line ends)
// and its body with CRLF line ends.
type entity struct {
	header []string
	body   []byte
}

// bytes returns the entity as it is sent and signed.
func (e entity) bytes() []byte {
	var b bytes.Buffer
	for _, h := range e.header {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(e.body)
	return b.Bytes()
}

// envelope is what the Deliverer adds to a Message.
type envelope struct {
	from      *mail.Address
	replyTo   []*mail.Address
	messageID string // with angle brackets
	date      time.Time
}

// reserved are the header fields a Message may not set.
var reserved = []string{"from", "to", "cc", "bcc", "date", "message-id", "mime-version",
	"content-type", "content-transfer-encoding", "content-disposition", "subject", "sender", "return-path"}

// compose renders m as an RFC 5322 message with CRLF line ends, signed
// by s when s is not nil. It returns the envelope recipients.
func compose(m Message, env envelope, s signer) ([]byte, []string, error) {
	if len(m.To) == 0 {
		return nil, nil, errors.New("message has no recipient")
	}
	var to []*mail.Address
	var rcpts []string
	for _, t := range m.To {
		as, err := parseAddresses(t)
		if err != nil {
			return nil, nil, fmt.Errorf("recipient %q: %w", t, err)
		}
		for _, a := range as {
			to = append(to, a)
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(m.Parts) == 0 {
		return nil, nil, errors.New("message has no part")
	}
	if err := checkText("subject", m.Subject); err != nil {
		return nil, nil, err
	}
	head := []string{
		fold("From", env.from.String()),
		fold("To", joinAddresses(to)),
	}
	replyTo := env.replyTo
	names := make([]string, 0, len(m.Headers))
	autoSubmitted := false
	for k, v := range m.Headers {
		if !isToken(k) {
			return nil, nil, fmt.Errorf("header name %q: want letters, digits and '-'", cut(k))
		}
		lk := strings.ToLower(k)
		if slices.Contains(reserved, lk) {
			return nil, nil, fmt.Errorf("header %s is set by the deliverer, not the message", k)
		}
		if err := checkText("header "+k, v); err != nil {
			return nil, nil, err
		}
		switch lk {
		case "reply-to":
			as, err := parseAddresses(v)
			if err != nil {
				return nil, nil, fmt.Errorf("header Reply-To %q: %w", cut(v), err)
			}
			replyTo = as
			continue
		case "auto-submitted":
			autoSubmitted = true
		}
		names = append(names, k)
	}
	slices.Sort(names)
	if len(replyTo) > 0 {
		head = append(head, fold("Reply-To", joinAddresses(replyTo)))
	}
	head = append(head,
		fold("Subject", mime.QEncoding.Encode("utf-8", m.Subject)),
		"Date: "+env.date.Format(time.RFC1123Z),
		"Message-ID: "+env.messageID,
	)
	if !autoSubmitted {
		head = append(head, "Auto-Submitted: auto-generated")
	}
	for _, k := range names {
		head = append(head, fold(k, mime.QEncoding.Encode("utf-8", m.Headers[k])))
	}
	head = append(head, "MIME-Version: 1.0")

	var body entity
	var err error
	if len(m.Parts) == 1 && m.Parts[0].Inline {
		body, err = partEntity(m.Parts[0])
	} else {
		var parts []entity
		for i, p := range m.Parts {
			e, err := partEntity(p)
			if err != nil {
				return nil, nil, fmt.Errorf("part %d: %w", i+1, err)
			}
			parts = append(parts, e)
		}
		body = multipartEntity("mixed", nil, parts)
	}
	if err != nil {
		return nil, nil, err
	}
	if s != nil {
		if body, err = s.sign(body); err != nil {
			return nil, nil, fmt.Errorf("signing: %w", err)
		}
	}
	head = append(head, body.header...)
	return entity{header: head, body: body.body}.bytes(), rcpts, nil
}

// partEntity encodes one part.
func partEntity(p Part) (entity, error) {
	ct := p.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return entity{}, fmt.Errorf("content type %q: %w", cut(ct), err)
	}
	if strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
		return entity{}, fmt.Errorf("content type %q: a part cannot be %s", cut(ct), mt)
	}
	if err := checkText("filename", p.Filename); err != nil {
		return entity{}, err
	}
	if err := checkText("description", p.Description); err != nil {
		return entity{}, err
	}
	text := strings.HasPrefix(mt, "text/") && utf8.Valid(p.Data)
	if text && params["charset"] == "" {
		params["charset"] = "utf-8"
	}
	if p.Filename != "" {
		params["name"] = p.Filename
	}
	e := entity{header: []string{fold("Content-Type", mime.FormatMediaType(mt, params))}}
	disp := "attachment"
	if p.Inline {
		disp = "inline"
	}
	var dparams map[string]string
	if p.Filename != "" {
		dparams = map[string]string{"filename": p.Filename}
	}
	e.header = append(e.header, fold("Content-Disposition", mime.FormatMediaType(disp, dparams)))
	if p.Description != "" {
		e.header = append(e.header, fold("Content-Description", mime.QEncoding.Encode("utf-8", p.Description)))
	}
	if text {
		e.header = append(e.header, "Content-Transfer-Encoding: quoted-printable")
		e.body = encodeQP(p.Data)
	} else {
		e.header = append(e.header, "Content-Transfer-Encoding: base64")
		e.body = encodeBase64(p.Data)
	}
	return e, nil
}

// multipartEntity joins parts into a multipart/subtype entity with more
// Content-Type parameters.
func multipartEntity(subtype string, params map[string]string, parts []entity) entity {
	boundary := newBoundary()
	if params == nil {
		params = map[string]string{}
	}
	params["boundary"] = boundary
	var b bytes.Buffer
	if subtype == "signed" {
		b.WriteString("This is a digitally signed message in MIME format.\r\n\r\n")
	}
	for i, p := range parts {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("--" + boundary + "\r\n")
		b.Write(p.bytes())
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return entity{
		header: []string{fold("Content-Type", mime.FormatMediaType("multipart/"+subtype, params))},
		body:   b.Bytes(),
	}
}

// newBoundary returns a boundary that cannot occur in quoted-printable or
// base64 text ("=_" is neither).
func newBoundary() string {
	var r [12]byte
	rand.Read(r[:])
	return "=_td_" + hex.EncodeToString(r[:])
}

// encodeQP encodes text as quoted-printable with CRLF line ends. A line
// beginning "From " gets its F encoded, so no transport mangles it into
// ">From " and breaks a signature (RFC 3156 §3).
func encodeQP(data []byte) []byte {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write(data)
	w.Close()
	out := b.Bytes()
	if bytes.HasPrefix(out, []byte("From ")) {
		out = append([]byte("=46"), out[1:]...)
	}
	return bytes.ReplaceAll(out, []byte("\r\nFrom "), []byte("\r\n=46rom "))
}

// encodeBase64 encodes data in lines of 76 characters with CRLF ends.
func encodeBase64(data []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// fold returns the header line "name: value", folded at spaces so that
// lines stay under 78 characters where the value allows.
func fold(name, value string) string {
	line := name + ": " + value
	if len(line) <= 78 {
		return line
	}
	var b strings.Builder
	cur := 0 // length of the current line
	for i, w := range strings.Split(line, " ") {
		switch {
		case i == 0:
		case cur+1+len(w) > 78 && cur > 1:
			b.WriteString("\r\n ")
			cur = 1
		default:
			b.WriteByte(' ')
			cur++
		}
		b.WriteString(w)
		cur += len(w)
	}
	return b.String()
}

// parseAddresses parses a list of addresses with ASCII domains.
func parseAddresses(s string) ([]*mail.Address, error) {
	as, err := mail.ParseAddressList(s)
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		for _, c := range a.Address {
			if c >= utf8.RuneSelf {
				return nil, fmt.Errorf("address %q is not ASCII (give domains as A-labels)", a.Address)
			}
		}
	}
	return as, nil
}

func joinAddresses(as []*mail.Address) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// checkText refuses text that would break a header: invalid UTF-8 and
// control characters but tab.
func checkText(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s %q: not valid UTF-8", field, cut(v))
	}
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("%s %q: has the control character %U", field, cut(v), c)
		}
	}
	return nil
}

// isToken reports whether s can be a header field name.
func isToken(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func cut(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
