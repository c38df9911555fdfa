package app

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/store"
)

// OfflineStatus describes the files of a takedown that no serve runs: the
// store and what the spool holds (events that the next serve stores
// first).
func OfflineStatus(ctx context.Context, cfg config.Config, st *store.Store) (api.Status, error) {
	s := api.Status{Time: time.Now().UTC(), Sensor: cfg.Sensor, Databases: []api.DatabaseStatus{}, Today: []api.UniqueToday{}}
	s.Spool = api.SpoolStatus{Dir: cfg.Pipeline.SpoolDir, MaxBytes: int64(cfg.Pipeline.SpoolMaxMB) << 20}
	s.Spool.Bytes, s.Spool.Segments = dirFiles(cfg.Pipeline.SpoolDir, ".seg")
	var err error
	s.Store, err = storeStatus(ctx, cfg, st)
	return s, err
}

func storeStatus(ctx context.Context, cfg config.Config, st *store.Store) (api.StoreStatus, error) {
	ss := api.StoreStatus{Path: cfg.Store.Path}
	if fi, err := os.Stat(cfg.Store.Path); err == nil {
		ss.Bytes = fi.Size()
	}
	if wal, err := os.Stat(cfg.Store.Path + ".wal"); err == nil {
		ss.Bytes += wal.Size()
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		return ss, err
	}
	ss.Events, ss.Oldest, ss.Newest = stats.Events, stats.Oldest, stats.Newest
	return ss, nil
}

// dirFiles sums the sizes of the files in dir whose names end in suffix.
func dirFiles(dir, suffix string) (bytes int64, n int) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), suffix) {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			bytes += fi.Size()
			n++
		}
		return nil
	})
	return bytes, n
}
