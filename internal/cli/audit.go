package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/registry"
)

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
					return usage(fmt.Errorf("--head: %w", err))
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
