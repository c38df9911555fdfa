package servedsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/takedown-project/takedown/internal/servedset"
)

// DiskFile is the name of the file, in a follower's Dir, that keeps the
// last served set in the full form of servedset.
const DiskFile = "served.tdsf"

// LoadDisk puts the served set kept in dir (by a follower, before it
// stopped) into set, and returns its serial: a sensor that restarts
// answers from it at once, whether NATS is up or not. No file is no error
// (serial 0, set untouched); a damaged file is an error naming it, and
// leaves set untouched.
func LoadDisk(dir string, set *servedset.Set) (serial uint32, err error) {
	path := filepath.Join(dir, DiskFile)
	snap, err := servedset.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("servedsync: the served set kept in %s cannot be read (remove it to start empty): %w", path, err)
	}
	set.Replace(snap)
	return snap.Serial(), nil
}

// persistLoop writes the set to disk PersistDelay after a change (the
// changes meanwhile in the same write), and once more when ctx ends.
func (f *Follower) persistLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			f.writeDisk()
			return
		case <-f.persist:
			t := time.NewTimer(f.cfg.PersistDelay)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			f.writeDisk()
		}
	}
}

// writeDisk writes the current set to Dir unless it is there already.
func (f *Follower) writeDisk() {
	snap := f.cfg.Set.Load()
	if f.cfg.Dir == "" || snap == f.written || snap.Serial() == 0 {
		return
	}
	if err := servedset.WriteFile(filepath.Join(f.cfg.Dir, DiskFile), snap); err != nil {
		f.fail("persist", err)
		return
	}
	f.written = snap
}

// writeFile writes data to path atomically: a temporary file in the same
// directory, synced, renamed over path, the directory synced.
func writeFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
