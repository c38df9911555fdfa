package smtpsink

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"

	"github.com/takedown-project/takedown/internal/testnet"
)

// The tests in this file drive the listener with real clients from
// Debian: swaks (SMTP, with STARTTLS) and socat.

// run runs a client with a deadline and returns its combined output and
// exit error.
func run(t *testing.T, name string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish: %s", name, out)
	}
	return string(out), err
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeMessage writes msg to a file for swaks --data.
func writeMessage(t *testing.T, msg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const testMessage = "From: Spam <spam@sender.example>\r\n" +
	"To: victim@seized.test\r\n" +
	"Subject: =?UTF-8?B?Q2hlYXAgcGlsbHMg4oCUIDUwJSBvZmY=?=\r\n" +
	"Message-ID: <20100224.1234@sender.example>\r\n" +
	"\r\n" +
	"Buy now.\r\n" +
	".leading dot\r\n"

// swaksSent is what swaks sends as the message for --data: the file and
// a line end before the final dot, dot-stuffing undone.
func swaksSent(msg string) []byte { return []byte(msg + "\r\n") }

func checkMessage(t *testing.T, ts *testServer, e event.Event, body []byte) {
	t.Helper()
	if e.Time.IsZero() || time.Since(e.Time) > time.Minute || e.Time.Location() != time.UTC {
		t.Errorf("time %v", e.Time)
	}
	want := event.Event{
		Time:            e.Time,
		Sensor:          "test-node",
		Protocol:        event.ProtoSMTP,
		Transport:       event.TransportTCP,
		SrcIP:           netip.MustParseAddr("127.0.0.1"),
		SrcPort:         e.SrcPort,
		DstIP:           netip.MustParseAddr("127.0.0.1"),
		DstPort:         ts.port(),
		Domain:          "seized.test",
		Zone:            "seized.test",
		Case:            "waledac-2010",
		Family:          "pillbot",
		Tag:             "pills",
		SMTPHelo:        "bot.example",
		SMTPFrom:        "spam@sender.example",
		SMTPRcptDomains: "seized.test,other.example",
		SMTPRcptCount:   3,
		SMTPSubject:     "Cheap pills — 50% off",
		SMTPMessageID:   "<20100224.1234@sender.example>",
		TLSVersion:      e.TLSVersion,
		TLSCipher:       e.TLSCipher,
		TLSFingerprint:  e.TLSFingerprint,
		Bytes:           int64(len(body)),
		PayloadSHA256:   sum(body),
		PayloadHead:     body[:min(len(body), DefaultHeadBytes)],
	}
	if e.SrcPort == 0 {
		t.Error("no source port")
	}
	if d := diffEvents(e, want); d != "" {
		t.Errorf("event differs:\n%s", d)
	}
}

// diffEvents names the fields of got that differ from want.
func diffEvents(got, want event.Event) string {
	var b strings.Builder
	f := func(name string, g, w any) {
		if g != w {
			b.WriteString(name + ": got " + strconv.Quote(toString(g)) + ", want " + strconv.Quote(toString(w)) + "\n")
		}
	}
	f("Sensor", got.Sensor, want.Sensor)
	f("Protocol", got.Protocol, want.Protocol)
	f("Transport", got.Transport, want.Transport)
	f("SrcIP", got.SrcIP, want.SrcIP)
	f("SrcPort", got.SrcPort, want.SrcPort)
	f("DstIP", got.DstIP, want.DstIP)
	f("DstPort", got.DstPort, want.DstPort)
	f("Domain", got.Domain, want.Domain)
	f("Zone", got.Zone, want.Zone)
	f("Case", got.Case, want.Case)
	f("Family", got.Family, want.Family)
	f("Tag", got.Tag, want.Tag)
	f("BotID", got.BotID, want.BotID)
	f("SMTPHelo", got.SMTPHelo, want.SMTPHelo)
	f("SMTPFrom", got.SMTPFrom, want.SMTPFrom)
	f("SMTPRcptDomains", got.SMTPRcptDomains, want.SMTPRcptDomains)
	f("SMTPRcptCount", got.SMTPRcptCount, want.SMTPRcptCount)
	f("SMTPSubject", got.SMTPSubject, want.SMTPSubject)
	f("SMTPMessageID", got.SMTPMessageID, want.SMTPMessageID)
	f("TLSVersion", got.TLSVersion, want.TLSVersion)
	f("TLSCipher", got.TLSCipher, want.TLSCipher)
	f("TLSFingerprint", got.TLSFingerprint, want.TLSFingerprint)
	f("Error", got.Error, want.Error)
	f("Malformed", got.Malformed, want.Malformed)
	f("Bytes", got.Bytes, want.Bytes)
	f("PayloadSHA256", got.PayloadSHA256, want.PayloadSHA256)
	f("PayloadHead", string(got.PayloadHead), string(want.PayloadHead))
	f("HTTPMethod", got.HTTPMethod, want.HTTPMethod)
	f("DNSQType", got.DNSQType, want.DNSQType)
	return b.String()
}

func toString(v any) string { return fmt.Sprint(v) }

func swaksArgs(ts *testServer, data string, extra ...string) []string {
	return append([]string{
		"--server", ts.addr, "--helo", "bot.example", "--from", "spam@sender.example",
		"--to", "victim@Seized.TEST,other@other.example,second@seized.test",
		"--data", "@" + data, "--timeout", "20",
	}, extra...)
}

func TestSwaks(t *testing.T) {
	testnet.Need(t, "swaks")
	ts := start(t, Config{Classifier: testClassifier(t), Zones: testZones})
	out, err := run(t, "swaks", nil, swaksArgs(ts, writeMessage(t, testMessage))...)
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(out, "<-  250 2.0.0 Ok") || strings.Contains(out, "STARTTLS") {
		t.Errorf("swaks dialogue:\n%s", out)
	}
	evs := ts.rec.wait(t, 1)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	checkMessage(t, ts, e, swaksSent(testMessage))
	if e.TLSVersion != "" {
		t.Errorf("TLS %q without STARTTLS", e.TLSVersion)
	}
	if got := ts.counter(t, "messages_total", "result", "accepted"); got != 1 {
		t.Errorf("messages accepted %v", got)
	}
	if got := ts.counter(t, "recipients_total", "result", "accepted"); got != 3 {
		t.Errorf("recipients accepted %v", got)
	}
}

func TestSwaksSTARTTLS(t *testing.T) {
	testnet.Need(t, "swaks")
	ts := start(t, Config{Classifier: testClassifier(t), Zones: testZones, TLS: testTLS(t)})
	out, err := run(t, "swaks", nil, swaksArgs(ts, writeMessage(t, testMessage), "--tls")...)
	if err != nil {
		t.Fatalf("swaks --tls: %v\n%s", err, out)
	}
	if !strings.Contains(out, "<-  220 2.0.0 Ready to start TLS") || !strings.Contains(out, "<~  250 2.0.0 Ok") {
		t.Errorf("swaks dialogue:\n%s", out)
	}
	evs := ts.rec.wait(t, 1)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	e := evs[0]
	checkMessage(t, ts, e, swaksSent(testMessage))
	if e.TLSVersion != "1.3" || !strings.HasPrefix(e.TLSCipher, "TLS_") || !strings.HasPrefix(e.TLSFingerprint, "t13") {
		t.Errorf("TLS fields %q %q %q", e.TLSVersion, e.TLSCipher, e.TLSFingerprint)
	}
	if got := ts.counter(t, "starttls_total", "result", "ok"); got != 1 {
		t.Errorf("starttls ok %v", got)
	}

	// Without a TLS config STARTTLS is neither offered nor accepted.
	plain := start(t, Config{})
	out, err = run(t, "swaks", nil, swaksArgs(plain, writeMessage(t, testMessage), "--tls")...)
	if err == nil || !strings.Contains(out, "did not advertise STARTTLS") {
		t.Errorf("swaks --tls against a server without TLS: %v\n%s", err, out)
	}
}

func TestSwaksOversized(t *testing.T) {
	testnet.Need(t, "swaks")
	const limit = 64 << 10
	ts := start(t, Config{MaxMessageBytes: limit, Zones: testZones})
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 2*limit/100)
	out, err := run(t, "swaks", nil, swaksArgs(ts, writeMessage(t, big))...)
	if err == nil || !strings.Contains(out, "<** 552 5.3.4") {
		t.Fatalf("swaks with an oversized message: %v\n%s", err, out)
	}
	e := ts.rec.wait(t, 1)[0]
	if !strings.HasPrefix(e.Error, "message too large") || e.Bytes != int64(len(big)+2) ||
		e.PayloadSHA256 != "" || string(e.PayloadHead) != big[:DefaultHeadBytes] ||
		e.SMTPSubject != "big" || e.SMTPRcptCount != 3 {
		t.Errorf("event: error %q bytes %d (sent %d) sha %q subject %q rcpts %d",
			e.Error, e.Bytes, len(big)+2, e.PayloadSHA256, e.SMTPSubject, e.SMTPRcptCount)
	}
	if ts.counter(t, "limit_hits_total", "limit", "message_size") != 1 ||
		ts.counter(t, "messages_total", "result", "too_large") != 1 {
		t.Error("oversized message not counted")
	}
	// The listener goes on: a normal message right after works.
	out, err = run(t, "swaks", nil, swaksArgs(ts, writeMessage(t, testMessage))...)
	if err != nil {
		t.Fatalf("swaks after the oversized message: %v\n%s", err, out)
	}
}

