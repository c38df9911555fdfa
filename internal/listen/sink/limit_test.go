package sink

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	rejected := map[string]int{}
	l := limit(ln, Limits{Max: 5, MaxPerIP: 3}, nil, func(c net.Conn, reason string) {
		mu.Lock()
		rejected[reason]++
		mu.Unlock()
	})
	defer l.Close()
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Four from one address: the fourth is refused (closed by the server).
	var clients []net.Conn
	for range 4 {
		clients = append(clients, dial("127.0.0.2"))
	}
	var server []net.Conn
	for range 3 {
		server = append(server, <-accepted)
	}
	refusedClosed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err != nil
	}
	if !refusedClosed(clients[3]) {
		t.Fatal("fourth connection from one address was not closed")
	}
	if n := l.OpenFrom(netip.MustParseAddr("127.0.0.2")); n != 3 {
		t.Fatalf("%d open from 127.0.0.2, want 3", n)
	}
	// Two more from another address reach the total of 5; a sixth is refused.
	for _, src := range []string{"127.0.0.3", "127.0.0.3", "127.0.0.4"} {
		clients = append(clients, dial(src))
	}
	server = append(server, <-accepted, <-accepted)
	if !refusedClosed(clients[6]) {
		t.Fatal("connection over the total was not closed")
	}
	// Closing frees the places, once even when closed twice.
	server[0].Close()
	server[0].Close()
	if l.Open() != 4 || l.OpenFrom(netip.MustParseAddr("127.0.0.2")) != 2 {
		t.Fatalf("after a close: %d open, %d from 127.0.0.2", l.Open(), l.OpenFrom(netip.MustParseAddr("127.0.0.2")))
	}
	c := dial("127.0.0.2")
	server = append(server, <-accepted)
	mu.Lock()
	if rejected[ReasonPerIP] != 1 || rejected[ReasonTotal] != 1 {
		t.Fatalf("rejections %v", rejected)
	}
	mu.Unlock()
	for _, c := range append(append(clients, server...), c) {
		c.Close()
	}
	l.Close()
	for range accepted {
	}
	if l.Open() != 0 {
		t.Fatalf("%d still counted open after every close", l.Open())
	}
}
