package dbfile

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
)

func TestNewFileIsClaimedAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.duckdb")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE x (a INTEGER)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopening our own file: %v", err)
	}
	var app string
	if err := db.QueryRow(`SELECT application FROM takedown_meta`).Scan(&app); err != nil || app != Application {
		t.Errorf("takedown_meta: %q %v", app, err)
	}
	db.Close()
}

func TestForeignAndBrokenFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	// A DuckDB database of another program.
	other := filepath.Join(dir, "other.duckdb")
	raw, err := sql.Open("duckdb", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE invoices (id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("these are not the bytes of a database\n"), 0o600)
	empty := filepath.Join(dir, "empty.duckdb")
	os.WriteFile(empty, nil, 0o600)

	// Our own file with its middle overwritten.
	broken := filepath.Join(dir, "broken.duckdb")
	db, err := Open(ctx, broken)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(`CREATE TABLE t AS SELECT range AS i FROM range(100000)`)
	db.Close()
	data, _ := os.ReadFile(broken)
	for i := 4096; i < len(data) && i < 4096*8; i++ {
		data[i] = 0xA5
	}
	os.WriteFile(broken, data, 0o600)

	for _, tc := range []struct {
		path string
		want string
	}{
		{other, "another program"},
		{text, "not a DuckDB database"},
		{empty, "empty"},
		{broken, "broken.duckdb"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			db, err := Open(ctx, tc.path)
			if err == nil {
				db.Close()
				t.Fatal("opened without error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file and %q", err, tc.want)
			}
		})
	}
	// The foreign database was not touched.
	raw, _ = sql.Open("duckdb", other)
	defer raw.Close()
	var n int
	raw.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_name = 'takedown_meta'`).Scan(&n)
	if n != 0 {
		t.Error("takedown_meta was added to a foreign database")
	}
}

// TestLockedByAnotherProcess opens the file here and again in a child
// process, as the CLI does while `takedown serve` runs.
func TestLockedByAnotherProcess(t *testing.T) {
	if path := os.Getenv("TAKEDOWN_DBFILE_CHILD"); path != "" {
		_, err := Open(context.Background(), path)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("child: want ErrLocked, got %v", err)
		}
		if !strings.Contains(err.Error(), "takedown serve") {
			t.Fatalf("child: message does not point at serve: %v", err)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "t.duckdb")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByAnotherProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "TAKEDOWN_DBFILE_CHILD="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestRowGroupSize: RowGroupSize is the size of the row groups DuckDB
// writes, so that batches of it fill them exactly.
func TestRowGroupSize(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE x (a BIGINT)`,
		`INSERT INTO x SELECT range FROM range(` + strconv.Itoa(2*RowGroupSize+1) + `)`,
		`CHECKPOINT`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rows, err := db.Query(`SELECT row_group_id, sum(count) FROM pragma_storage_info('x')
		WHERE column_name = 'a' AND segment_type <> 'VALIDITY' GROUP BY ALL ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int64
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if want := []int64{RowGroupSize, RowGroupSize, 1}; !slices.Equal(got, want) {
		t.Errorf("rows per row group %v, want %v: DuckDB's row group size is not RowGroupSize", got, want)
	}
}
