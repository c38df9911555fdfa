package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/progress"
	"github.com/takedown-project/takedown/internal/registry"
)

// Check reads the backup file at path without changing it: a DuckDB file
// whose takedown_meta names takedown. It returns the rows of its tables.
func Check(ctx context.Context, path string) (Counts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	head := make([]byte, 12)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head[8:12], []byte("DUCK")) {
		return nil, fmt.Errorf("backup %s: not a DuckDB database file (no DUCK at byte 8): %w", path, dbfile.ErrForeign)
	}
	c, err := CountFile(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", path, err)
	}
	if _, ok := c["takedown_meta"]; !ok {
		return nil, fmt.Errorf("backup %s: a DuckDB file without takedown_meta: %w", path, dbfile.ErrForeign)
	}
	return c, nil
}

// Restore brings the backup file src back as the database file dbPath in
// the data directory dataDir, which must be empty or absent. It checks the
// backup first (Check), copies it beside its destination, opens the copy as
// takedown does (migrating an older schema), verifies the audit log's hash
// chain and the rows of every table, and only then gives it its name. On
// failure nothing is left behind but the empty directory. A bar with an ETA
// goes to bar when it is a terminal.
func Restore(ctx context.Context, src, dataDir, dbPath string, bar io.Writer) (Counts, registry.AuditHead, error) {
	var head registry.AuditHead
	if err := checkEmpty(dataDir); err != nil {
		return nil, head, err
	}
	if dir := filepath.Dir(dbPath); dir != dataDir {
		if err := checkEmpty(dir); err != nil {
			return nil, head, err
		}
	}
	want, err := Check(ctx, src)
	if err != nil {
		return nil, head, err
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return nil, head, fmt.Errorf("creating data directory: %w", err)
	}
	tmp := dbPath + ".restoring"
	done := false
	defer func() {
		if !done {
			os.Remove(tmp)
			os.Remove(tmp + ".wal")
		}
	}()
	if err := copyFile(tmp, src, bar); err != nil {
		return nil, head, err
	}
	db, err := dbfile.Open(ctx, tmp)
	if err != nil {
		return nil, head, fmt.Errorf("opening the restored copy: %w", err)
	}
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err == nil {
		head, err = reg.VerifyAuditHead(ctx, registry.AuditHead{})
		if err != nil {
			err = fmt.Errorf("backup %s: the audit log does not verify after %d entries: %w", src, head.Seq, err)
		}
	} else {
		err = fmt.Errorf("backup %s: opening its registry: %w", src, err)
	}
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, head, err
	}
	got, err := CountFile(ctx, tmp)
	if err != nil {
		return nil, head, err
	}
	// Migrations may add tables to an older backup; every table of the
	// backup must still hold its rows.
	for _, t := range want.Tables() {
		if got[t] != want[t] {
			return nil, head, fmt.Errorf("restored copy of %s: %s", src, want.Diff(got))
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return nil, head, fmt.Errorf("restoring: %w", err)
	}
	done = true
	if d, err := os.Open(filepath.Dir(dbPath)); err == nil {
		d.Sync()
		d.Close()
	}
	return got, head, nil
}

// checkEmpty refuses a directory that holds anything.
func checkEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("data directory %s is not empty (it holds %s and %d more): restore goes into an empty or new directory; stop serve and move the old one aside first",
			dir, ents[0].Name(), len(ents)-1)
	}
	return nil
}

// copyFile copies src into a new file dst (mode 0600) and syncs it.
func copyFile(dst, src string, bar io.Writer) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := Copy(out, in, fi.Size(), bar, "restore"); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Copy copies src to dst, drawing a progress bar with an ETA towards total
// bytes (0: unknown) on bar when it is a terminal.
func Copy(dst io.Writer, src io.Reader, total int64, bar io.Writer, label string) (int64, error) {
	b := progress.New(bar, label, "bytes", total)
	n, err := io.Copy(dst, io.TeeReader(src, addWriter{b}))
	b.Done()
	return n, err
}

type addWriter struct{ b *progress.Bar }

func (w addWriter) Write(p []byte) (int, error) { w.b.Add(int64(len(p))); return len(p), nil }
