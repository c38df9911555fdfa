package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoSensorsClickHouse runs `takedown demo --sensors 2 --store
// clickhouse`: the central, a process of its own, stores the sensors'
// events in the demo's own clickhouse-server; each sensor's share and the
// census still match the simulator exactly.
func TestDemoSensorsClickHouse(t *testing.T) {
	bin := takedownBinary(t)
	data := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(bin, "--data-dir", data, "demo", "--sensors", "2", "--store", "clickhouse", "--bots", "1000", "--speed", "3000", "--duration", "4s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo --sensors 2 --store clickhouse: %v\n%s", err, out)
	}
	for _, w := range []string{"events go to ClickHouse", "central  pid", "sensor-2 pid", "each sensor's share of the live run",
		"hash chain verified", "ClickHouse stopped", "clickhouse-server --config-file="} {
		if !strings.Contains(string(out), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(string(out), "differs") || strings.Count(string(out), "✓") != 5 {
		t.Errorf("the shares or the census do not match the truth:\n%s", out)
	}
	central, err := os.ReadFile(filepath.Join(data, "central.yaml"))
	if err != nil || !strings.Contains(string(central), "engine: clickhouse") {
		t.Errorf("the central's config does not name ClickHouse (%v):\n%s", err, central)
	}
}
