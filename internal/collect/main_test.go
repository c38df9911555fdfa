package collect_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the collector's
// own (its run, its poller, its subscriptions) end with Run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
