package rawsink

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/listen/sink"
)

// Without a redirect the original destination is the socket's own
// address: the control message must be there and parse to it.
func TestUDPOrigDstControlMessage(t *testing.T) {
	lc := net.ListenConfig{Control: recvOrigDst}
	pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	uc := pc.(*net.UDPConn)
	uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, oob := make([]byte, 16), make([]byte, 128)
	_, oobn, _, _, err := uc.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := origDstFromOOB(oob[:oobn])
	if want := sink.AddrPort(pc.LocalAddr()); !ok || got != want {
		t.Errorf("original destination %v %v, want %v", got, ok, want)
	}
}

func TestTCPOrigDstFallback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// No redirect: no conntrack entry (false), or the local address.
	if got, ok := originalDst(sc); ok && got != sink.AddrPort(sc.LocalAddr()) {
		t.Errorf("original destination %v, want %v", got, sc.LocalAddr())
	}
	if got := sockaddr4([]byte{2, 0, 0x27, 0x0f, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0}); got.String() != "192.0.2.1:9999" {
		t.Errorf("sockaddr4: %v", got)
	}
}
