package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func (e *env) registrarsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "registrars", Short: "Prepare what registrars and registries receive with a court order"}
	var caseName, out, format string
	pkg := &cobra.Command{
		Use:   "package --case CASE [--out DIR]",
		Short: "Write one file per registrar and per registry listing its domains with the order reference",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if caseName == "" {
				return usage(fmt.Errorf("--case: give the case"))
			}
			if format != "csv" && format != "txt" && format != "both" {
				return usage(fmt.Errorf("--format: %q is not one of csv, txt, both", format))
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
