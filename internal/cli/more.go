package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
)

func readAllLimited(r io.Reader) ([]byte, error) {
	const max = 256 << 20
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && len(data) > max {
		return nil, fmt.Errorf("input larger than %d bytes", max)
	}
	return data, err
}

func (e *env) registrarsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "registrars", Short: "Prepare what registrars and registries receive with a court order"}
	var caseName, out, format string
	pkg := &cobra.Command{
		Use:   "package --case CASE [--out DIR]",
		Short: "Write one file per registrar and per registry listing its domains with the order reference",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if caseName == "" {
				return fmt.Errorf("--case: give the case")
			}
			if format != "csv" && format != "txt" && format != "both" {
				return fmt.Errorf("--format: %q is not one of csv, txt, both", format)
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				ps, err := b.Packages(ctx, caseName)
				if err != nil {
					return err
				}
				if len(ps) == 0 {
					return fmt.Errorf("case %s has no domains to send", caseName)
				}
				if err := os.MkdirAll(out, 0o750); err != nil {
					return err
				}
				for _, p := range ps {
					base := strings.TrimSuffix(p.FileName(), filepath.Ext(p.FileName()))
					if format == "csv" || format == "both" {
						if err := writeFile(filepath.Join(out, base+".csv"), p.WriteCSV); err != nil {
							return err
						}
					}
					if format == "txt" || format == "both" {
						if err := writeFile(filepath.Join(out, base+".txt"), p.WriteText); err != nil {
							return err
						}
					}
					fmt.Fprintf(e.stdout, "%-9s %-40s %5d domains  %s\n", p.Kind, p.Recipient, len(p.Domains), filepath.Join(out, base))
				}
				return nil
			})
		},
	}
	pkg.Flags().StringVar(&caseName, "case", "", "the case (required)")
	pkg.Flags().StringVar(&out, "out", "registrar-packages", "the directory to write to")
	pkg.Flags().StringVar(&format, "format", "both", "csv, txt or both")
	cmd.AddCommand(pkg)
	return cmd
}

