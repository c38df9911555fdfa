package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/delegation"
	"github.com/takedown-project/takedown/internal/progress"
	"github.com/takedown-project/takedown/internal/registry"
)

func (e *env) verifyCommand() *cobra.Command {
	var caseName, resolver, reason string
	cmd := &cobra.Command{
		Use:   "verify [--case CASE | NAME...]",
		Short: "Check that seized domains are delegated to the sinkhole's name servers",
		Long: `Ask a recursive resolver for each domain's NS and A/AAAA records, record the
result in the registry ("delegation verified at T" when every NS is one of
dns.nameservers), and list the domains that still point elsewhere, with what
they point to. Without names, every domain of --case (or of all cases) that
is not released is checked.

It also asks for each domain's DS records at the parent (with DO and CD) and
records one of: unsigned (none: fine), signed (one is of our keys, dns.dnssec:
fine), stale (DS records, none ours: validating resolvers answer SERVFAIL,
and takedown registrars package asks the registry to remove or replace them)
or error (the DS question failed). See docs/dnssec-registry.md.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if caseName != "" && len(args) > 0 {
				return usage(errors.New("--case picks the domains to check when none is named: give names or --case, not both"))
			}
			cfg, err := e.config()
			if err != nil {
				return err
			}
			if resolver == "" {
				resolver = cfg.Delegation.Resolver
			}
			if resolver == "" {
				if resolver, err = systemResolver(); err != nil {
					return fmt.Errorf("--resolver: none given, none in the config (delegation.resolver) and %v", err)
				}
			}
			dc := delegation.Config{Resolver: resolver}
			for _, ns := range cfg.DNS.NameServers {
				dc.NameServers = append(dc.NameServers, ns.Name)
			}
			for _, a := range append(append([]string{}, cfg.DNS.A...), cfg.DNS.AAAA...) {
				if ip, err := netip.ParseAddr(a); err == nil {
					dc.Addrs = append(dc.Addrs, ip)
				}
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				names := args
				if len(names) == 0 {
					ds, err := b.ListDomains(ctx, registry.DomainFilter{Case: caseName})
					if err != nil {
						return err
					}
					for _, d := range ds {
						if d.State != registry.StateReleased {
							names = append(names, d.Name)
						}
					}
				}
				if len(names) == 0 {
					return fmt.Errorf("no domains to check")
				}
				bar := progress.New(e.stderr, "checking delegations", "domains", int64(len(names)))
				last := 0
				results, err := delegation.Check(ctx, dc, names, func(done int) { bar.Add(int64(done - last)); last = done })
				bar.Done()
				if err != nil && len(results) == 0 {
					return err
				}
				checks := make([]registry.DelegationCheck, len(results))
				for i, r := range results {
					c := registry.DelegationCheck{Domain: r.Domain, CheckedAt: r.CheckedAt, Verified: r.Verified, NS: r.NS, Problem: r.Problem,
						DSProblem: r.DSProblem}
					for _, a := range r.Addrs {
						c.Addrs = append(c.Addrs, a.String())
					}
					for _, ds := range r.DS {
						c.DS = append(c.DS, registry.FormatDS(ds))
					}
					// Signed or stale is the registry's to say, with our
					// keys; this says the DS records were looked at.
					c.DSState = registry.ClassifyDS(r.DS, nil)
					if r.DSProblem != "" {
						c.DSState = registry.DSError
					}
					checks[i] = c
				}
				if rerr := b.RecordDelegation(ctx, checks, e.change(reason)); rerr != nil {
					return rerr
				}
				if rerr := recordedDSStates(ctx, b, caseName, checks); rerr != nil {
					return rerr
				}
				if e.jsonOut {
					return writeJSON(e.stdout, checks)
				}
				ok, stale, dsErr := 0, 0, 0
				t := newTable(e.stdout, "DOMAIN", "DELEGATION", "DS", "NS", "ADDRESSES", "PROBLEM")
				for _, c := range checks {
					status := "elsewhere"
					if c.Verified {
						status = "verified"
						ok++
					}
					switch c.DSState {
					case registry.DSStale:
						stale++
					case registry.DSError:
						dsErr++
					}
					problem := c.Problem
					if c.DSProblem != "" && c.DSProblem != c.Problem {
						problem = strings.TrimPrefix(problem+"; DS: "+c.DSProblem, "; ")
					}
					t.row(c.Domain, status, string(c.DSState), orDash(strings.Join(c.NS, " ")), orDash(strings.Join(c.Addrs, " ")), orDash(problem))
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "\n%d of %d delegations verified (resolver %s)\n", ok, len(checks), resolver)
				if stale > 0 {
					fmt.Fprintf(e.stdout, "stale DS at the parent: %d (DS records that are not ours: validating resolvers answer SERVFAIL; takedown registrars package says what to ask the registries)\n", stale)
				}
				if dsErr > 0 {
					fmt.Fprintf(e.stdout, "DS records not read: %d (see PROBLEM)\n", dsErr)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&caseName, "case", "", "check the domains of this case")
	cmd.Flags().StringVar(&resolver, "resolver", "", "host:port of the recursive resolver (default delegation.resolver, else /etc/resolv.conf)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(cmd)
	return cmd
}

// recordedDSStates replaces each check's DS state with the one the
// registry recorded: it alone knows our keys, and so signed from stale.
func recordedDSStates(ctx context.Context, b Backend, caseName string, checks []registry.DelegationCheck) error {
	ds, err := b.ListDomains(ctx, registry.DomainFilter{Case: caseName})
	if err != nil {
		return err
	}
	state := make(map[string]registry.DSState, len(ds))
	for _, d := range ds {
		state[d.Name] = d.DSState
	}
	for i, c := range checks {
		if n, err := registry.NormalizeName(c.Domain); err == nil {
			if st, ok := state[n]; ok {
				checks[i].DSState = st
			}
		}
	}
	return nil
}

// systemResolver returns the first nameserver of /etc/resolv.conf.
func systemResolver() (string, error) {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			return net.JoinHostPort(fields[1], "53"), nil
		}
	}
	return "", fmt.Errorf("no nameserver in /etc/resolv.conf")
}
