package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
)

func (e *env) serveCommand() *cobra.Command {
	var cpuProfile, memProfile, traceFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the takedown server: registry API, DNS sinkhole, zone transfers and the RPZ feed",
		Long: `Run the takedown server: the registry API (with /metrics,
or /metrics alone on metrics.listen), the authoritative
DNS sinkhole of every seized zone in a served state, and the transfer server
(AXFR/IXFR of the sinkhole zones and the RPZ feed, NOTIFY, TSIG). Registry
changes reach the answers within a second; every query for a seized name is
an event in the store.

It owns the database file; while it runs, the other commands go through its
API, authenticated by the token file in the data directory.

SIGHUP reads the config file again: log.level, classify.rules and the
enrich files take effect at once (the rules and enrichment files are read
again too); other changed keys are logged and wait for a restart; a config
that does not load or validate changes nothing. SIGINT or SIGTERM stop
accepting, drain the pipeline (pipeline.drain_timeout_ms) and close the
store, logging each step; a second one ends the process at once. GET
/healthz answers while the process runs, GET /readyz once every listener
is bound and the spool is replayed.

With several machines (see "Many machines" in the README), --role sensor
runs only the DNS sinkhole, the listeners and the spool, and publishes every
event to NATS JetStream; --role central runs the registry, the store, the
reports and the dashboard, stores what the sensors publish and sends them
the served set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.config()
			if err != nil {
				return err
			}
			// SIGINT and SIGTERM end cmd.Context() (cmd/takedown); SIGHUP,
			// serve's own signal, asks for a reload.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for _, r := range []struct {
				flag, path string
				start      func(io.Writer) error
				stop       func()
			}{
				{"--cpuprofile", cpuProfile, pprof.StartCPUProfile, pprof.StopCPUProfile},
				{"--trace", traceFile, trace.Start, trace.Stop},
			} {
				if r.path == "" {
					continue
				}
				f, err := os.Create(r.path)
				if err != nil {
					return fmt.Errorf("%s: %w", r.flag, err)
				}
				defer f.Close()
				if err := r.start(f); err != nil {
					return fmt.Errorf("%s: %w", r.flag, err)
				}
				defer r.stop()
			}
			log, level := newLeveledLogger(e.stderr, cfg)
			err = app.ServeWith(cmd.Context(), cfg, log, app.Hooks{Reloads: hup, Reload: e.loadConfig, LogLevel: level})
			if memProfile != "" {
				if perr := writeHeapProfile(memProfile); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
	cmd.Flags().Func("role", "what this serve runs: single (everything, the default), sensor (the sinks and the spool, publishing to NATS), central (registry, store, reports, fed by the sensors) or collector (stores its own sensors' events into the central's ClickHouse); replaces the config file's role", func(v string) error {
		switch v {
		case "single", config.RoleSensor, config.RoleCentral, config.RoleCollector:
			e.role = &v
			return nil
		}
		return fmt.Errorf("%q is not one of single, sensor, central, collector", v)
	})
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	cmd.Flags().StringVar(&traceFile, "trace", "", "write a runtime execution trace of the whole run to this file (go tool trace; large: seconds, not hours)")
	cmd.Flags().StringVar(&memProfile, "memprofile", "", "write a memory profile (what the run allocated, and what it holds at the end) to this file when it stops")
	return cmd
}

// writeHeapProfile writes the heap profile of the run to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("--memprofile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	return nil
}
