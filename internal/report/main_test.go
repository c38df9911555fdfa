package report

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/spawn"
)

// The benchmarks on ClickHouse start its servers through package spawn,
// whose goroutine lives as long as the process, on purpose.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(spawn.Forker))
}
