package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/backup"
)

// Backup response headers: the rows of every table counted in the
// snapshot's transaction (JSON), and the SHA-256 of the body, so that the
// client checks both the transfer and the file it received.
const (
	BackupCountsHeader = "X-Takedown-Backup-Counts"
	BackupSHA256Header = "X-Takedown-Backup-Sha256"
)

// backupHandler answers GET /v1/backup (bearer token) with a consistent
// copy of the database file, taken in one transaction while serve goes on
// writing (package backup). The copy is written to a temporary file in the
// database's directory first (it needs as much free space as the file's
// data), then streamed and removed, whether the transfer ends or not. The
// copies of backups that a killed serve left behind are removed when the
// handler is made, at serve's start.
func backupHandler(l *Local, dbPath, token string, log *slog.Logger) http.HandlerFunc {
	removed, err := backup.RemoveStale(filepath.Dir(dbPath))
	if len(removed) > 0 {
		log.Warn("removed the copies of backups that did not end", "files", removed)
	}
	if err != nil {
		log.Error("unfinished backups", "err", err)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, `{"error":"missing or wrong bearer token","kind":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		fail := func(err error) {
			log.Error("backup failed", "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error(), "kind": "internal"})
		}
		f, err := os.CreateTemp(filepath.Dir(dbPath), backup.TempPattern)
		if err != nil {
			fail(fmt.Errorf("backup: temporary file: %w", err))
			return
		}
		tmp := f.Name()
		f.Close()
		os.Remove(tmp)
		defer func() {
			os.Remove(tmp)
			os.Remove(tmp + ".wal")
		}()
		t0 := time.Now()
		// With the DuckDB engine, the snapshot begins between two batches.
		var between func(func() error) error
		if h, ok := l.Store.(interface{ Hold(func() error) error }); ok {
			between = h.Hold
		}
		counts, err := backup.Snapshot(r.Context(), l.DB, tmp, between)
		if err != nil {
			fail(err)
			return
		}
		in, err := os.Open(tmp)
		if err != nil {
			fail(err)
			return
		}
		defer in.Close()
		h := sha256.New()
		size, err := io.Copy(h, in)
		if err == nil {
			_, err = in.Seek(0, io.SeekStart)
		}
		if err != nil {
			fail(err)
			return
		}
		cj, _ := json.Marshal(counts)
		w.Header().Set("Content-Type", "application/vnd.duckdb")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set(BackupCountsHeader, string(cj))
		w.Header().Set(BackupSHA256Header, hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="takedown-%s.duckdb"`, time.Now().UTC().Format("20060102T150405Z")))
		n, err := io.Copy(w, in)
		log.Info("backup sent", "bytes", n, "took", time.Since(t0).Round(time.Millisecond), "err", err)
	}
}
