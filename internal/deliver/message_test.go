package deliver

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"
)

var testEnv = envelope{
	from:      &mail.Address{Name: "Takedown", Address: "takedown@example.org"},
	messageID: "<id@example.org>",
	date:      time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC),
}

// parseBack reads a composed message and its parts, decoded.
func parseBack(t testing.TB, raw []byte) (*mail.Message, []*multipart.Part, [][]byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("a bare LF in the message")
	}
	for _, l := range strings.Split(string(raw), "\r\n") {
		if len(l) > 998 {
			t.Fatalf("line of %d characters", len(l))
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return m, nil, nil
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []*multipart.Part
	var datas [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		parts, datas = append(parts, p), append(datas, data)
	}
	return m, parts, datas
}

func TestComposeEncodesHeadersAndParts(t *testing.T) {
	binary := []byte{0, 1, 2, 0xff, '\n', '.', '\r', '\n'}
	raw, rcpts, err := compose(Message{
		To:      []string{"Jürgen Müller <abuse@isp.example>, cert@isp.example"},
		Subject: "Bericht über infizierte Rechner – ein sehr langer Betreff, der gefaltet werden muss, weil er lang ist",
		Headers: map[string]string{"X-ARF": "YES", "Reply-To": "Desk <desk@example.org>", "X-Note": "größer"},
		Parts: []Part{
			{ContentType: "text/plain", Data: []byte("From here on.\n.\nline with trailing space \nFrom the sinkhole\n"), Inline: true},
			{ContentType: "application/octet-stream", Filename: "bericht für heute.bin", Description: "Rohdaten", Data: binary},
		},
	}, testEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rcpts, " ") != "abuse@isp.example cert@isp.example" {
		t.Errorf("recipients %q", rcpts)
	}
	for _, l := range strings.Split(string(raw), "\r\n") {
		if strings.HasPrefix(l, "From ") {
			t.Errorf("a line begins with From : %q", l)
		}
		for _, c := range l {
			if c > 127 {
				t.Fatalf("non-ASCII line %q", l)
			}
		}
	}
	m, parts, datas := parseBack(t, raw)
	dec := new(mime.WordDecoder)
	subj, _ := dec.DecodeHeader(m.Header.Get("Subject"))
	if subj != "Bericht über infizierte Rechner – ein sehr langer Betreff, der gefaltet werden muss, weil er lang ist" {
		t.Errorf("subject %q", subj)
	}
	to, err := m.Header.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Name != "Jürgen Müller" {
		t.Errorf("To %v, %v", to, err)
	}
	if rt, _ := m.Header.AddressList("Reply-To"); len(rt) != 1 || rt[0].Address != "desk@example.org" {
		t.Errorf("Reply-To %v", rt)
	}
	if note, _ := dec.DecodeHeader(m.Header.Get("X-Note")); note != "größer" {
		t.Errorf("X-Note %q", note)
	}
	if m.Header.Get("X-ARF") != "YES" || m.Header.Get("Date") != "Fri, 27 Nov 2026 06:00:00 +0000" || m.Header.Get("Message-Id") != "<id@example.org>" {
		t.Errorf("header %v", m.Header)
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts", len(parts))
	}
	if got := strings.ReplaceAll(string(datas[0]), "\r\n", "\n"); got != "From here on.\n.\nline with trailing space \nFrom the sinkhole\n" {
		t.Errorf("text %q", got)
	}
	if !bytes.Equal(datas[1], binary) || parts[1].FileName() != "bericht für heute.bin" {
		t.Errorf("attachment %q %q", parts[1].FileName(), datas[1])
	}
	if desc, _ := dec.DecodeHeader(parts[1].Header.Get("Content-Description")); desc != "Rohdaten" {
		t.Errorf("description %q", desc)
	}
}

func TestComposeSinglePart(t *testing.T) {
	raw, _, err := compose(Message{To: []string{"a@b.example"}, Subject: "s", Parts: []Part{{ContentType: "text/plain", Data: []byte("hi"), Inline: true}}}, testEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _, _ := parseBack(t, raw)
	if m.Header.Get("Content-Type") != "text/plain; charset=utf-8" || m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Errorf("header %v", m.Header)
	}
}

func TestComposeRefuses(t *testing.T) {
	ok := []Part{{ContentType: "text/plain", Data: []byte("x"), Inline: true}}
	for name, m := range map[string]Message{
		"no recipient":       {Parts: ok},
		"bad recipient":      {To: []string{"not an address"}, Parts: ok},
		"non-ASCII domain":   {To: []string{"a@bücher.example"}, Parts: ok},
		"no part":            {To: []string{"a@b.example"}},
		"subject injection":  {To: []string{"a@b.example"}, Subject: "x\r\nBcc: victim@example.org", Parts: ok},
		"header injection":   {To: []string{"a@b.example"}, Headers: map[string]string{"X-A": "1\r\nBcc: v@example.org"}, Parts: ok},
		"bad header name":    {To: []string{"a@b.example"}, Headers: map[string]string{"X A:": "1"}, Parts: ok},
		"reserved header":    {To: []string{"a@b.example"}, Headers: map[string]string{"message-id": "<x@y>"}, Parts: ok},
		"bad content type":   {To: []string{"a@b.example"}, Parts: []Part{{ContentType: "text/", Data: []byte("x")}}},
		"multipart part":     {To: []string{"a@b.example"}, Parts: []Part{{ContentType: "multipart/mixed; boundary=x"}}},
		"filename injection": {To: []string{"a@b.example"}, Parts: []Part{{Filename: "a\r\nb", Data: []byte("x")}}},
	} {
		if _, _, err := compose(m, testEnv, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFold(t *testing.T) {
	long := strings.Repeat("word ", 40)
	f := fold("Subject", long)
	for _, l := range strings.Split(f, "\r\n") {
		if len(l) > 78 {
			t.Errorf("line of %d", len(l))
		}
	}
	if strings.ReplaceAll(f, "\r\n", "") != "Subject: "+long {
		t.Errorf("folding changed the value: %q", f)
	}
	if fold("A", "b") != "A: b" {
		t.Error("short line folded")
	}
}

func TestReportMessage(t *testing.T) {
	if _, err := ReportMessage(Report{Format: "csv", Day: day}); err != ErrNoData {
		t.Errorf("empty report: %v", err)
	}
	if _, err := ReportMessage(Report{Format: "../x", Day: day, Data: []byte("x")}); err == nil {
		t.Error("bad format accepted")
	}
	a, err := ReportMessage(Report{To: []string{"a@b.example"}, Subscriber: "S", Day: day, Format: "json", Data: []byte(`{"a":1}`), Rows: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ReportMessage(Report{To: []string{"a@b.example"}, Subscriber: "S", Day: day, Format: "json", Data: []byte(`{"a":1}`), Rows: 1})
	if !bytes.Equal(a.Parts[1].Data, b.Parts[1].Data) {
		t.Error("the same report compresses differently")
	}
	if a.Parts[1].Filename != "report-2026-11-26.json.gz" || !strings.Contains(string(a.Parts[0].Data), "1 entry") ||
		a.Subject != "takedown report 2026-11-26 for S: 1" {
		t.Errorf("%+v", a)
	}
}

func TestConfigRefused(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, "")
	for name, cfg := range map[string]Config{
		"no relay":                    {From: "a@b.example"},
		"bad relay":                   {Relay: "host:port", From: "a@b.example"},
		"no from":                     {Relay: "127.0.0.1:25"},
		"two froms":                   {Relay: "127.0.0.1:25", From: "a@b.example, c@d.example"},
		"bad tls":                     {Relay: "127.0.0.1:25", From: "a@b.example", TLS: "maybe"},
		"password in clear to remote": {Relay: "mail.example.org:25", From: "a@b.example", TLS: TLSNone, Username: "u"},
		"both signers":                {Relay: "127.0.0.1:25", From: "a@b.example", PGPKeyFile: "k", SMIMECertFile: "c"},
		"missing key":                 {Relay: "127.0.0.1:25", From: "a@b.example", PGPKeyFile: "/nonexistent"},
		"missing CA":                  {Relay: "127.0.0.1:25", From: "a@b.example", CAFile: "/nonexistent"},
	} {
		cfg.DB = db
		if _, err := New(ctx, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(ctx, Config{Relay: "127.0.0.1:25", From: "a@b.example"}); err == nil {
		t.Error("no database accepted")
	}
	// Loopback may take a password in the clear; a bare host gets port 25.
	d, err := New(ctx, Config{DB: db, Relay: "localhost", From: "a@b.example", TLS: TLSNone, Username: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if d.cfg.Relay != "localhost:25" {
		t.Errorf("relay %q", d.cfg.Relay)
	}
}

func TestPGPKeyNeedsPassphrase(t *testing.T) {
	dir := t.TempDir()
	keyFile, _, _ := pgpKey(t, dir, "secret")
	base := Config{DB: openDB(t, ""), Relay: "127.0.0.1:25", From: "a@b.example", PGPKeyFile: keyFile}
	if _, err := New(context.Background(), base); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("no passphrase: %v", err)
	}
	base.PGPPassphrase = "wrong"
	if _, err := New(context.Background(), base); err == nil {
		t.Error("wrong passphrase accepted")
	}
}

func TestKeyAndMessageID(t *testing.T) {
	d := &Deliverer{idHost: "example.org"}
	berlin := time.FixedZone("CET", 3600)
	a, _ := Key{Subscriber: " as64500 ", Day: time.Date(2026, 11, 26, 23, 30, 0, 0, berlin), Format: "csv"}.normalize()
	b, _ := Key{Subscriber: "as64500", Day: day, Format: "csv"}.normalize()
	if a != b || d.messageID(a) != d.messageID(b) {
		t.Errorf("%v %v", a, b)
	}
	c, _ := Key{Subscriber: "as64500", Day: day, Format: "json"}.normalize()
	if d.messageID(c) == d.messageID(b) {
		t.Error("formats share a Message-ID")
	}
	if _, err := (Key{Subscriber: "", Day: day, Format: "csv"}).normalize(); err == nil {
		t.Error("empty subscriber")
	}
	if _, err := (Key{Subscriber: "x", Format: "csv"}).normalize(); err == nil {
		t.Error("no day")
	}
	if _, err := (Key{Subscriber: "x", Day: day, Format: "CSV!"}).normalize(); err == nil {
		t.Error("bad format")
	}
}

// FuzzCompose: whatever the caller gives, compose either refuses it or
// makes a message that parses back to what was given.
func FuzzCompose(f *testing.F) {
	f.Add("takedown report", "report.csv.gz", "text/plain", []byte("Hello\nFrom the sinkhole\n"), true)
	f.Add("Bericht über Rechner", "bericht für heute.bin", "application/octet-stream", []byte{0, 0xff, '\r', '\n', '.'}, false)
	f.Add("=?utf-8?q?x?=", "", "text/csv; charset=utf-8", []byte(".\r\n.\r\n"), false)
	f.Add(strings.Repeat("long subject ", 20), strings.Repeat("n", 100), "text/x-yaml", []byte("---\nSource: 192.0.2.1\n"), true)
	f.Fuzz(func(t *testing.T, subject, filename, ctype string, data []byte, inline bool) {
		m := Message{
			To:      []string{"abuse@isp.example"},
			Subject: subject,
			Parts: []Part{
				{ContentType: "text/plain", Data: []byte("x"), Inline: true},
				{ContentType: ctype, Filename: filename, Data: data, Inline: inline},
			},
		}
		raw, _, err := compose(m, testEnv, nil)
		if err != nil {
			return
		}
		msg, parts, datas := parseBack(t, raw)
		if got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err == nil && got != strings.TrimSpace(subject) &&
			!strings.Contains(subject, "=?") && !strings.Contains(subject, "  ") && strings.TrimSpace(subject) == subject {
			t.Errorf("subject %q, want %q", got, subject)
		}
		if len(parts) != 2 {
			t.Fatalf("%d parts", len(parts))
		}
		got := datas[1]
		if parts[1].Header.Get("Content-Type") != "" && strings.HasPrefix(parts[1].Header.Get("Content-Type"), "text/") {
			// quoted-printable text travels with CRLF line ends
			got = bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n"))
			data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
			if bytes.ContainsRune(data, '\r') {
				return // a lone CR becomes a line end
			}
		}
		if !bytes.Equal(got, data) {
			t.Errorf("part data %q, want %q", got, data)
		}
		if filename != "" && parts[1].FileName() != filename && strings.TrimSpace(filename) == filename {
			t.Errorf("filename %q, want %q", parts[1].FileName(), filename)
		}
	})
}
