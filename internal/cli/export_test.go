package cli

import "github.com/spf13/cobra"

// JSONCommands lists the path of every command that has a --json flag
// ("takedown stats hosts"), for the test that runs them all.
func JSONCommands() []string {
	e := &env{}
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("json") != nil {
			out = append(out, c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(e.rootCommand())
	return out
}
