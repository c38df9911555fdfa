package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/takedown-project/takedown/internal/config"
)

func (e *env) configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check and show the configuration"}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a config file (default: --config)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := e.configPath
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return usage(errors.New("name the file to check: takedown config check FILE"))
			}
			if _, err := config.Load(path); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: ok\n", path)
			return nil
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration, defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.config()
			if err != nil {
				return err
			}
			if cfg.Evidence.Enabled == nil { // its default depends on the role
				on := cfg.Evidence.On(cfg.Role)
				cfg.Evidence.Enabled = &on
			}
			enc := yaml.NewEncoder(e.stdout)
			enc.SetIndent(2)
			return enc.Encode(cfg)
		},
	}
	cmd.AddCommand(check, show)
	return cmd
}
