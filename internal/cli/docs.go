package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// docsCommand generates the manual pages from the command tree, for
// packagers: one page per command (takedown.1, takedown-domains-import.1, …).
// Shell completions come from cobra's own `takedown completion`.
func (e *env) docsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "docs",
		Short:  "Generate documentation from the commands (for packagers)",
		Hidden: true,
	}
	var dir string
	man := &cobra.Command{
		Use:   "man --dir DIR",
		Short: "Write a man page (section 1) for every command into DIR",
		Long: `Write a man page (section 1) for every command into DIR, named
takedown.1, takedown-domains.1, takedown-domains-import.1 and so on.

The pages' date is $SOURCE_DATE_EPOCH when set, else the build date, so
that a package build gives the same files every time.`,
		Example: `  takedown docs man --dir debian/man && man -l debian/man/takedown.1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			h := &doc.GenManHeader{Section: "1", Manual: "takedown manual", Source: "takedown " + buildVersion(cmd.Context()).Version}
			if os.Getenv("SOURCE_DATE_EPOCH") == "" {
				if t, err := time.Parse(time.RFC3339, buildVersion(cmd.Context()).Date); err == nil {
					h.Date = &t
				}
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTreeFromOpts(root, doc.GenManTreeOptions{Header: h, Path: dir, CommandSeparator: "-"}); err != nil {
				return fmt.Errorf("writing man pages to %s: %w", dir, err)
			}
			return nil
		},
	}
	man.Flags().StringVar(&dir, "dir", "", "directory to write the pages into (created if missing)")
	_ = man.MarkFlagRequired("dir")
	cmd.AddCommand(man)
	return cmd
}
