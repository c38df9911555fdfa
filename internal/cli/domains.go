package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/registry"
)

func (e *env) domainsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "domains", Short: "Import, list, show seized domains and move them through their lifecycle"}

	var caseName, reason string
	imp := &cobra.Command{
		Use:   "import --case CASE FILE",
		Short: "Import the domains of a court-order list into a case, all or nothing",
		Long: `Import the domains of a court-order list into a case. FILE holds one name
a line, or CSV with the columns name, registrar, family (a header row is
optional). Names are normalised to lower-case A-labels. Duplicates, invalid
names and names already in a case are reported with their line numbers, and
then nothing is imported. "-" reads standard input.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if caseName == "" {
				return usage(fmt.Errorf("--case: give the case to import into"))
			}
			var data []byte
			var err error
			file := args[0]
			if file == "-" {
				data, err = readAllLimited(os.Stdin)
				file = "stdin"
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("reading domain list: %w", err)
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				res, err := b.ImportDomains(ctx, caseName, file, data, e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, res)
				}
				fmt.Fprintf(e.stdout, "imported %s domains into case %s\n", thousands(int64(res.Added)), res.Case)
				return nil
			})
		},
	}
	imp.Flags().StringVar(&caseName, "case", "", "the case (required)")
	imp.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(imp)

	var f registry.DomainFilter
	var state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List domains",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if state != "" {
				s, err := registry.ParseState(state)
				if err != nil {
					return usage(fmt.Errorf("--state: %w", err))
				}
				f.State = s
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				ds, err := b.ListDomains(ctx, f)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(ds))
				}
				t := newTable(e.stdout, "DOMAIN", "CASE", "STATE", "SINCE", "DS", "REGISTRAR", "REGISTRY", "FAMILY")
				for _, d := range ds {
					t.row(d.Name, d.Case, string(d.State), stamp(d.StateSince), orDash(string(d.DSState)), orDash(d.Registrar), orDash(d.Registry), orDash(d.Family))
				}
				return t.flush()
			})
		},
	}
	lf := list.Flags()
	lf.StringVar(&f.Case, "case", "", "only this case")
	lf.StringVar(&state, "state", "", "only this state")
	lf.StringVar(&f.Registrar, "registrar", "", "only this registrar")
	lf.StringVar(&f.TLD, "tld", "", "only this TLD")
	lf.StringVar(&f.Family, "family", "", "only this malware family")
	lf.IntVar(&f.Limit, "limit", 0, "at most this many (0: all)")
	e.jsonFlag(list)

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a domain with its state history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				d, err := b.GetDomain(ctx, args[0])
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, d)
				}
				w := e.stdout
				fmt.Fprintf(w, "domain:    %s\ncase:      %s\nstate:     %s since %s\ntld:       %s\nregistrar: %s\nregistry:  %s\nfamily:    %s\nadded:     %s\n\n",
					d.Name, d.Case, d.State, stamp(d.StateSince), d.TLD, orDash(d.Registrar), orDash(d.Registry), orDash(d.Family), stamp(d.Added))
				if dl := d.Delegation; dl != nil {
					status := "points elsewhere"
					if dl.Verified {
						status = "verified"
					}
					fmt.Fprintf(w, "delegation: %s at %s (NS %s)", status, stamp(dl.CheckedAt), orDash(strings.Join(dl.NS, " ")))
					if dl.Problem != "" {
						fmt.Fprintf(w, ": %s", dl.Problem)
					}
					fmt.Fprint(w, "\n")
					writeDSState(w, dl)
					fmt.Fprint(w, "\n")
				} else {
					fmt.Fprint(w, "delegation: never checked (takedown domains verify)\n\n")
				}
				t := newTable(w, "AT", "FROM", "TO", "BY", "WHY")
				for _, h := range d.History {
					t.row(stamp(h.At), orDash(string(h.From)), string(h.To), h.Actor, orDash(h.Reason))
				}
				return t.flush()
			})
		},
	}
	e.jsonFlag(show)

	var toState, setReason, fromFile, setCase string
	set := &cobra.Command{
		Use:   "set-state --state STATE [NAME...]",
		Short: "Move domains to a new lifecycle state, all or nothing",
		Long: `Move domains to a new lifecycle state: listed → restrained → sinkholed →
transferred, or released from any of them. Name the domains as arguments,
with --file (one a line), or all of a case's domains in one state with
--case and --from-state. An illegal transition of any domain changes nothing.`,
		Example: `  takedown domains set-state --state sinkholed --reason "registry confirmed redirect" bad.example worse.example
  takedown domains set-state --state restrained --case waledac-2010 --from-state listed`,
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := registry.ParseState(toState)
			if err != nil {
				return usage(fmt.Errorf("--state: %w", err))
			}
			if cmd.Flags().Changed("from-state") && setCase == "" {
				return usage(errors.New("--from-state picks among the domains of --case: give --case too"))
			}
			names := append([]string(nil), args...)
			if fromFile != "" {
				data, err := os.ReadFile(fromFile)
				if err != nil {
					return fmt.Errorf("--file: %w", err)
				}
				for _, l := range strings.Split(string(data), "\n") {
					if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
						names = append(names, l)
					}
				}
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				if setCase != "" {
					var from registry.State
					if fs, _ := cmd.Flags().GetString("from-state"); fs != "" {
						if from, err = registry.ParseState(fs); err != nil {
							return usage(fmt.Errorf("--from-state: %w", err))
						}
					}
					ds, err := b.ListDomains(ctx, registry.DomainFilter{Case: setCase, State: from})
					if err != nil {
						return err
					}
					if len(ds) == 0 {
						return fmt.Errorf("case %s has no domains in state %s", setCase, orDash(string(from)))
					}
					for _, d := range ds {
						names = append(names, d.Name)
					}
				}
				if len(names) == 0 {
					return usage(errors.New("name the domains: as arguments, with --file, or with --case"))
				}
				ds, err := b.SetState(ctx, names, to, e.change(setReason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(ds))
				}
				fmt.Fprintf(e.stdout, "%s domain(s) now %s\n", thousands(int64(len(ds))), to)
				return nil
			})
		},
	}
	sf := set.Flags()
	sf.StringVar(&toState, "state", "", "the new state (required)")
	sf.StringVar(&setReason, "reason", "", "why, for the audit log")
	sf.StringVar(&fromFile, "file", "", "read the names from this file, one a line")
	sf.StringVar(&setCase, "case", "", "all domains of this case (with --from-state: those in that state)")
	sf.String("from-state", "", "with --case: only the domains in this state")
	e.jsonFlag(set)

	cmd.AddCommand(imp, list, show, set, e.verifyCommand())
	return cmd
}

func (e *env) deadlinesCommand() *cobra.Command {
	var within string
	cmd := &cobra.Command{
		Use:   "deadlines",
		Short: "List court-order deadlines (objections, expiries) due soon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			span, err := api.ParseSpan(within)
			if err != nil {
				return usage(fmt.Errorf("--within: %w", err))
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				now := e.now()
				ds, err := b.Deadlines(ctx, now, span)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(ds))
				}
				if len(ds) == 0 {
					fmt.Fprintf(e.stdout, "no deadlines within %s\n", within)
				} else {
					t := newTable(e.stdout, "DUE", "IN", "CASE", "KIND", "ORDER", "REFERENCE")
					for _, d := range ds {
						left := d.Due.Sub(now)
						days := int(left.Hours() / 24)
						t.row(day(d.Due), fmt.Sprintf("%dd", days), d.Case, d.Kind, fmt.Sprintf("%d %s", d.OrderID, d.OrderType), orDash(d.Reference))
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
				return warnStaleDS(ctx, e.stdout, b)
			})
		},
	}
	cmd.Flags().StringVar(&within, "within", "14d", "how far ahead to look: 14d, 2w, 36h")
	e.jsonFlag(cmd)
	return cmd
}

func readAllLimited(r io.Reader) ([]byte, error) {
	const max = 256 << 20
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && len(data) > max {
		return nil, fmt.Errorf("input larger than %d bytes", max)
	}
	return data, err
}

// writeDSState writes the "dnssec:" lines of domains show: what the DS
// records at the parent mean, and the records.
func writeDSState(w io.Writer, dl *registry.DelegationCheck) {
	switch dl.DSState {
	case registry.DSUnsigned:
		fmt.Fprint(w, "dnssec:     unsigned (no DS record at the parent that resolvers use): resolvers take the sinkhole's answers as insecure\n")
	case registry.DSSigned:
		fmt.Fprint(w, "dnssec:     signed (a DS record at the parent is one of our keys)\n")
	case registry.DSStale:
		fmt.Fprint(w, "dnssec:     STALE DS at the parent, none of them ours: validating resolvers answer SERVFAIL; the registry must remove or replace them (takedown registrars package)\n")
	case registry.DSError:
		fmt.Fprintf(w, "dnssec:     DS records could not be read: %s\n", dl.DSProblem)
	default:
		fmt.Fprint(w, "dnssec:     DS records not checked (takedown domains verify)\n")
	}
	for _, ds := range dl.DS {
		fmt.Fprintf(w, "            DS %s\n", ds)
	}
}

// warnStaleDS warns, after the deadlines, of the domains whose last check
// found stale DS records at the parent: until the registry removes them,
// validating resolvers answer SERVFAIL and the census misses their bots.
func warnStaleDS(ctx context.Context, w io.Writer, b Backend) error {
	ds, err := b.ListDomains(ctx, registry.DomainFilter{})
	if err != nil {
		return err
	}
	var stale []string
	for _, d := range ds {
		if d.DSState == registry.DSStale && d.State != registry.StateReleased {
			stale = append(stale, d.Name+" ("+d.Case+")")
		}
	}
	if len(stale) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nwarning: %d domain(s) with stale DS records at the parent (validating resolvers answer SERVFAIL; takedown registrars package says what to ask the registries):\n", len(stale))
	for _, s := range stale {
		fmt.Fprintf(w, "  %s\n", s)
	}
	return nil
}
