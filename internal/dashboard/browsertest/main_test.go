package browsertest

import (
	"os"
	"testing"

	"github.com/takedown-project/takedown/internal/testnet"
)

// TestMain waits for the turn of the load-heavy packages (testnet.Turn).
func TestMain(m *testing.M) {
	testnet.Turn()
	os.Exit(m.Run())
}
