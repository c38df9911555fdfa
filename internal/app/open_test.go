package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/config"
)

func TestOpenSetsMemoryLimit(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf("data_dir: %s\nstore: {memory_limit_mb: 256}\n", filepath.Join(t.TempDir(), "d"))))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got string
	if err := l.DB.QueryRow(`SELECT current_setting('memory_limit')`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "244.1 MiB") && !strings.HasPrefix(got, "256") {
		t.Fatalf("memory_limit %q, want 256 MB", got)
	}
}
