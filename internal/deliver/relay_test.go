package deliver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeRelay is a tiny SMTP server for the failures Exim will not produce
// on demand: no answer to the end of data. It accepts everything up to
// the end of data, then does what endOfData says.
type fakeRelay struct {
	ln        net.Listener
	endOfData func(c net.Conn) // writes the reply, or not
	wg        sync.WaitGroup
	mu        sync.Mutex
	sessions  int
}

func startFakeRelay(t *testing.T, endOfData func(c net.Conn)) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRelay{ln: ln, endOfData: endOfData}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.sessions++
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer c.Close()
				r.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *fakeRelay) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions
}

func (r *fakeRelay) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	say := func(s string) { c.Write([]byte(s + "\r\n")) }
	say("220 fake ESMTP")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO":
			say("250-fake\r\n250 SIZE 1000000")
		case "MAIL", "RCPT", "RSET", "NOOP":
			say("250 ok")
		case "DATA":
			say("354 go on")
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			r.endOfData(c)
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 no")
		}
	}
}

// No answer to the end of data: the relay may have the message. The row
// becomes unknown at once and is not tried again.
func TestNoAnswerToEndOfDataIsUnknown(t *testing.T) {
	ctx := context.Background()
	r := startFakeRelay(t, func(c net.Conn) { c.Close() })
	d, err := New(ctx, Config{DB: openDB(t, ""), Relay: r.ln.Addr().String(), TLS: TLSNone,
		From: "t@example.org", Backoff: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	key := Key{Subscriber: "s", Day: day, Format: "csv"}
	res, err := d.Deliver(ctx, key, reportBuild([]string{"abuse@isp.example"}, &calls))
	if err == nil || res.Status != StatusUnknown || res.Attempts != 1 || r.count() != 1 {
		t.Fatalf("%+v, %v, %d sessions", res, err, r.count())
	}
	atts, _ := d.Attempts(ctx, key)
	if len(atts) != 1 || atts[0].Outcome != "ambiguous" || !strings.Contains(atts[0].Error, "end of data") {
		t.Errorf("attempts %+v", atts)
	}
	// Deliver leaves it to the operator; MarkSent is one decision.
	res, err = d.Deliver(ctx, key, reportBuild([]string{"abuse@isp.example"}, &calls))
	if err != nil || !res.Skipped || r.count() != 1 {
		t.Fatalf("second Deliver: %+v, %v", res, err)
	}
	rec, err := d.MarkSent(ctx, key, "found in the relay's log: 250 queued as 4711")
	if err != nil || rec.Status != StatusSent || rec.Response != "found in the relay's log: 250 queued as 4711" || rec.Sent.IsZero() {
		t.Fatalf("MarkSent: %+v, %v", rec, err)
	}
}

// The context ends while the relay sits on the end of data: unknown too.
// It ends when the relay has read the end of data, not after a fixed time,
// which a loaded machine may spend before the message is sent.
func TestCancelAfterEndOfDataIsUnknown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	r := startFakeRelay(t, func(c net.Conn) { cancel(); <-release })
	defer close(release)
	d, err := New(context.Background(), Config{DB: openDB(t, ""), Relay: r.ln.Addr().String(), TLS: TLSNone,
		From: "t@example.org", Backoff: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	res, err := d.Deliver(ctx, Key{Subscriber: "s", Day: day, Format: "csv"}, reportBuild([]string{"abuse@isp.example"}, &calls))
	if err == nil || res.Status != StatusUnknown {
		t.Fatalf("%+v, %v", res, err)
	}
}

// Connection refused is transient: tried Attempts times with backoff,
// then left pending. Metrics count it.
func TestConnectionRefusedIsRetriedAndBounded(t *testing.T) {
	ctx := context.Background()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	reg := prometheus.NewRegistry()
	d, err := New(ctx, Config{DB: openDB(t, ""), Relay: addr, From: "t@example.org",
		Attempts: 4, Backoff: time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	start := time.Now()
	res, err := d.Deliver(ctx, Key{Subscriber: "s", Day: day, Format: "csv"}, reportBuild([]string{"abuse@isp.example"}, &calls))
	if err == nil || res.Status != StatusPending || res.Attempts != 4 || calls != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	if time.Since(start) < 7*time.Millisecond { // 1 + 2 + 4 ms of backoff
		t.Errorf("no backoff: %v", time.Since(start))
	}
	if n := counterValue(d.metrics.attempts.WithLabelValues("transient")); n != 4 {
		t.Errorf("transient attempts metric %v", n)
	}
	if n := counterValue(d.metrics.outcomes.WithLabelValues("pending")); n != 1 {
		t.Errorf("pending outcome metric %v", n)
	}
	// A later run tries again.
	res, err = d.Deliver(ctx, Key{Subscriber: "s", Day: day, Format: "csv"}, reportBuild([]string{"abuse@isp.example"}, &calls))
	if err == nil || res.Skipped || res.Attempts != 8 || calls != 2 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
}

// The context ends during the backoff: Deliver returns at once.
func TestCancelDuringBackoff(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	d, err := New(context.Background(), Config{DB: openDB(t, ""), Relay: addr, From: "t@example.org", Backoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Cancelled once the first attempt has failed and is on record, while
	// Deliver waits out the hour of backoff (a fixed deadline raced the
	// delivery log's writes on a loaded machine).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := Key{Subscriber: "s", Day: day, Format: "csv"}
	type result struct {
		res Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		calls := 0
		res, err := d.Deliver(ctx, key, reportBuild([]string{"abuse@isp.example"}, &calls))
		done <- result{res, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if rec, _, _ := d.Get(context.Background(), key); rec.Attempts == 1 && rec.Status == StatusPending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt was never recorded")
		}
	}
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) || r.res.Status != StatusPending || r.res.Attempts != 1 {
			t.Fatalf("%+v, %v", r.res, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver did not return after its context was cancelled")
	}
}

// Two Deliver calls of one key at once: the second is refused.
func TestConcurrentDeliverOfOneKey(t *testing.T) {
	release := make(chan struct{})
	r := startFakeRelay(t, func(c net.Conn) { <-release; c.Write([]byte("250 queued\r\n")) })
	d, err := New(context.Background(), Config{DB: openDB(t, ""), Relay: r.ln.Addr().String(), TLS: TLSNone,
		From: "t@example.org", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Subscriber: "s", Day: day, Format: "csv"}
	done := make(chan error)
	go func() {
		calls := 0
		_, err := d.Deliver(context.Background(), key, reportBuild([]string{"abuse@isp.example"}, &calls))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, _, _ := d.Get(context.Background(), key)
		if rec.Status == StatusSending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first Deliver never reached DATA")
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls := 0
	if _, err := d.Deliver(context.Background(), key, reportBuild([]string{"abuse@isp.example"}, &calls)); !errors.Is(err, ErrBusy) || calls != 0 {
		t.Errorf("second Deliver: %v, %d builds", err, calls)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec, _, _ := d.Get(context.Background(), key)
	if rec.Status != StatusSent || rec.Response != "250 queued" {
		t.Errorf("%+v", rec)
	}
}

// Credentials go only over TLS or to loopback.
func TestAuthRefusesPlaintextToRemote(t *testing.T) {
	for _, a := range []smtp.Auth{&plainAuth{user: "u", pass: "p"}, &loginAuth{user: "u", pass: "p"}} {
		if _, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.org", TLS: false}); !errors.Is(err, errPlaintextAuth) {
			t.Errorf("%T over plain text to a remote relay: %v", a, err)
		}
		if _, _, err := a.Start(&smtp.ServerInfo{Name: "mail.example.org", TLS: true}); err != nil {
			t.Errorf("%T over TLS: %v", a, err)
		}
	}
	a := &loginAuth{user: "u", pass: "p", loopback: true}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ prompt, want string }{{"Username:", "u"}, {"Password:", "p"}} {
		got, err := a.Next([]byte(step.prompt), true)
		if err != nil || string(got) != step.want {
			t.Errorf("%s: %q, %v", step.prompt, got, err)
		}
	}
	if a := pickAuth([]string{"CRAM-MD5", "LOGIN"}, "u", "p", false); a == nil {
		t.Error("LOGIN not picked")
	} else if _, ok := a.(*loginAuth); !ok {
		t.Errorf("picked %T", a)
	}
	if a := pickAuth([]string{"CRAM-MD5"}, "u", "p", false); a != nil {
		t.Errorf("picked %T", a)
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		st   stage
		err  error
		want class
	}{
		{stageRcpt, &textproto.Error{Code: 451, Msg: "later"}, transient},
		{stageRcpt, &textproto.Error{Code: 550, Msg: "no"}, permanent},
		{stageMail, &textproto.Error{Code: 553, Msg: "no"}, permanent},
		{stageData, &textproto.Error{Code: 554, Msg: "no"}, permanent},
		{stageDataEnd, &textproto.Error{Code: 552, Msg: "too big"}, permanent},
		{stageDataEnd, &textproto.Error{Code: 452, Msg: "full"}, transient},
		{stageDataEnd, errors.New("EOF"), ambiguous},
		{stageAuth, &textproto.Error{Code: 535, Msg: "bad"}, stuck},
		{stageAuth, &textproto.Error{Code: 454, Msg: "later"}, transient},
		{stageGreeting, &textproto.Error{Code: 554, Msg: "go away"}, stuck},
		{stageTLS, errNoStartTLS, stuck},
		{stageTLS, &tls.CertificateVerificationError{Err: errors.New("x")}, stuck},
		{stageConnect, errors.New("connection refused"), transient},
		{stageLog, errors.New("disk full"), stuck},
	} {
		if got := classify(ctx, tc.st, tc.err); got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.st, tc.err, got, tc.want)
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}