// writeFile writes via a temporary file and rename, so that a failure leaves
// no half-written file.
func writeFile(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (e *env) auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the append-only audit log"}
	var f registry.AuditFilter
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit entries, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				es, err := b.Audit(ctx, f)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(es))
				}
				t := newTable(e.stdout, "SEQ", "AT", "ACTOR", "ACTION", "OBJECT", "WHY", "DETAIL")
				for _, a := range es {
					t.row(fmt.Sprint(a.Seq), stamp(a.At), a.Actor, a.Action, a.Object, orDash(a.Reason), a.Detail)
				}
				return t.flush()
			})
		},
	}
	list.Flags().StringVar(&f.Object, "object", "", "only this object, e.g. domain:example.com or case:waledac-2010")
	list.Flags().Int64Var(&f.AfterSeq, "after", 0, "only entries after this sequence number")
	list.Flags().IntVar(&f.Limit, "limit", 0, "at most this many (0: all)")
	e.jsonFlag(list)
	var pinned string
	verify := &cobra.Command{
		Use:   "verify [--head SEQ:HASH]",
		Short: "Recompute the audit log's hash chain and print its head",
		Long: `Recompute the hash chain of the audit log and print its head: the sequence
number and hash of the newest entry. The chain alone shows that no entry was
changed after later ones were written; it cannot show that entries were
removed from its end or that the whole log was rewritten with hashes computed
anew. Keep the head elsewhere (a ticket, a filing, another machine); later,
--head SEQ:HASH checks that this entry is still in the log, unchanged.`,
		Example: `  takedown audit verify
  takedown audit verify --json
  takedown audit verify --head 1234:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var pin registry.AuditHead
			if pinned != "" {
				var err error
				if pin, err = registry.ParseAuditHead(pinned); err != nil {
					return fmt.Errorf("--head: %w", err)
				}
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				head, err := b.VerifyAuditHead(ctx, pin)
				if err != nil && !errors.Is(err, registry.ErrAuditBroken) {
					return err
				}
				if e.jsonOut {
					res := api.VerifyResult{OK: err == nil, Entries: head.Seq, Head: head}
					if err != nil {
						res.Error = err.Error()
					}
					if werr := writeJSON(e.stdout, res); werr != nil {
						return werr
					}
				}
				if err != nil {
					return fmt.Errorf("audit log does not verify after %d entries: %w", head.Seq, err)
				}
				if e.jsonOut {
					return nil
				}
				fmt.Fprintf(e.stdout, "audit log verified: %s entries, hash chain intact\n", thousands(head.Seq))
				if pin.Seq > 0 {
					fmt.Fprintf(e.stdout, "pinned head %s found unchanged\n", pin)
				}
				if head.Seq > 0 {
					fmt.Fprintf(e.stdout, "head %s\n", head)
				}
				return nil
			})
		},
	}
	verify.Flags().StringVar(&pinned, "head", "", "SEQ:HASH, a head printed before: fail unless that entry is still in the log with that hash")
	e.jsonFlag(verify)
	cmd.AddCommand(list, verify)
	return cmd
}

func (e *env) statsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "stats", Short: "Count infected hosts and callbacks from the event store"}
	var from, to, by, family, asn, country string
	var limit int
	var all bool
	hosts := &cobra.Command{
		Use:   "hosts",
		Short: "Unique infected hosts (source IPs and bot ids) by day, family, ASN, country",
		Example: `  takedown stats hosts --by country --from 2010-02-25 --to 2010-02-26
  takedown stats hosts --by day,family`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := map[string][]string{}
			for k, s := range map[string]string{"from": from, "to": to, "by": by, "family": family, "asn": asn, "country": country} {
				if s != "" {
					v[k] = []string{s}
				}
			}
			if limit > 0 {
				v["limit"] = []string{fmt.Sprint(limit)}
			}
			if all {
				v["all"] = []string{"true"}
			}
			q, err := api.HostQueryFromValues(v, e.now())
			if err != nil {
				return strip(err)
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				rows, err := b.UniqueHosts(ctx, q)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(rows))
				}
				return printHosts(e.stdout, q, rows)
			})
		},
	}
	hf := hosts.Flags()
	hf.StringVar(&from, "from", "", "start (YYYY-MM-DD or RFC 3339, default 7 days before --to)")
	hf.StringVar(&to, "to", "", "end, exclusive (default now)")
	hf.StringVar(&by, "by", "", "group by: day, family, asn, country (comma-separated)")
	hf.StringVar(&family, "family", "", "only this family")
	hf.StringVar(&asn, "asn", "", "only this AS number")
	hf.StringVar(&country, "country", "", "only this country code")
	hf.IntVar(&limit, "limit", 0, "at most this many rows")
	hf.BoolVar(&all, "all", false, "count every source address, scanners too (default: infected hosts, a family or a seized name)")
	e.jsonFlag(hosts)
	cmd.AddCommand(hosts)
	return cmd
}

// strip turns the API's parameter errors into flag errors.
func strip(err error) error {
	msg := strings.Replace(err.Error(), "parameter ", "--", 1)
	return fmt.Errorf("%s", msg)
}

func printHosts(w io.Writer, q eventstore.HostQuery, rows []eventstore.HostCount) error {
	var head []string
	for _, d := range q.GroupBy {
		switch d {
		case eventstore.DimDay:
			head = append(head, "DAY")
		case eventstore.DimFamily:
			head = append(head, "FAMILY")
		case eventstore.DimASN:
			head = append(head, "ASN", "AS NAME")
		case eventstore.DimCountry:
			head = append(head, "COUNTRY")
		}
	}
	head = append(head, "IPS", "BOTS", "CALLBACKS")
	t := newTable(w, head...)
	for _, r := range rows {
		var cells []string
		for _, d := range q.GroupBy {
			switch d {
			case eventstore.DimDay:
				cells = append(cells, day(r.Day))
			case eventstore.DimFamily:
				cells = append(cells, orDash(r.Family))
			case eventstore.DimASN:
				cells = append(cells, fmt.Sprintf("AS%d", r.ASN), orDash(r.ASName))
			case eventstore.DimCountry:
				cells = append(cells, orDash(r.Country))
			}
		}
		cells = append(cells, thousands(r.IPs), thousands(r.Bots), thousands(r.Events))
		t.row(cells...)
	}
	return t.flush()
}

func (e *env) serveCommand() *cobra.Command {
	var cpuProfile, memProfile, traceFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the takedown server: registry API, DNS sinkhole, zone transfers and the RPZ feed",
		Long: `Run the takedown server: the registry API (with /metrics), the authoritative
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
store, logging each step. GET /healthz answers while the process runs,
GET /readyz once every listener is bound and the spool is replayed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.config()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
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
			err = app.ServeWith(ctx, cfg, log, app.Options{Reload: e.loadConfig, LogLevel: level})
			if memProfile != "" {
				if perr := writeHeapProfile(memProfile); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
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

func (e *env) configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check and show the configuration"}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a config file (default: --config)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := e.configPath
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return fmt.Errorf("name the file to check: takedown config check FILE")
			}
			if _, err := config.Load(path); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: ok\n", path)
			return nil
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration, defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.config()
			if err != nil {
				return err
			}
			enc := yaml.NewEncoder(e.stdout)
			enc.SetIndent(2)
			return enc.Encode(cfg)
		},
	}
	cmd.AddCommand(check, show)
	return cmd
}
