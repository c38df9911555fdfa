package deliver

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/dbfile"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// openDB opens a takedown database file in dir; "" is in memory.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := dbfile.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if path == "" {
		db.SetMaxOpenConns(1)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
