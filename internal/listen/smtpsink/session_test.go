package smtpsink

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTwoMessagesAndRSET(t *testing.T) {
	ts := start(t, Config{Zones: testZones})
	cl := dial(t, ts.addr)
	cl.expect("EHLO bot.example", 250)
	cl.expect("MAIL FROM:<first@sender.example>", 250)
	cl.expect("RCPT TO:<dropped@dropped.example>", 250)
	cl.expect("RSET", 250)
	cl.expect("MAIL FROM:<one@sender.example>", 250)
	cl.expect("RCPT TO:<a@one.example>", 250)
	cl.expect("DATA", 354)
	cl.expect("Subject: one\r\n\r\nfirst\r\n.", 250)
	cl.expect("MAIL FROM: <two@sender.example> BODY=8BITMIME", 250)
	cl.expect("rcpt to:<b@x.seized.test>", 250)
	cl.expect("RCPT TO:<c@X.Seized.Test.>", 250)
	cl.expect("DATA", 354)
	cl.expect("Subject: two\r\n\r\nsecond\r\n.", 250)
	cl.expect("QUIT", 221)
	// No session event follows a session with messages.
	waitFor(t, "session end", func() bool { return ts.counter(t, "connections_open", "protocol", "smtp") == 0 })
	if evs := ts.rec.all(); len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	evs := ts.rec.all()
	one, two := evs[0], evs[1]
	if one.SMTPFrom != "one@sender.example" || one.SMTPRcptDomains != "one.example" || one.SMTPRcptCount != 1 ||
		one.SMTPSubject != "one" || one.PayloadSHA256 != sum([]byte("Subject: one\r\n\r\nfirst\r\n")) ||
		one.Domain != "one.example" || one.Zone != "" || one.Family != "unknown" {
		t.Errorf("first message: %+v", one)
	}
	if two.SMTPFrom != "two@sender.example" || two.SMTPRcptDomains != "x.seized.test" || two.SMTPRcptCount != 2 ||
		two.SMTPSubject != "two" || two.Domain != "x.seized.test" || two.Zone != "seized.test" || two.Family != "waledac" ||
		two.SMTPHelo != "bot.example" {
		t.Errorf("second message: %+v", two)
	}
}

// TestManyRecipients sends 10,000 RCPTs in one pipelined burst.
func TestManyRecipients(t *testing.T) {
	ts := start(t, Config{Zones: testZones})
	cl := dial(t, ts.addr)
	cl.expect("EHLO bot.example", 250)
	cl.expect("MAIL FROM:<spam@sender.example>", 250)
	const n = 10_000
	codes := map[int]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			code, _ := cl.reply()
			codes[code]++
		}
	}()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "RCPT TO:<user%d@d%d.seized.test>\r\n", i, i%7)
	}
	cl.send(b.String())
	<-done
	if codes[250] != DefaultMaxRecipients || codes[452] != n-DefaultMaxRecipients {
		t.Errorf("replies %v", codes)
	}
	cl.expect("DATA", 354)
	cl.expect("Subject: many\r\n\r\nhi\r\n.", 250)
	cl.expect("QUIT", 221)
	e := ts.rec.wait(t, 1)[0]
	if e.SMTPRcptCount != DefaultMaxRecipients || e.Error != "recipient limit: 9900 refused" ||
		e.SMTPRcptDomains != "d0.seized.test,d1.seized.test,d2.seized.test,d3.seized.test,d4.seized.test,d5.seized.test,d6.seized.test" {
		t.Errorf("event: rcpts %d domains %q error %q", e.SMTPRcptCount, e.SMTPRcptDomains, e.Error)
	}
	if ts.counter(t, "recipients_total", "result", "refused") != n-DefaultMaxRecipients ||
		ts.counter(t, "limit_hits_total", "limit", "recipients") != 1 {
		t.Error("refused recipients not counted")
	}
}

func TestRuleResponses(t *testing.T) {
	ts := start(t, Config{Classifier: testClassifier(t)})
	cl := dial(t, ts.addr)
	cl.expect("HELO refuse.example", 250)
	cl.expect("MAIL FROM:<>", 250)
	cl.expect("RCPT TO:<x@y.example>", 250)
	cl.expect("DATA", 354)
	if text := cl.expect("hello\r\n.", 550); text != "5.7.1 Go away" {
		t.Errorf("reply text %q", text)
	}
	// 421 closes the session.
	cl.expect("HELO close.example", 250)
	cl.expect("MAIL FROM:<a@b.example>", 250)
	cl.expect("RCPT TO:<x@y.example>", 250)
	cl.expect("DATA", 354)
	cl.expect("hello\r\n.", 421)
	if _, err := cl.r.ReadByte(); err != io.EOF {
		t.Errorf("after 421: %v, want EOF", err)
	}
	evs := ts.rec.wait(t, 2)
	if evs[0].Family != "refusebot" || evs[0].SMTPFrom != "<>" || evs[1].Family != "closebot" {
		t.Errorf("events %+v", evs)
	}
	if ts.counter(t, "messages_total", "result", "refused") != 2 {
		t.Error("refused messages not counted")
	}
}

