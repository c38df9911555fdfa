//go:build !linux

package dnssink

import (
	"net"
	"net/netip"
)

// serveUDPBatch reports that batched UDP I/O is not available here.
func (s *Server) serveUDPBatch(c *net.UDPConn, local netip.AddrPort) bool { return false }
