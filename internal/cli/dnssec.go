package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
)

func (e *env) dnssecCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "dnssec", Short: "List the DNSSEC keys of the cases that sign, their DS records, and roll the keys"}

	var caseName string
	keys := &cobra.Command{
		Use:   "keys",
		Short: "List the signing keys: tag, algorithm, state and times",
		Long: `List the signing keys of every case, or of one (--case): a combined signing
key (flags 257) per case that dns.dnssec signs, made at the first start that
serves the case. Removed keys stay in the list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				ks, err := b.DNSSECKeys(ctx, caseName)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(ks))
				}
				t := newTable(e.stdout, "CASE", "TAG", "ALGORITHM", "STATE", "CREATED", "ACTIVATED", "RETIRED", "REMOVED")
				for _, k := range ks {
					t.row(k.Case, strconv.Itoa(int(k.Tag)), fmt.Sprintf("%d (%s)", k.Algorithm, k.AlgorithmName), string(k.State),
						stamp(k.Created), stamp(k.Activated), stamp(k.Retired), stamp(k.Removed))
				}
				return t.flush()
			})
		},
	}
	keys.Flags().StringVar(&caseName, "case", "", "only this case")
	e.jsonFlag(keys)

	var zone string
	ds := &cobra.Command{
		Use:   "ds",
		Short: "Print the DS records the registries must publish for the seized zones",
		Long: `Print the DS records (SHA-256, digest type 2) of the published keys of each
domain of a case (--case; every case without), or of one domain (--zone), in
presentation format: what a registry puts in the parent zone so that
validating resolvers accept the sinkhole's signed answers. During a rollover
both keys' records are printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				rs, err := b.DNSSECDS(ctx, caseName, zone)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(rs))
				}
				printDS(e, rs)
				return nil
			})
		},
	}
	ds.Flags().StringVar(&caseName, "case", "", "only the domains of this case")
	ds.Flags().StringVar(&zone, "zone", "", "only this domain")
	e.jsonFlag(ds)

	var reason, keyFile string
	var force bool
	roll := func(step string) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			if caseName == "" {
				return usage(fmt.Errorf("--case: give the case whose key to roll"))
			}
			req := api.RolloverRequest{Case: caseName, Step: step, Force: force}
			if step == "import" {
				keyFile = args[0]
			}
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("reading the private key: %w", err)
				}
				req.PrivateKey, req.KeyFile = string(b), keyFile
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				res, err := b.DNSSECRollover(ctx, req, e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					res.DS = nonNil(res.DS)
					return writeJSON(e.stdout, res)
				}
				w := e.stdout
				if k := res.Added; k != nil {
					fmt.Fprintf(w, "case %s: key %d (%s) published and active\n", res.Case, k.Tag, k.AlgorithmName)
				}
				for _, k := range res.Removed {
					fmt.Fprintf(w, "case %s: key %d (%s) retired and removed\n", res.Case, k.Tag, k.AlgorithmName)
				}
				switch step {
				case "start":
					fmt.Fprint(w, "\nHave the registries add the new key's DS records (both keys sign meanwhile);\n"+
						"once the parents hold them, and the DS TTL has passed, run `takedown dnssec rollover finish`.\n"+
						"The DS records the parents should hold now:\n")
				case "finish":
					fmt.Fprint(w, "\nHave the registries remove the old keys' DS records. The DS records the parents should hold now:\n")
				default:
					fmt.Fprint(w, "\nThe DS records for the registries:\n")
				}
				printDS(e, res.DS)
				return nil
			})
		}
	}
	rollover := &cobra.Command{
		Use:   "rollover",
		Short: "Roll a case's signing key (double signature): start, then finish",
		Long: `Roll the combined signing key of a case in two steps.

start publishes a new key beside the old one and signs with both, so the
zones validate whichever DS records a parent holds. Have the registries add
the new key's DS (takedown dnssec ds --case CASE), and later remove the old.

finish retires and removes the old key once dns.dnssec.ds_ttl (or dns.ttl,
the DNSKEY set's TTL, if longer) has passed since start, and no parent holds only
the old key's DS as the last 'takedown domains verify' found it; --force
finishes anyway.`,
	}
	start := &cobra.Command{Use: "start --case CASE", Short: "Publish and activate a new key beside the old one", Args: cobra.NoArgs, RunE: roll("start")}
	start.Flags().StringVar(&keyFile, "key", "", "roll to this private key file (dnssec-keygen's, algorithm 13 or 15) rather than a new key")
	finish := &cobra.Command{Use: "finish --case CASE", Short: "Retire and remove the old key", Args: cobra.NoArgs, RunE: roll("finish")}
	finish.Flags().BoolVar(&force, "force", false, "finish before the DS TTL has passed, whatever the parents hold")
	imp := &cobra.Command{
		Use:   "import --case CASE FILE",
		Short: "Make a private key file (dnssec-keygen's) the first key of a case",
		Long: `Make a private key file the signing key of a case that has none yet: a BIND
"Private-key-format" file of algorithm 13 (ECDSAP256SHA256) or 15 (ED25519),
as dnssec-keygen writes it. A case with keys rolls to the key instead
(rollover start --key FILE).`,
		Args: cobra.ExactArgs(1), RunE: roll("import"),
	}
	for _, c := range []*cobra.Command{start, finish, imp} {
		c.Flags().StringVar(&caseName, "case", "", "the case (required)")
		c.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
		e.jsonFlag(c)
	}
	rollover.AddCommand(start, finish)
	cmd.AddCommand(keys, ds, rollover, imp)
	return cmd
}

// printDS writes DS records in presentation format, one a line.
func printDS(e *env, rs []api.DSRecord) {
	for _, r := range rs {
		fmt.Fprintf(e.stdout, "%s ; key %d %s, case %s\n", r.Record, r.KeyTag, r.KeyState, r.Case)
	}
}
