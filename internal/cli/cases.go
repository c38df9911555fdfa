package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/registry"
)

func (e *env) casesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "cases", Short: "Add, list and show takedown cases and their court orders"}

	var nc registry.NewCase
	var reason string
	add := &cobra.Command{
		Use:   "add NAME --court COURT --docket NUMBER",
		Short: "Add a case",
		Example: `  takedown cases add waledac-2010 --court "E.D. Va." --docket 1:10-cv-00156 \
      --title "Microsoft v. John Does 1-27" --family waledac`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc.Name = args[0]
			if err := missingFlags(required{"--court", nc.Court != ""}, required{"--docket", nc.Docket != ""}); err != nil {
				return err
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				c, err := b.AddCase(ctx, nc, e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, c)
				}
				fmt.Fprintf(e.stdout, "added case %s (%s %s)\n", c.Name, c.Court, c.Docket)
				return nil
			})
		},
	}
	add.Flags().StringVar(&nc.Court, "court", "", "the court, e.g. \"E.D. Va.\" (required)")
	add.Flags().StringVar(&nc.Docket, "docket", "", "the docket number (required)")
	add.Flags().StringVar(&nc.Title, "title", "", "the case title")
	add.Flags().StringVar(&nc.Family, "family", "", "the malware family, e.g. waledac: the family of the case's events that no rule names")
	add.Flags().StringVar(&nc.Notes, "notes", "", "free-form notes")
	add.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(add)

	list := &cobra.Command{
		Use:   "list",
		Short: "List cases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				cs, err := b.ListCases(ctx)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(cs))
				}
				t := newTable(e.stdout, "CASE", "COURT", "DOCKET", "ORDERS", "DOMAINS", "TITLE")
				for _, c := range cs {
					t.row(c.Name, c.Court, c.Docket, fmt.Sprint(len(c.Orders)), domainCounts(c.Domains), c.Title)
				}
				return t.flush()
			})
		},
	}
	e.jsonFlag(list)

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a case with its orders and domain counts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				c, err := b.GetCase(ctx, args[0])
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, c)
				}
				w := e.stdout
				fmt.Fprintf(w, "case:     %s\n", c.Name)
				if c.Title != "" {
					fmt.Fprintf(w, "title:    %s\n", c.Title)
				}
				fmt.Fprintf(w, "court:    %s\ndocket:   %s\nadded:    %s\ndomains:  %s\n", c.Court, c.Docket, stamp(c.Added), domainCounts(c.Domains))
				if c.Family != "" {
					fmt.Fprintf(w, "family:   %s\n", c.Family)
				}
				if c.Notes != "" {
					fmt.Fprintf(w, "notes:    %s\n", c.Notes)
				}
				fmt.Fprintln(w)
				t := newTable(w, "ORDER", "TYPE", "REFERENCE", "ISSUED", "OBJECTIONS BY", "EXPIRES")
				for _, o := range c.Orders {
					t.row(fmt.Sprint(o.ID), string(o.Type), orDash(o.Reference), day(o.Issued), day(o.ObjectionDeadline), day(o.Expires))
				}
				return t.flush()
			})
		},
	}
	e.jsonFlag(show)

	cmd.AddCommand(add, list, show, e.orderCommand())
	return cmd
}

func (e *env) orderCommand() *cobra.Command {
	var typ, ref, issued, objection, expires, notes, reason string
	add := &cobra.Command{
		Use:   "add-order CASE --type TYPE --issued DATE",
		Short: "Add a court order to a case",
		Long: `Add a court order to a case. TYPE is tro, preliminary-injunction,
default-judgement or transfer. Dates are YYYY-MM-DD.`,
		Example: `  takedown cases add-order waledac-2010 --type tro --issued 2010-02-22 \
      --objection-deadline 2010-03-08 --reference "Dkt. 12"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ot, err := registry.ParseOrderType(typ)
			if err != nil {
				return usage(fmt.Errorf("--type: %w", err))
			}
			if err := missingFlags(required{"--issued", issued != ""}); err != nil {
				return err
			}
			o := registry.NewOrder{Type: ot, Reference: ref, Notes: notes}
			for _, d := range []struct {
				flag, val string
				dst       *time.Time
			}{
				{"--issued", issued, &o.Issued},
				{"--objection-deadline", objection, &o.ObjectionDeadline},
				{"--expires", expires, &o.Expires},
			} {
				if d.val == "" {
					continue
				}
				t, err := registry.ParseDate(d.val)
				if err != nil {
					return usage(fmt.Errorf("%s: %w", d.flag, err))
				}
				*d.dst = t
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				out, err := b.AddOrder(ctx, args[0], o, e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, out)
				}
				fmt.Fprintf(e.stdout, "added order %d (%s) to case %s\n", out.ID, out.Type, out.Case)
				return nil
			})
		},
	}
	f := add.Flags()
	f.StringVar(&typ, "type", "", "tro, preliminary-injunction, default-judgement or transfer (required)")
	f.StringVar(&issued, "issued", "", "the day the order was signed (required)")
	f.StringVar(&objection, "objection-deadline", "", "the last day for objections")
	f.StringVar(&expires, "expires", "", "the day the order lapses")
	f.StringVar(&ref, "reference", "", "how the order is cited, e.g. \"Dkt. 12\"")
	f.StringVar(&notes, "notes", "", "free-form notes")
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(add)
	return add
}

func domainCounts(m map[registry.State]int) string {
	if len(m) == 0 {
		return "0"
	}
	order := []registry.State{registry.StateListed, registry.StateRestrained, registry.StateSinkholed, registry.StateTransferred, registry.StateReleased}
	var parts []string
	seen := map[registry.State]bool{}
	for _, s := range order {
		if n := m[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", thousands(int64(n)), s))
		}
		seen[s] = true
	}
	var rest []string
	for s, n := range m {
		if !seen[s] && n > 0 {
			rest = append(rest, fmt.Sprintf("%d %s", n, s))
		}
	}
	sort.Strings(rest)
	return strings.Join(append(parts, rest...), ", ")
}

func (e *env) jsonFlag(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&e.jsonOut, "json", false, "print JSON")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
