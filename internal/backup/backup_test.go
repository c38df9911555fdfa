package backup_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/takedown-project/takedown/internal/backup"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/registry"
)

// open makes a takedown database with a registry and a table of rows.
func open(t *testing.T) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "takedown.duckdb")
	db, err := dbfile.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(context.Background(), registry.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.AddCase(context.Background(), registry.NewCase{Name: "c1", Court: "x", Docket: "y"}, registry.Change{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE rows (id BIGINT PRIMARY KEY, v VARCHAR)`,
		`CREATE INDEX rows_v ON rows (v)`,
		`CREATE MACRO twice(x) AS x * 2`,
		`INSERT INTO rows SELECT i, 'r' || i FROM range(1000) t(i)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	return db, path
}

// TestSnapshotWhileWriting copies the database while other connections
// insert: the copy holds the rows counted in its transaction, whole
// batches only, and the schema's index and macro.
func TestSnapshotWhileWriting(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); i < 200; i++ {
				select {
				case <-stop:
					return
				default:
				}
				base := 1_000_000*(int64(w)+1) + i*100
				if _, err := db.Exec(`INSERT INTO rows SELECT i, 'w' FROM range(?, ?) t(i)`, base, base+100); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	out := filepath.Join(t.TempDir(), "b.duckdb")
	c, err := backup.Snapshot(ctx, db, out, nil)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if c["rows"] < 1000 || c["rows"]%100 != 0 || c["registry_cases"] != 1 {
		t.Errorf("counts %v: want ≥ 1000 rows in whole batches of 100 and the case", c)
	}
	got, err := backup.Check(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(c) {
		t.Errorf("file's rows differ from the snapshot's count: %s", c.Diff(got))
	}
	fi, _ := os.Stat(out)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	cp, err := sql.Open("duckdb", out+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var n, idx int
	if err := cp.QueryRow(`SELECT twice(21)`).Scan(&n); err != nil || n != 42 {
		t.Errorf("macro in the copy: %d, %v", n, err)
	}
	cp.QueryRow(`SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'rows_v'`).Scan(&idx)
	if idx != 1 {
		t.Errorf("index rows_v not in the copy")
	}
	if _, err := backup.Snapshot(ctx, db, out, nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("snapshot over an existing file: %v", err)
	}
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	out := filepath.Join(t.TempDir(), "b.duckdb")
	c, err := backup.Snapshot(ctx, db, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	dst := filepath.Join(dir, "takedown.duckdb")
	got, head, err := backup.Restore(ctx, out, dir, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if head.Seq == 0 || !got.Equal(c) {
		t.Errorf("restored: head %v, counts %s", head, c.Diff(got))
	}
	// A second restore into the same directory is refused, unchanged.
	if _, _, err := backup.Restore(ctx, out, dir, dst, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty directory: %v", err)
	}
	// A DuckDB file of another program, and a file that is not DuckDB's.
	foreign := filepath.Join(t.TempDir(), "other.duckdb")
	o, err := sql.Open("duckdb", foreign)
	if err != nil {
		t.Fatal(err)
	}
	o.Exec(`CREATE TABLE t (x INT)`)
	o.Close()
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("hello, this is not a database at all"), 0o600)
	for _, f := range []string{foreign, junk} {
		d := filepath.Join(t.TempDir(), "data")
		if _, _, err := backup.Restore(ctx, f, d, filepath.Join(d, "takedown.duckdb"), nil); !errors.Is(err, dbfile.ErrForeign) {
			t.Errorf("restore of %s: %v, want ErrForeign", filepath.Base(f), err)
		}
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("restore of %s left %d files behind", filepath.Base(f), len(ents))
		}
	}
}

// FuzzCheck feeds Check files of any content: it returns an error or
// counts, and never panics.
func FuzzCheck(f *testing.F) {
	f.Add([]byte("not a database"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00DUCK\x40\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.duckdb")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := backup.Check(context.Background(), p); err == nil {
			t.Errorf("Check accepted %d bytes that are not a takedown backup", len(data))
		}
	})
}

// TestRemoveStale: the copies and WALs of unfinished backups go, the
// database and other files stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"takedown.duckdb", "takedown.duckdb.wal", ".backup-1.duckdb", ".backup-1.duckdb.wal", ".backup-22.duckdb", "backup-3.duckdb", "api.token"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := backup.RemoveStale(dir)
	if err != nil || strings.Join(removed, " ") != ".backup-1.duckdb .backup-22.duckdb .backup-1.duckdb.wal" {
		t.Errorf("removed %q, %v", removed, err)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "api.token backup-3.duckdb takedown.duckdb takedown.duckdb.wal" {
		t.Errorf("left %v", names)
	}
}
