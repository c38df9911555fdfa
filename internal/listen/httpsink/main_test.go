package httpsink

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv("TAKEDOWN_HTTPSINK_SERVE"); addr != "" {
		// The benchmark runner of bench/http-ours.sh: serve until killed.
		os.Exit(serveForBench(addr))
	}
	goleak.VerifyTestMain(m)
}
