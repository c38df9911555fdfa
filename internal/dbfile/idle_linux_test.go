package dbfile

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/takedown-project/takedown/internal/idle"
)

// TestWorkersInIdleClass: the worker threads that DuckDB starts when it
// opens the file are in the idle CPU class (package idle), so that they
// never delay the sinks, and keep to the background CPUs.
func TestWorkersInIdleClass(t *testing.T) {
	idle.SetBackgroundCPUs(1)
	defer idle.SetBackgroundCPUs(0)
	before, _ := idleTIDs(t)
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var threads int
	if err := db.QueryRow(`SELECT current_setting('threads')`).Scan(&threads); err != nil {
		t.Fatal(err)
	}
	// DuckDB runs threads-1 workers beside the calling thread.
	after, wide := idleTIDs(t)
	if got := len(after) - len(before); got < threads-1 {
		t.Errorf("%d threads in the idle class after opening, want DuckDB's %d workers", got, threads-1)
	}
	for tid := range wide {
		if !before[tid] {
			t.Errorf("DuckDB worker %d may run on every CPU, want it kept to the background share", tid)
		}
	}
}

// idleTIDs returns the process's threads in the idle class, and those of
// them allowed on every CPU of a machine with more than one.
func idleTIDs(t *testing.T) (all, wide map[int]bool) {
	t.Helper()
	all, wide = map[int]bool{}, map[int]bool{}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil || a.Policy != unix.SCHED_IDLE {
			continue // the thread ended, or is not idle
		}
		all[tid] = true
		var on unix.CPUSet
		if unix.SchedGetaffinity(tid, &on) == nil && cpus.Count() > 1 && on == cpus {
			wide[tid] = true
		}
	}
	return all, wide
}
