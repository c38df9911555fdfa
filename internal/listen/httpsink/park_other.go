//go:build !linux

package httpsink

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
