package httpsink

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStartBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Config{HTTP: []string{"127.0.0.1:0"}, HTTPS: []string{ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "https") {
		t.Fatalf("Start: %v", err)
	}
	if a := s.Addrs(); len(a) != 0 {
		t.Errorf("addresses bound after an error: %v", a)
	}
	if _, err := New(Config{DefaultStatus: 302}); err == nil {
		t.Error("a redirect as default status was accepted")
	}
}

// TestShutdownWithClients stops a server that holds idle, busy and
// half-sent connections; Shutdown returns and nothing leaks (goleak).
func TestShutdownWithClients(t *testing.T) {
	rec := &memRecorder{}
	s, err := New(Config{HTTP: []string{"127.0.0.1:0"}, HTTPS: []string{"127.0.0.1:0"}, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := s.Addrs()
	h, hs := a[:1], a[1:]
	var conns []net.Conn
	for i, send := range []string{"", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n", "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"} {
		c, err := net.Dial("tcp", h[0].String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(send))
		conns = append(conns, c)
		_ = i
	}
	c, err := net.Dial("tcp", hs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	waitFor(5*time.Second, func() bool { return len(rec.all()) >= 1 }) // the complete request
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	s.Shutdown(ctx) // busy connections are cut at the deadline
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if _, err := net.Dial("tcp", h[0].String()); err == nil {
		t.Error("still accepting after Shutdown")
	}
}
