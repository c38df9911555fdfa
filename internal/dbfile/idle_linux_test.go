package dbfile

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/takedown-project/takedown/internal/idle"
)

// TestWorkersInIdleClass: the worker threads that DuckDB starts when it
// opens the file are in the idle CPU class (package idle), so that they
// never delay the sinks.
func TestWorkersInIdleClass(t *testing.T) {
	idle.SetBackgroundCPUs(1)
	defer idle.SetBackgroundCPUs(0)
	before, _ := idleThreads(t)
	old, _ := idleTIDs(t)
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
	after, _ := idleThreads(t)
	if got := after - before; got < threads-1 {
		t.Errorf("%d threads in the idle class after opening, want DuckDB's %d workers", got, threads-1)
	}
	_, wideNow := idleTIDs(t)
	for tid := range wideNow {
		if !old[tid] {
			t.Errorf("DuckDB worker %d may run on every CPU, want it kept to the background share", tid)
		}
	}
}

// idleThreads counts the process's threads whose policy is SCHED_IDLE (5),
// and of those the ones allowed on every CPU of a machine with more than
// one.
func idleThreads(t *testing.T) (n, wide int) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command's closing parenthesis start at 3;
		// the policy is field 41.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 41-3 {
			if p, _ := strconv.Atoi(f[41-3]); p == 5 {
				n++
				tid, _ := strconv.Atoi(task.Name())
				var on unix.CPUSet
				if unix.SchedGetaffinity(tid, &on) == nil && all.Count() > 1 && on == all {
					wide++
				}
			}
		}
	}
	return n, wide
}

// idleTIDs returns the idle-class threads, and those of them allowed on
// every CPU of a machine with more than one.
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
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) <= 41-3 || f[41-3] != "5" {
			continue
		}
		tid, _ := strconv.Atoi(task.Name())
		all[tid] = true
		var on unix.CPUSet
		if unix.SchedGetaffinity(tid, &on) == nil && cpus.Count() > 1 && on == cpus {
			wide[tid] = true
		}
	}
	return all, wide
}
