//go:build unix

package cli_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDataFilesArePrivate: under the common umask 022, everything serve
// and the CLI create under the data directory — the database and its WAL,
// the spool, the API token, the certificate authority's key, the evidence
// log's key — is its owner's only: files 0600, directories 0700; what is
// public by design (the CA's certificate, the evidence log's verifier key
// and published checkpoints) is 0644.
func TestDataFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022) // serve inherits it
	t.Cleanup(func() { syscall.Umask(old) })
	cfg, dataDir, addr := setup(t)
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1")
	startServer(t, cfg, addr)
	mustRun(t, cfg, "cases", "add", "c2", "--court", "E.D. Va.", "--docket", "2")
	seen := map[string]bool{}
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path)
		seen[rel] = true
		want, wantDir := fs.FileMode(0o600), fs.FileMode(0o700)
		switch {
		case rel == filepath.Join("ca", "ca.pem"):
			want = 0o644 // the CA's certificate, public by design (its directory is 0700)
		case rel == "evidence.pub" || strings.HasPrefix(rel, filepath.Join("evidence", "published")):
			// The evidence log's verifier key and its published
			// checkpoints: public by design, to be mirrored (the data
			// directory is 0700).
			want, wantDir = 0o644, 0o755
		}
		if d.IsDir() && fi.Mode().Perm() != wantDir || !d.IsDir() && fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v", rel, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".", "takedown.duckdb", "takedown.duckdb.wal", "api.token", "spool", "ca", "evidence.key", "evidence.pub", filepath.Join("evidence", "published", "checkpoint")} {
		if !seen[want] {
			t.Errorf("no %s in the data directory (%d entries: %s)", want, len(seen), strings.Join(keys(seen), " "))
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
