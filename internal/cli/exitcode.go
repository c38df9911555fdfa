package cli

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/users"
)

// Exit codes, for scripts. The table in the root's --help and in the README
// lists them; keep the three in step.
const (
	ExitOK          = 0 // done
	ExitFailure     = 1 // any other failure
	ExitUsage       = 2 // unknown command or flag, wrong arguments, bad flag value
	ExitNotFound    = 3 // the case, domain, subscriber, user … named does not exist
	ExitConflict    = 4 // it exists already, or its state does not allow the change
	ExitUnreachable = 5 // no takedown server answers (--mode remote, or a call failed on the way)
)

// exitCodesHelp is the table shown in `takedown --help`.
const exitCodesHelp = `Exit codes:
  0  success
  1  failure (anything not listed below)
  2  usage error: unknown command or flag, wrong arguments, bad flag value
  3  not found: the case, domain, subscriber, user or report named does not exist
  4  conflict: it exists already, or its state does not allow the change
  5  server unreachable: no takedown server answers (--mode remote, or mid-call)`

// usageError is a mistake in the command line itself.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// usage marks err as a command-line mistake (exit 2).
func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// required is a flag (or a choice of flags) that a command needs, and
// whether it was given.
type required struct {
	flag  string
	given bool
}

// missingFlags is the usage error that names every required flag not
// given, nil when all were.
func missingFlags(flags ...required) error {
	var missing []string
	for _, f := range flags {
		if !f.given {
			missing = append(missing, f.flag)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usage(fmt.Errorf("missing %s", missing[0]))
	}
	return usage(fmt.Errorf("missing %s and %s", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1]))
}

// ranError marks an error that a command's RunE returned, as opposed to
// one cobra found before running it (a usage error).
type ranError struct{ err error }

func (r ranError) Error() string { return r.err.Error() }
func (r ranError) Unwrap() error { return r.err }

// markRunErrors wraps the RunE of cmd and of every command under it, so
// that exitCode tells their errors from cobra's own (unknown command or
// flag, wrong number of arguments, a required flag missing), which are all
// usage errors.
//
// A command that only groups others (`takedown stats`) prints its help when
// called alone and refuses an unknown subcommand as a usage error, where
// cobra would print the help and exit 0.
func markRunErrors(cmd *cobra.Command) {
	if cmd.Run == nil && cmd.RunE == nil && cmd.HasSubCommands() {
		cmd.Args = cobra.NoArgs
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if err := run(c, args); err != nil {
				return ranError{err}
			}
			return nil
		}
	}
	for _, c := range cmd.Commands() {
		markRunErrors(c)
	}
}

// exitCode maps an error returned by the root command to an exit code.
func exitCode(err error) int {
	var ue usageError
	var re ranError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case !errors.As(err, &re):
		return ExitUsage
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, users.ErrNotFound),
		httpStatus(err) == http.StatusNotFound:
		return ExitNotFound
	case errors.Is(err, registry.ErrExists), errors.Is(err, registry.ErrIllegalTransition),
		errors.Is(err, users.ErrExists), httpStatus(err) == http.StatusConflict:
		return ExitConflict
	case errors.Is(err, api.ErrUnreachable):
		return ExitUnreachable
	}
	return ExitFailure
}

// httpStatus is the status of the server's answer that err reports, or 0.
func httpStatus(err error) int {
	var he interface{ HTTPStatus() int }
	if errors.As(err, &he) {
		return he.HTTPStatus()
	}
	return 0
}

// lostServer marks, as ErrUnreachable, an error of a call to the server's
// API that failed for want of a connection (refused, reset, no route):
// the server stopped after the CLI found it. Other connections (a
// ClickHouse store, a mail relay) failing are failures, not this.
func lostServer(err error) error {
	if errors.Is(err, api.ErrUnreachable) {
		return err
	}
	var op *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		(errors.As(err, &op) && op.Op == "dial") {
		return fmt.Errorf("%w: %w", api.ErrUnreachable, err)
	}
	return err
}
