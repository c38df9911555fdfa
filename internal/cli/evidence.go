package cli

import "github.com/spf13/cobra"

// evidenceCommand is the evidence log and the exhibits made from it: the
// log's own commands (keys, checkpoints, proofs, checks, cosigning) are in
// evidence_log.go, the exhibit's (export, verify) in evidence_exhibit.go.
func (e *env) evidenceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "The transparency log of the events and the audit log, and a case's exhibit"}
	cmd.AddCommand(e.evidenceLogCommands()...)
	cmd.AddCommand(e.evidenceExhibitCommands()...)
	return cmd
}
