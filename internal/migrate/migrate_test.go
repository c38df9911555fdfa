package migrate

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
)

func open(t *testing.T) *sql.DB {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one in-memory database for all statements
	t.Cleanup(func() { db.Close() })
	return db
}

var steps = []Migration{
	{1, "create a", `CREATE TABLE a (x INTEGER)`},
	{2, "add column", `ALTER TABLE a ADD COLUMN y VARCHAR`},
}

func TestApplyIdempotentAndPerComponent(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	for i := 0; i < 2; i++ {
		if err := Apply(ctx, db, "one", steps); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if v, _ := Version(ctx, db, "one"); v != 2 {
		t.Errorf("version %d, want 2", v)
	}
	if v, _ := Version(ctx, db, "two"); v != 0 {
		t.Errorf("other component at %d, want 0", v)
	}
	if _, err := db.Exec(`INSERT INTO a VALUES (1, 'y')`); err != nil {
		t.Errorf("schema not at version 2: %v", err)
	}
}

func TestFailedStepLeavesPreviousVersion(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	bad := append(append([]Migration{}, steps...), Migration{3, "broken", `ALTER TABLE a ADD COLUMN z INTEGER; SELEC oops`})
	err := Apply(ctx, db, "one", bad)
	if err == nil || !strings.Contains(err.Error(), "version 3 (broken)") {
		t.Fatalf("got %v", err)
	}
	if v, _ := Version(ctx, db, "one"); v != 2 {
		t.Errorf("version %d after failed step, want 2", v)
	}
	if _, err := db.Exec(`SELECT z FROM a`); err == nil {
		t.Error("column of the failed step exists")
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := Apply(ctx, db, "one", steps); err != nil {
		t.Fatal(err)
	}
	err := Apply(ctx, db, "one", steps[:1])
	if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("got %v", err)
	}
}

func TestBadNumbering(t *testing.T) {
	err := Apply(context.Background(), open(t), "one", []Migration{{2, "x", "SELECT 1"}})
	if err == nil || !strings.Contains(err.Error(), "want 1") {
		t.Fatalf("got %v", err)
	}
}
