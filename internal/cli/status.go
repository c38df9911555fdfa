package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
)

func (e *env) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the pipeline at a glance: rates, spool, drops, databases, store",
		Long: `Show the pipeline at a glance. With a running serve: events recorded and
stored (and their rates), the backlog waiting in the disk spool, events dropped
because the spool was full, the enrichment databases with their build dates,
the store, and today's unique hosts per family. Without one: what the store and
the spool hold on disk.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				st, err := b.Status(ctx)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, st)
				}
				return printStatus(e.stdout, st)
			})
		},
	}
	e.jsonFlag(cmd)
	return cmd
}

func printStatus(w io.Writer, st api.Status) error {
	if st.Serving {
		fmt.Fprintf(w, "serve: running as sensor %s for %s\n", st.Sensor, (time.Duration(st.Uptime) * time.Second).String())
		p := st.Pipeline
		fmt.Fprintf(w, "\npipeline\n")
		t := newTable(w, "", "events", "per second")
		t.row("recorded", thousands(int64(p.Recorded)), fmt.Sprintf("%.0f", p.RecordRate))
		t.row("stored", thousands(int64(p.Stored)), fmt.Sprintf("%.0f", p.StoreRate))
		t.row("waiting in spool (from its bytes)", "≈ "+thousands(int64(p.Backlog)), "")
		t.row("dropped", thousands(int64(p.Dropped)), "")
		t.row("invalid (quarantined)", fmt.Sprintf("%s (%s)", thousands(int64(p.Invalid)), thousands(int64(p.Quarantined))), "")
		t.row("store failures (retried)", thousands(int64(p.StoreFailures)), "")
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "store lag %s (the oldest event waiting)", time.Duration(p.Lag*float64(time.Second)).Round(time.Millisecond))
		if p.WriterRaised {
			fmt.Fprint(w, "; the store writer runs at normal CPU priority to catch up")
		}
		fmt.Fprintf(w, "; last store append took %s\n", time.Duration(p.LastAppend*float64(time.Second)).Round(time.Microsecond))
		if p.StoreError != "" {
			fmt.Fprintf(w, "THE STORE TAKES NO EVENTS: %s\n", p.StoreError)
		}
		if p.SpoolNote != "" {
			fmt.Fprintf(w, "note: %s\n", p.SpoolNote)
		}
	} else {
		fmt.Fprintln(w, "serve: not running (showing the files)")
	}
	s := st.Spool
	fmt.Fprintf(w, "\nspool %s: %s in %d segments (limit %s)", s.Dir, mib(s.Bytes), s.Segments, mib(s.MaxBytes))
	if s.Damaged > 0 {
		fmt.Fprintf(w, ", %s damaged records skipped", thousands(int64(s.Damaged)))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  filesystem: %s free, %s kept for the store\n", mib(s.FreeBytes), mib(s.ReserveBytes))
	if d := s.DroppedFull + s.DroppedReserve + s.DroppedWrite; d > 0 {
		fmt.Fprintf(w, "  dropped: %s with the spool full, %s below the free-space reserve, %s on write errors\n",
			thousands(int64(s.DroppedFull)), thousands(int64(s.DroppedReserve)), thousands(int64(s.DroppedWrite)))
	}
	if s.LowSpace {
		fmt.Fprintln(w, "  BELOW THE FREE-SPACE RESERVE: new events are dropped")
	}
	if s.WriteError != "" {
		fmt.Fprintf(w, "  WRITES FAIL: %s\n", s.WriteError)
	}
	if q := st.Quarantine; q.Entries > 0 {
		fmt.Fprintf(w, "quarantine %s: %s records the store could never take (takedown quarantine list)\n", q.Path, thousands(int64(q.Entries)))
		for _, k := range q.Kinds {
			fmt.Fprintf(w, "  %s %s, e.g. %s\n", thousands(int64(k.Entries)), k.Kind, k.Example)
		}
	}
	fmt.Fprintf(w, "store %s: %s, %s events, %s to %s\n", st.Store.Path, mib(st.Store.Bytes),
		thousands(st.Store.Events), stamp(st.Store.Oldest), stamp(st.Store.Newest))
	if st.Serving {
		fmt.Fprintln(w, "\nenrichment databases")
		if len(st.Databases) == 0 {
			fmt.Fprintln(w, "  none configured: events are stored without ASN and geolocation")
		} else {
			t := newTable(w, "path", "kind", "built", "records", "state")
			for _, d := range st.Databases {
				state := "loaded"
				if d.Error != "" {
					state = d.Error
				}
				t.row(d.Path, orDash(d.Kind), day(d.BuildDate), thousands(d.Records), state)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
		fmt.Fprintln(w, "\nunique hosts today (UTC)")
		if len(st.Today) == 0 {
			fmt.Fprintln(w, "  none yet")
		} else {
			t := newTable(w, "family", "hosts", "bot ids", "")
			for _, u := range st.Today {
				note := ""
				if !u.Exact {
					note = "estimate, ±1.2 %"
				}
				t.row(u.Family, thousands(int64(u.Hosts)), thousands(int64(u.BotIDs)), note)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
