//go:build unix

package dbfile

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFilesArePrivate: under the common umask 022, the database file and
// its WAL are created 0600, also the WAL that DuckDB creates again after a
// checkpoint deleted it.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	path := filepath.Join(t.TempDir(), "t.duckdb")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	for _, step := range []string{`CREATE TABLE x (a INTEGER)`, `CHECKPOINT`, `INSERT INTO x VALUES (1)`} {
		if _, err := db.Exec(step); err != nil {
			t.Fatal(err)
		}
		if m := mode(path); m != 0o600 {
			t.Errorf("after %s: database file mode %v, want 0600", step, m)
		}
		if _, err := os.Stat(path + ".wal"); err == nil {
			if m := mode(path + ".wal"); m != 0o600 {
				t.Errorf("after %s: WAL mode %v, want 0600", step, m)
			}
		}
	}
	if _, err := os.Stat(path + ".wal"); err != nil {
		t.Errorf("no WAL after the last insert: %v", err)
	}
}
