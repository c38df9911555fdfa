package dbfile

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestWorkersInIdleClass: the worker threads that DuckDB starts when it
// opens the file are in the idle CPU class (package idle), so that they
// never delay the sinks.
func TestWorkersInIdleClass(t *testing.T) {
	before := idleThreads(t)
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
	if got := idleThreads(t) - before; got < threads-1 {
		t.Errorf("%d threads in the idle class after opening, want DuckDB's %d workers", got, threads-1)
	}
}

// idleThreads counts the process's threads whose policy is SCHED_IDLE (5).
func idleThreads(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
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
			}
		}
	}
	return n
}
