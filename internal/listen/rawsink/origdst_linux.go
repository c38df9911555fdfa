package rawsink

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/takedown-project/takedown/internal/listen/sink"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST of linux/netfilter_ipv6/ip6_tables.h.
const ip6tSOOriginalDst = 80

// originalDst returns the destination a TCP connection had before an
// nftables (or iptables) redirect or DNAT rewrote it, from conntrack by
// getsockopt SO_ORIGINAL_DST. Without such a rule it fails or gives the
// local address, which is what the caller has anyway.
func originalDst(c net.Conn) (netip.AddrPort, bool) {
	tc := sink.TCPConn(c)
	if tc == nil {
		return netip.AddrPort{}, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, false
	}
	v4 := sink.AddrPort(tc.LocalAddr()).Addr().Is4()
	var ap netip.AddrPort
	var gerr error
	cerr := rc.Control(func(fd uintptr) {
		if v4 {
			var m *unix.IPv6Mreq // 16 bytes: room for a sockaddr_in
			m, gerr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if gerr == nil {
				ap = sockaddr4(m.Multiaddr[:])
			}
			return
		}
		var mi *unix.IPv6MTUInfo // a sockaddr_in6 and more
		mi, gerr = unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst)
		if gerr == nil {
			port := binary.NativeEndian.AppendUint16(nil, mi.Addr.Port)
			ap = netip.AddrPortFrom(netip.AddrFrom16(mi.Addr.Addr).Unmap(), binary.BigEndian.Uint16(port))
		}
	})
	if cerr != nil || gerr != nil || ap.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return ap, true
}

// sockaddr4 reads a struct sockaddr_in: family, port (network order),
// address.
func sockaddr4(b []byte) netip.AddrPort {
	if len(b) < 8 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
}

// recvOrigDst asks a UDP socket to pass each datagram's original
// destination (IP_RECVORIGDSTADDR, IPV6_RECVORIGDSTADDR): after an
// nftables redirect, the port the bot sent to. Errors are ignored: the
// socket then reports its own address.
func recvOrigDst(network, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		if network != "udp6" {
			unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVORIGDSTADDR, 1) //nolint:errcheck
		}
		if network != "udp4" {
			unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, 1) //nolint:errcheck
		}
	})
}

// origDstFromOOB finds the original destination in a datagram's control
// messages.
func origDstFromOOB(oob []byte) (netip.AddrPort, bool) {
	if len(oob) == 0 {
		return netip.AddrPort{}, false
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR && len(m.Data) >= 8:
			return sockaddr4(m.Data), true
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_ORIGDSTADDR && len(m.Data) >= 24:
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(m.Data[8:24])).Unmap(), binary.BigEndian.Uint16(m.Data[2:4])), true
		}
	}
	return netip.AddrPort{}, false
}
