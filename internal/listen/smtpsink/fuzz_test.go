package smtpsink

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

type countRecorder struct{ n atomic.Int64 }

func (r *countRecorder) Record(e *event.Event) {
	if err := e.Validate(); err != nil && e.SrcIP.IsValid() {
		panic(err)
	}
	r.n.Add(1)
}

// FuzzSession feeds a byte stream into a session over net.Pipe: it must
// never panic, record exactly one event per message or one for the
// session, and end within its time limits.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@seized.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO a\r\nMAIL FROM:<>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nRSET\r\nMAIL FROM:a@b SIZE=99999999\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n..x\r\n.\r\n.\r\nDATA\r\n",
		"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
		"\x00\xff\xfe garbage \n\n\n\r\r\r",
		"MAIL FROM:<\r\nRCPT TO:\r\nDATA\r\nNOOP\r\nVRFY x\r\nAUTH PLAIN x\r\nHELP\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: =?utf-8?q?=C3=A9?=\r\nMessage-ID: <x@y>\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	rec := &countRecorder{}
	s, err := New(Config{
		Sensor: "fuzz", TLS: testTLS(f), Recorder: rec, Zones: testZones, Classifier: testClassifier(f),
		CommandTimeout: 200 * time.Millisecond, SessionTimeout: time.Second,
		MaxMessageBytes: 4096, MaxRecipients: 3, MaxErrors: 5, MaxCommands: 50,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv, cli := net.Pipe()
		before := rec.n.Load()
		done := make(chan int)
		go func() {
			ss := s.newSession(srv)
			ss.serve()
			srv.Close()
			done <- ss.messages
		}()
		go io.Copy(io.Discard, cli) //nolint:errcheck // until cli is closed
		cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		cli.Write(in) //nolint:errcheck // the session may end first
		cli.Close()
		select {
		case msgs := <-done:
			want := int64(max(msgs, 1))
			if got := rec.n.Load() - before; got != want {
				t.Fatalf("%d events for %d messages", got, msgs)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end")
		}
	})
}
