package cli

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/registry"
)

type statusErr int

func (s statusErr) Error() string   { return fmt.Sprintf("server answered %d", int(s)) }
func (s statusErr) HTTPStatus() int { return int(s) }

// TestExitCodeOf: each kind of error a command returns, wrapped as the
// commands wrap them, and the errors cobra returns itself.
func TestExitCodeOf(t *testing.T) {
	ran := func(err error) error { return ranError{fmt.Errorf("doing it: %w", err)} }
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New(`unknown command "x" for "takedown"`), ExitUsage},
		{ran(usage(errors.New("--by: bad"))), ExitUsage},
		{ran(errors.New("disk full")), ExitFailure},
		{ran(registry.ErrNotFound), ExitNotFound},
		{ran(statusErr(404)), ExitNotFound},
		{ran(registry.ErrExists), ExitConflict},
		{ran(registry.ErrIllegalTransition), ExitConflict},
		{ran(statusErr(409)), ExitConflict},
		{ran(statusErr(500)), ExitFailure},
		{ran(api.ErrUnreachable), ExitUnreachable},
		{ran(lostServer(fmt.Errorf("calling takedown server: %w", dial))), ExitUnreachable},
		{ran(fmt.Errorf("event store: %w", dial)), ExitFailure},
		{ran(api.ErrUnauthorized), ExitFailure},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
