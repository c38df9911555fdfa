package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
)

func (e *env) quarantineCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "List and replay the events the store could never take",
		Long: `The pipeline sets aside, with the reason, every record that the store can
never take as it is: bytes that do not decode as an event, an event that fails
validation (a time outside 1970 to 2261, say), an event the store refuses
whenever it is sent alone. They are kept in pipeline.quarantine_dir, so that
one bad record never stops the ones behind it. After a fix, replay hands them
back to the pipeline; what is still not acceptable stays.`,
	}
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "Count the quarantined records by kind and show the oldest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				out, err := b.QuarantineList(ctx, limit)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, out)
				}
				return printQuarantine(e.stdout, out)
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 20, "show at most this many records")
	e.jsonFlag(list)
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Hand the quarantined records back to the pipeline",
		Long: `Hand every quarantined record that now decodes and validates back to the
pipeline: to the running serve, or, when none runs, to the spool, which the
next serve stores first. Records the store still refuses are set aside again;
records that still do not validate stay where they are.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				res, err := b.ReplayQuarantine(ctx)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, res)
				}
				fmt.Fprintf(e.stdout, "replayed %s records; %s still not acceptable, kept\n",
					thousands(int64(res.Replayed)), thousands(int64(res.Kept)))
				return nil
			})
		},
	}
	e.jsonFlag(replay)
	cmd.AddCommand(list, replay)
	return cmd
}

func printQuarantine(w io.Writer, out api.QuarantineList) error {
	s := out.Summary
	if s.Entries == 0 {
		fmt.Fprintf(w, "quarantine %s: empty\n", s.Path)
		return nil
	}
	fmt.Fprintf(w, "quarantine %s: %s records, set aside %s to %s\n", s.Path, thousands(int64(s.Entries)), stamp(s.Oldest), stamp(s.Newest))
	if s.Damaged > 0 {
		fmt.Fprintf(w, "%d damaged lines skipped\n", s.Damaged)
	}
	t := newTable(w, "kind", "records", "latest reason")
	for _, k := range s.Kinds {
		t.row(k.Kind, thousands(int64(k.Entries)), k.Example)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(out.Entries) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w, "set aside", "kind", "source", "reason")
	for _, en := range out.Entries {
		t.row(stamp(en.Time), en.Kind, en.Source, en.Reason)
	}
	return t.flush()
}
