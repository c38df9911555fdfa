// Command takedown is the botnet takedown platform: one binary for the
// registry of seized domains, the sinkholes, the pipeline and the reports.
// See `takedown --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/takedown-project/takedown/internal/cli"
)

func main() {
	// SIGINT and SIGTERM end the command's context, for every command:
	// serve and the demo shut down in order, a simulation prints its
	// ground truth. A second one ends the process at once. (SIGHUP is
	// serve's: it reloads the config.)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
