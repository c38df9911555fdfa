//go:build !linux

package dnssink

import (
	"net"
	"net/netip"
)

// serveUDPBatch reports that batched UDP I/O is not available here.
func (s *Server) serveUDPBatch(c *net.UDPConn, local netip.AddrPort) bool { return false }

type rawUDP struct{}

func (r *rawUDP) wake() {}

func (r *rawUDP) sendTo(b []byte, to netip.AddrPort) (int, error) { return 0, net.ErrClosed }

func (s *Server) startRaw(c *net.UDPConn, local netip.AddrPort) bool { return false }
