package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chrun"
)

// TestDemoClickHouse runs the demo with its events in a clickhouse-server
// of its own: the census still matches the simulator's truth family by
// family. Afterwards, with that server stopped, a command on the demo's
// config says the event store is not reachable (at once, not after a
// hang); with the server started again by the command the demo printed,
// the command answers what the demo counted.
func TestDemoClickHouse(t *testing.T) {
	if _, err := chrun.Binary(); err != nil {
		t.Fatal(err) // not a skip: the ClickHouse engine is tested on every machine
	}
	cfg, _, _ := setup(t)
	data := filepath.Join(t.TempDir(), "demo")
	out := mustRun(t, cfg, "--data-dir", data, "demo", "--store", "clickhouse", "--bots", "2000", "--speed", "3000", "--duration", "4s", "--backfill", "1")
	for _, w := range []string{"events go to ClickHouse", "276 domains imported", "serve is up", "1 day(s) of callbacks generated",
		"2,000 bots call home", "hash chain verified", "serve stopped", "ClickHouse stopped"} {
		if !strings.Contains(out, w) {
			t.Errorf("demo output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "differs") || strings.Count(out, "✓") != 3 {
		t.Errorf("the census does not match the truth for all three families:\n%s", out)
	}
	demoCfg := filepath.Join(data, "takedown.yaml")
	stats := []string{"-c", demoCfg, "--mode", "local", "stats", "hosts", "--by", "family", "--from", "2000-01-01", "--to", "2100-01-01", "--json"}

	t0 := time.Now()
	r := run(t, cfg, stats...)
	if r.code == 0 || !regexp.MustCompile(`event store: (chstore: )?clickhouse at 127\.0\.0\.1:\d+ is not reachable`).MatchString(r.stderr) {
		t.Errorf("with ClickHouse stopped: exit %d, stderr %q", r.code, r.stderr)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("the error took %s", d)
	}

	m := regexp.MustCompile(`(?m)^  (\S+) (--config-file=\S+) &`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo does not say how to start its ClickHouse again:\n%s", out)
	}
	srv := exec.Command(m[1], m[2])
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			srv.Process.Kill()
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if r = run(t, cfg, stats...); r.code == 0 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("clickhouse-server exited: %v\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("stats with ClickHouse started again: %+v", r)
		case <-time.After(300 * time.Millisecond):
		}
	}
	var rows []struct {
		Family            string
		IPs, Bots, Events int64
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("stats: %v %s", err, r.stdout)
	}
	for _, row := range rows {
		want := fmt.Sprintf("%-9s  %s", row.Family, thousands(row.IPs))
		if !strings.Contains(out, want) {
			t.Errorf("the demo's census lacks %q (ClickHouse's %+v):\n%s", want, row, out)
		}
	}
	if st := mustRun(t, cfg, "-c", demoCfg, "--mode", "local", "status"); !regexp.MustCompile(`store clickhouse at 127\.0\.0\.1:\d+/takedown: [\d,]+ events`).MatchString(st) {
		t.Errorf("status does not name the engine and its address:\n%s", st)
	}
}

// TestDemoClickHouseMissing: without a clickhouse-server the demo says
// how to install one, before it starts anything.
func TestDemoClickHouseMissing(t *testing.T) {
	cfg, _, _ := setup(t)
	t.Setenv(chrun.EnvBinary, filepath.Join(t.TempDir(), "clickhouse-server"))
	data := filepath.Join(t.TempDir(), "demo")
	r := run(t, cfg, "--data-dir", data, "demo", "--store", "clickhouse")
	if r.code == 0 || !strings.Contains(r.stderr, "--store clickhouse: clickhouse-server not found") || !strings.Contains(r.stderr, "apt-get install clickhouse-server") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run(t, cfg, "--data-dir", data, "demo", "--store", "sqlite"); r.code == 0 || !strings.Contains(r.stderr, `--store: "sqlite" is not one of duckdb, clickhouse`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