func TestLimits(t *testing.T) {
	t.Run("command_timeout", func(t *testing.T) {
		ts := start(t, Config{CommandTimeout: 200 * time.Millisecond})
		cl := dial(t, ts.addr)
		cl.expect("EHLO slow.example", 250)
		if code, _ := cl.reply(); code != 421 {
			t.Errorf("got %d, want 421", code)
		}
		e := ts.rec.wait(t, 1)[0]
		if e.Error != "command timeout" || e.SMTPHelo != "slow.example" {
			t.Errorf("event error %q helo %q", e.Error, e.SMTPHelo)
		}
	})
	t.Run("session_timeout", func(t *testing.T) {
		ts := start(t, Config{SessionTimeout: 300 * time.Millisecond, MaxCommands: 1 << 30}) // the NOOPs come fast
		cl := dial(t, ts.addr)
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := cl.cmd("NOOP")
			if code == 421 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("session never timed out")
			}
		}
		if e := ts.rec.wait(t, 1)[0]; e.Error != "session timeout" {
			t.Errorf("event error %q", e.Error)
		}
	})
	t.Run("data_timeout", func(t *testing.T) {
		ts := start(t, Config{CommandTimeout: 200 * time.Millisecond})
		cl := dial(t, ts.addr)
		cl.expect("EHLO slow.example", 250)
		cl.expect("MAIL FROM:<a@b.example>", 250)
		cl.expect("RCPT TO:<c@d.example>", 250)
		cl.expect("DATA", 354)
		cl.send("Subject: slow\r\n\r\npart")
		if code, _ := cl.reply(); code != 421 {
			t.Errorf("got %d, want 421", code)
		}
		e := ts.rec.wait(t, 1)[0]
		if e.Error != "command timeout in DATA" || e.SMTPSubject != "slow" || e.Bytes != 21 {
			t.Errorf("event error %q subject %q bytes %d", e.Error, e.SMTPSubject, e.Bytes)
		}
		if ts.counter(t, "messages_total", "result", "incomplete") != 1 {
			t.Error("incomplete message not counted")
		}
	})
	t.Run("commands", func(t *testing.T) {
		ts := start(t, Config{MaxCommands: 5})
		cl := dial(t, ts.addr)
		for range 5 {
			cl.expect("NOOP", 250)
		}
		cl.expect("NOOP", 421)
		if e := ts.rec.wait(t, 1)[0]; e.Error != "too many commands" {
			t.Errorf("event error %q", e.Error)
		}
	})
	t.Run("errors", func(t *testing.T) {
		ts := start(t, Config{MaxErrors: 3})
		cl := dial(t, ts.addr)
		cl.expect("FOO", 500)
		cl.expect("RCPT TO:<a@b>", 503)
		cl.expect(strings.Repeat("x", 2*MaxLineBytes), 500)
		cl.expect("BAR", 421)
		e := ts.rec.wait(t, 1)[0]
		if e.Error != "too many errors" || !e.Malformed || ts.counter(t, "limit_hits_total", "limit", "line_length") != 1 {
			t.Errorf("event error %q malformed %v", e.Error, e.Malformed)
		}
	})
	t.Run("size_param", func(t *testing.T) {
		ts := start(t, Config{MaxMessageBytes: 1000})
		cl := dial(t, ts.addr)
		cl.expect("EHLO a.example", 250)
		cl.expect("MAIL FROM:<a@b.example> SIZE=1001", 552)
		cl.expect("MAIL FROM:<a@b.example> SIZE=1000", 250)
		cl.expect("QUIT", 221)
		if e := ts.rec.wait(t, 1)[0]; e.Error != "message size limit: SIZE=1001" || e.SMTPFrom != "a@b.example" {
			t.Errorf("event error %q from %q", e.Error, e.SMTPFrom)
		}
	})
	t.Run("connections_per_ip", func(t *testing.T) {
		ts := start(t, Config{MaxConnsPerIP: 1})
		cl := dial(t, ts.addr)
		c2, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c2.Read(make([]byte, 1)); err == nil {
			t.Error("second connection got data")
		}
		e := ts.rec.wait(t, 1)[0]
		if e.Error != "refused: too many connections from this address" || ts.counter(t, "connections_refused_total", "protocol", "smtp", "limit", "per_ip") != 1 {
			t.Errorf("refused event %q", e.Error)
		}
		cl.expect("QUIT", 221)
	})
}

