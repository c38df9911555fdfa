package cli

import "github.com/spf13/cobra"

// evidenceExhibitCommands are the commands of a case's exhibit.
func (e *env) evidenceExhibitCommands() []*cobra.Command { return nil }