func TestSocatGarbage(t *testing.T) {
	testnet.Need(t, "socat")
	ts := start(t, Config{Zones: testZones})
	garbage := make([]byte, 64<<10)
	rand.Read(garbage)
	out, _ := run(t, "socat", garbage, "-t", "5", "-", "TCP:"+ts.addr)
	if !strings.HasPrefix(out, "220 ") {
		t.Errorf("no greeting: %q", out[:min(len(out), 100)])
	}
	e := ts.rec.wait(t, 1)[0]
	if !e.Malformed || e.Error == "" || e.Bytes == 0 || e.Bytes > int64(len(garbage)) ||
		e.PayloadSHA256 != sum(garbage[:e.Bytes]) || !bytes.Equal(e.PayloadHead, garbage[:DefaultHeadBytes]) ||
		e.Family != "unknown" || e.Protocol != event.ProtoSMTP {
		t.Errorf("garbage event: malformed %v error %q bytes %d family %q", e.Malformed, e.Error, e.Bytes, e.Family)
	}
	if ts.counter(t, "malformed_total") == 0 {
		t.Error("malformed not counted")
	}

	// Only EHLO and QUIT: a session event without a message.
	const dialogue = "EHLO bot.seized.test\r\nQUIT\r\n"
	out, err := run(t, "socat", []byte(dialogue), "-t", "5", "-", "TCP:"+ts.addr)
	if err != nil || !strings.Contains(out, "221 2.0.0 Bye") {
		t.Fatalf("socat: %v %q", err, out)
	}
	evs := ts.rec.wait(t, 2)
	e = evs[1]
	want := event.Event{
		Sensor: "test-node", Protocol: event.ProtoSMTP, Transport: event.TransportTCP,
		SrcIP: netip.MustParseAddr("127.0.0.1"), SrcPort: e.SrcPort,
		DstIP: netip.MustParseAddr("127.0.0.1"), DstPort: ts.port(),
		Domain: "bot.seized.test", Zone: "seized.test", Case: "waledac-2010", Family: "waledac",
		SMTPHelo: "bot.seized.test",
		Bytes:    int64(len(dialogue)), PayloadSHA256: sum([]byte(dialogue)),
		PayloadHead: []byte(dialogue),
	}
	if d := diffEvents(e, want); d != "" {
		t.Errorf("EHLO/QUIT session event:\n%s", d)
	}
}

// TestGarbageThenLateRead: a client that sends a burst of garbage and reads
// only afterwards still gets the greeting and the replies: the session's end
// does not reset the connection over the input it left unread.
func TestGarbageThenLateRead(t *testing.T) {
	ts := start(t, Config{Zones: testZones})
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	garbage := bytes.Repeat([]byte("\x16\x03\x01 not smtp\r\n"), 3000) // an error a line
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(garbage); err != nil {
		t.Fatalf("writing the garbage: %v", err)
	}
	ts.rec.wait(t, 1) // the session is over
	time.Sleep(100 * time.Millisecond)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading after the session's end: %v (got %q)", err, got[:min(len(got), 80)])
	}
	if !bytes.HasPrefix(got, []byte("220 ")) || !bytes.Contains(got, []byte("\r\n500 ")) {
		t.Errorf("replies %q, want the greeting and the errors", got[:min(len(got), 200)])
	}
}
