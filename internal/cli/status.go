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
	if st.Role == "sensor" {
		return printSensorStatus(w, st)
	}
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
	if st.Store.Error != "" {
		fmt.Fprintf(w, "STORE UNREADABLE: %s\n", st.Store.Error)
	}
	if st.Store.Address != "" {
		fmt.Fprintf(w, "store %s at %s: %s events, %s to %s; registry %s: %s\n", st.Store.Engine, st.Store.Address,
			thousands(st.Store.Events), stamp(st.Store.Oldest), stamp(st.Store.Newest), st.Store.Path, mib(st.Store.Bytes))
	} else { // a serve of before the engines had none: DuckDB
		fmt.Fprintf(w, "store duckdb %s: %s, %s events, %s to %s\n", st.Store.Path, mib(st.Store.Bytes),
			thousands(st.Store.Events), stamp(st.Store.Oldest), stamp(st.Store.Newest))
	}
	if ev := st.Evidence; ev != nil {
		fmt.Fprintf(w, "evidence log %s: %s leaves", ev.Origin, thousands(ev.Size))
		if ev.CheckpointAt.IsZero() {
			fmt.Fprint(w, ", no checkpoint yet")
		} else {
			fmt.Fprintf(w, ", last checkpoint of %s leaves signed %s ago", thousands(ev.CheckpointSize),
				(time.Duration(ev.CheckpointAge) * time.Second).String())
		}
		if ev.Key != "" {
			fmt.Fprintf(w, "; key %s", ev.Key)
		}
		fmt.Fprintln(w)
		if ev.Error != "" {
			fmt.Fprintf(w, "  CHECKPOINTS FAIL: %s\n", ev.Error)
		}
	}
	if d := st.DNSSEC; d != nil {
		fmt.Fprintf(w, "dnssec: %d case(s) signed; keys %d active, %d published, %d retired\n", d.SignedCases,
			d.Keys["active"], d.Keys["published"], d.Keys["retired"])
	}
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
		if st.Role == "central" || st.Role == "collector" {
			if err := printSensors(w, st); err != nil {
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

// printSensors lists the central's sensors: when each was last heard of,
// the rate of its events stored, what its spool holds that the stream has
// not acknowledged, the served set it answers from.
func printSensors(w io.Writer, st api.Status) error {
	fmt.Fprintln(w, "\nsensors")
	if st.Stream != nil {
		fmt.Fprintf(w, "  events stream: %s batches not stored yet", thousands(int64(st.Stream.Pending)))
		if st.Stream.Error != "" {
			fmt.Fprintf(w, "; CANNOT READ IT: %s", st.Stream.Error)
		}
		fmt.Fprintln(w)
	}
	t := newTable(w, "sensor", "state", "last seen", "stored/s", "stored", "backlog", "served serial", "zones", "rejected")
	for _, se := range st.Sensors {
		state, seen := "down", "never"
		if se.Up {
			state = "up"
		}
		if !se.LastSeen.IsZero() {
			seen = st.Time.Sub(se.LastSeen).Round(time.Second).String() + " ago"
		}
		t.row(se.ID, state, seen, fmt.Sprintf("%.0f", se.EventsPerSecond), thousands(int64(se.Stored)),
			fmt.Sprintf("%s (≈ %s events)", mib(se.BacklogBytes), thousands(se.BacklogRecords)),
			fmt.Sprint(se.ServedSerial), thousands(int64(se.ServedZones)), thousands(int64(se.Rejected)))
	}
	return t.flush()
}

// printSensorStatus describes a sensor: its sinks' events, its spool and
// its link to the central.
func printSensorStatus(w io.Writer, st api.Status) error {
	fmt.Fprintf(w, "serve: running as sensor %s (role sensor) for %s\n", st.Sensor, (time.Duration(st.Uptime) * time.Second).String())
	p := st.Pipeline
	fmt.Fprintf(w, "events: %s recorded, %s dropped\n", thousands(int64(p.Recorded)), thousands(int64(p.Dropped)))
	if u := st.Uplink; u != nil {
		state := "connected"
		if !u.Connected {
			state = "NOT CONNECTED (events wait in the spool)"
		}
		fmt.Fprintf(w, "uplink: %s; %s events acknowledged by the stream, %s waiting in the spool, last ack %s\n",
			state, thousands(int64(u.Published)), mib(u.BacklogBytes), stamp(u.LastAck))
		if u.Error != "" {
			fmt.Fprintf(w, "  last error: %s\n", u.Error)
		}
		fmt.Fprintf(w, "served set: serial %d, %s zones, last changed %s\n", u.ServedSerial, thousands(int64(u.ServedZones)), stamp(u.ServedApplied))
	}
	s := st.Spool
	fmt.Fprintf(w, "spool %s: %s in %d segments (limit %s); filesystem %s free\n", s.Dir, mib(s.Bytes), s.Segments, mib(s.MaxBytes), mib(s.FreeBytes))
	return nil
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
