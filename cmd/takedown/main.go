// Command takedown is the botnet takedown platform: one binary for the
// registry of seized domains, the sinkholes, the pipeline and the reports.
// See `takedown --help`.
package main

import (
	"context"
	"os"

	"github.com/takedown-project/takedown/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
