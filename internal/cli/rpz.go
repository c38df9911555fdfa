package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/rpz"
)

func (e *env) rpzCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "rpz", Short: "The Response Policy Zone feed of the seized names for ISP resolvers"}
	var out string
	export := &cobra.Command{
		Use:   "export [--out FILE]",
		Short: "Write the RPZ as a zone file (what `serve` transfers to BIND, Unbound, Knot, PowerDNS)",
		Long: `Write the Response Policy Zone as a zone file: two entries per seized domain
in a served state (name and *.name), with the policy of its case from
rpz.cases, else rpz.policy: nxdomain (CNAME .) or redirect (A/AAAA of the
sinkhole). The serial is the current unix time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.config()
			if err != nil {
				return err
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				served, err := app.LoadServed(ctx, b)
				if err != nil {
					return err
				}
				entries, err := app.RPZEntries(cfg, served)
				if err != nil {
					return err
				}
				rrs, err := rpz.Build(app.RPZConfig(cfg), uint32(e.now().Unix()), entries)
				if err != nil {
					return err
				}
				if out == "" || out == "-" {
					return rpz.WriteZoneFile(e.stdout, rrs)
				}
				if err := writeFile(out, func(w io.Writer) error { return rpz.WriteZoneFile(w, rrs) }); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "wrote %s: %d seized names, %d records\n", out, len(entries), len(rrs))
				return nil
			})
		},
	}
	export.Flags().StringVarP(&out, "out", "o", "", "the file to write (default standard output)")
	cmd.AddCommand(export)
	return cmd
}
