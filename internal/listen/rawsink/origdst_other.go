//go:build !linux

package rawsink

import (
	"net"
	"net/netip"
	"syscall"
)

// originalDst is known on Linux only.
func originalDst(net.Conn) (netip.AddrPort, bool) { return netip.AddrPort{}, false }

func recvOrigDst(string, string, syscall.RawConn) error { return nil }

func origDstFromOOB([]byte) (netip.AddrPort, bool) { return netip.AddrPort{}, false }
