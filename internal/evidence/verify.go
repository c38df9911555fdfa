package evidence

import (
	"context"
	"errors"
)

// Verify recomputes the whole log from its leaves: each leaf's record hash
// from its data (unless pruned), every stored hash, the tree hash at every
// checkpoint's size, and each checkpoint's signature (when the verifier is
// known). A *TamperError names the first leaf whose data no longer matches
// or, when the hashes were rewritten as well, the first checkpoint that no
// longer matches and the leaves between it and the last good one.
func (l *Log) Verify(ctx context.Context) error {
	return errors.New("evidence: Verify: not yet")
}
