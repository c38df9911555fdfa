package xfr

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/spawn"
)

func TestMain(m *testing.M) {
	// The daemons are started through package spawn, whose goroutine
	// lives as long as the process.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(spawn.Forker))
}
