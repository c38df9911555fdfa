//go:build linux

package dnssink

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpBatch is how many datagrams one recvmmsg/sendmmsg moves at most.
const udpBatch = 32

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchConn wraps c for recvmmsg/sendmmsg in the address family of its
// socket, or returns nil if that cannot be told.
func newBatchConn(c *net.UDPConn) batchConn {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	domain, serr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		domain, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_DOMAIN)
	}); err != nil || serr != nil {
		return nil
	}
	switch domain {
	case syscall.AF_INET:
		return ipv4.NewPacketConn(c)
	case syscall.AF_INET6:
		return ipv6.NewPacketConn(c)
	}
	return nil
}

// serveUDPBatch is serveUDP reading and writing up to udpBatch datagrams a
// system call. It reports false, having read nothing, if batching is not
// available; the caller then serves c one datagram at a time.
func (s *Server) serveUDPBatch(c *net.UDPConn, local netip.AddrPort) bool {
	bc := newBatchConn(c)
	if bc == nil {
		return false
	}
	rms := make([]ipv4.Message, udpBatch)
	wms := make([]ipv4.Message, 0, udpBatch)
	outs := make([][]byte, udpBatch)
	for i := range rms {
		rms[i].Buffers = [][]byte{make([]byte, dns.MaxMsgSize)}
		outs[i] = make([]byte, 0, 4096)
	}
	wbufs := make([][1][]byte, udpBatch)
	pi := packetInfo{dst: local}
	for {
		n, err := bc.ReadBatch(rms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return true
			}
			if n <= 0 {
				continue // e.g. ICMP port unreachable surfacing as a read error
			}
		}
		wms = wms[:0]
		for i := range rms[:n] {
			m := &rms[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			src := ua.AddrPort()
			pi.src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
			resp := s.handlePacket(outs[i], m.Buffers[0][:m.N], &pi)
			if resp == nil {
				continue
			}
			outs[i] = resp[:0]
			wbufs[i][0] = resp
			wms = append(wms, ipv4.Message{Buffers: wbufs[i][:], Addr: m.Addr})
		}
		s.writeBatch(c, bc, wms)
	}
}

// writeBatch sends every message of wms, one at a time where sendmmsg fails.
func (s *Server) writeBatch(c *net.UDPConn, bc batchConn, wms []ipv4.Message) {
	for len(wms) > 0 {
		n, err := bc.WriteBatch(wms, 0)
		if n > 0 {
			wms = wms[n:]
			continue
		}
		if err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
		// The first message failed: send it alone, like serveUDP does.
		if ua, ok := wms[0].Addr.(*net.UDPAddr); ok {
			_, _ = c.WriteToUDPAddrPort(wms[0].Buffers[0], ua.AddrPort())
		}
		wms = wms[1:]
	}
}