func TestSTARTTLSWithoutConfig(t *testing.T) {
	ts := start(t, Config{})
	cl := dial(t, ts.addr)
	if text := cl.expect("EHLO a.example", 250); strings.Contains(text, "STARTTLS") {
		t.Errorf("STARTTLS offered without TLS: %q", text)
	}
	cl.expect("STARTTLS", 502)
}

func TestSTARTTLSInjection(t *testing.T) {
	ts := start(t, Config{TLS: testTLS(t)})
	cl := dial(t, ts.addr)
	cl.expect("EHLO a.example", 250)
	// A command pipelined after STARTTLS must not be taken as sent over TLS.
	cl.send("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
	if code, _ := cl.reply(); code != 220 {
		t.Fatalf("STARTTLS: %d", code)
	}
	tc := tls.Client(cl.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	cl.c, cl.r = tc, bufio.NewReader(tc)
	cl.expect("RCPT TO:<a@b.example>", 503) // no MAIL: the injected one is gone
	cl.expect("EHLO a.example", 250)
	cl.expect("STARTTLS", 502) // once only
	cl.expect("QUIT", 221)
	e := ts.rec.wait(t, 1)[0]
	if e.SMTPFrom != "" || e.TLSVersion != "1.3" || e.Error != "plain text after STARTTLS discarded" {
		t.Errorf("event from %q tls %q error %q", e.SMTPFrom, e.TLSVersion, e.Error)
	}
}

func TestShutdownEndsSessions(t *testing.T) {
	rec := &memRecorder{}
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, s.Addrs()[0].String())
	cl.expect("EHLO idle.example", 250)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := cl.reply(); code != 421 {
		t.Errorf("got %d, want 421", code)
	}
	if evs := rec.all(); len(evs) != 1 || evs[0].Error != "shutdown" {
		t.Errorf("events %+v", evs)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("Start after Shutdown")
	}
}

func TestBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Config{Listen: []string{"127.0.0.1:0", ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("bind error %v does not name the address", err)
	}
	s.Shutdown(context.Background())
}

// TestAbuseThenHealthy runs the abusive sessions at once, then checks that
// a normal session works and that goroutines and descriptors return to
// the baseline.
func TestAbuseThenHealthy(t *testing.T) {
	ts := start(t, Config{MaxMessageBytes: 1 << 20, CommandTimeout: time.Second, Zones: testZones})
	goroutines, fds := runtime.NumGoroutine(), fdCount(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			read := make(chan struct{})
			go func() { io.Copy(io.Discard, c); close(read) }() //nolint:errcheck // until the server closes
			var payload string
			switch i % 4 {
			case 0: // garbage
				payload = strings.Repeat("\x00\xff\x16\x03\x01garbage", 5000)
			case 1: // many recipients
				payload = "EHLO a\r\nMAIL FROM:<a@b>\r\n" + strings.Repeat("RCPT TO:<x@seized.test>\r\n", 2000) + "QUIT\r\n"
			case 2: // oversized message
				payload = "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\n" + strings.Repeat(strings.Repeat("y", 998)+"\r\n", 1100) + ".\r\nQUIT\r\n"
			case 3: // silent: times out
			}
			if payload != "" {
				c.Write([]byte(payload))      //nolint:errcheck // the server may close first
				c.(*net.TCPConn).CloseWrite() //nolint:errcheck
			}
			<-read
		})
	}
	wg.Wait()
	waitFor(t, "abusive sessions to end", func() bool { return ts.counter(t, "connections_open", "protocol", "smtp") == 0 })
	if ts.counter(t, "limit_hits_total", "limit", "message_size") != 5 || ts.counter(t, "limit_hits_total", "limit", "recipients") != 5 {
		t.Errorf("limit hits: size %v recipients %v", ts.counter(t, "limit_hits_total", "limit", "message_size"),
			ts.counter(t, "limit_hits_total", "limit", "recipients"))
	}
	n := len(ts.rec.all())
	cl := dial(t, ts.addr)
	cl.expect("EHLO fine.example", 250)
	cl.expect("MAIL FROM:<a@b.example>", 250)
	cl.expect("RCPT TO:<c@seized.test>", 250)
	cl.expect("DATA", 354)
	cl.expect("Subject: fine\r\n\r\nok\r\n.", 250)
	cl.expect("QUIT", 221)
	cl.c.Close()
	if e := ts.rec.wait(t, n+1)[n]; e.SMTPSubject != "fine" || e.Zone != "seized.test" {
		t.Errorf("normal session after abuse: %+v", e)
	}
	settle(t, goroutines, fds)
}
