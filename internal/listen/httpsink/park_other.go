//go:build !linux

package httpsink

import (
	"context"
	"net"
	"time"
)

// parker is Linux-only (park_linux.go): elsewhere an idle connection waits
// in a blocking read, with its goroutine.
type parker struct{}

type parkState struct{}

func newParker(*Server) (*parker, error) { return nil, nil }

func (p *parker) closeAll() []*h1conn { return nil }
func (p *parker) stop()               {}
func (p *parker) count() int          { return 0 }

// readWake reads the first bytes of a request into sc.wake, by h.until.
func (h *h1conn) readWake(bool) (int, error) {
	h.c.SetReadDeadline(h.until) //nolint:errcheck
	return h.c.Read(h.sc.wake[:])
}

// tryWrite sends nothing: write always uses the connection's Write.
func (h *h1conn) tryWrite([]byte) int { return 0 }

// loops are Linux-only (loop_linux.go): elsewhere every connection is
// served by a goroutine.
type loops struct{}

type lconn struct{}

func startLoops(context.Context, *Server, []*listener, int) (*loops, error) { return nil, nil }

func (l *loops) stopAll()   {}
func (l *loops) count() int { return 0 }

func (h *h1conn) loopWrite([]byte) error { return nil }

func listenHTTP(ctx context.Context, s *Server, addr string) (net.Listener, error) {
	lc := s.listenConfig()
	return lc.Listen(ctx, "tcp", addr)
}

// deferAccept: TCP_DEFER_ACCEPT is Linux's.
func deferAccept(time.Duration) []sockOpt { return nil }
