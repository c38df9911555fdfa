package cli

import "github.com/spf13/cobra"

// evidenceLogCommands are the commands of the log itself.
func (e *env) evidenceLogCommands() []*cobra.Command { return nil }
