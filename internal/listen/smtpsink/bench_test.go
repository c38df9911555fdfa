package smtpsink

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// BenchmarkSession runs one SMTP session per op over loopback: EHLO, MAIL,
// 5 recipients, a 2 KiB message, QUIT, each step waiting for its reply.
func BenchmarkSession(b *testing.B) {
	rec := &countRecorder{}
	ts := start(b, Config{Recorder: rec, Zones: testZones, Classifier: testClassifier(b)})
	msg := "Subject: bench\r\nMessage-ID: <1@bench.example>\r\n\r\n" + strings.Repeat(strings.Repeat("z", 62)+"\r\n", 2048/64) + ".\r\n"
	var rcpts strings.Builder
	rcpts.WriteString("MAIL FROM:<bot@sender.example>\r\n")
	for i := range 5 {
		rcpts.WriteString("RCPT TO:<user" + string(rune('a'+i)) + "@seized.test>\r\n")
	}
	rcpts.WriteString("DATA\r\n")
	env := rcpts.String()
	expect := func(r *bufio.Reader, code string, n int) {
		for n > 0 {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, code) {
				b.Fatalf("reply %q %v, want %s", line, err, code)
			}
			if line[3] == ' ' {
				n--
			}
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReader(c)
		expect(r, "220", 1)
		c.Write([]byte("EHLO bench.example\r\n"))
		expect(r, "250", 1)
		c.Write([]byte(env))
		expect(r, "250", 6)
		expect(r, "354", 1)
		c.Write([]byte(msg))
		expect(r, "250", 1)
		c.Write([]byte("QUIT\r\n"))
		expect(r, "221", 1)
		c.Close()
	}
}
