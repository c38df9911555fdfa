package httpsink

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv("TAKEDOWN_HTTPSINK_SERVE"); addr != "" {
		// The benchmark runner of bench/http-ours.sh: serve until killed.
		os.Exit(serveForBench(addr))
	}
	workerIdle = 100 * time.Millisecond
	goleak.VerifyTestMain(m)
}
