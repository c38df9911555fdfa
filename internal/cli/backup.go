package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/backup"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dbfile"
)

// backupCommands are `backup` and `restore`.
func (e *env) backupCommands() []*cobra.Command {
	return []*cobra.Command{e.backupCommand(), e.restoreCommand()}
}

// backupResult is what backup and restore print with --json.
type backupResult struct {
	File      string        `json:"file"`
	Bytes     int64         `json:"bytes"`
	SHA256    string        `json:"sha256,omitempty"`
	Via       string        `json:"via,omitempty"` // server or file
	Counts    backup.Counts `json:"counts"`
	AuditHead string        `json:"audit_head,omitempty"`
	Database  string        `json:"database,omitempty"`
}

func (e *env) backupCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write a consistent copy of the database file, while serve runs or not",
		Long: `Write a consistent copy of the database file — registry, audit log, users,
subscribers, the evidence log, and the events when store.engine is duckdb — to
FILE, a new DuckDB file that takedown opens as it opens its own.

When a server answers (--mode auto, the default), the server takes the copy
inside one DuckDB transaction while it goes on writing, and sends it through
its API (GET /v1/backup); the copy needs as much free space beside the
database file as its data, for the time of the transfer. Otherwise the
database file is opened and copied here. Either way the rows of every table
are counted in the copy's own transaction and checked in FILE, and printed.

Not in FILE: the evidence log's signing key (evidence.key), the API token,
the listeners' CA and the spool, in the data directory; keep evidence.key and
evidence.pub with the backups. With store.engine clickhouse the events are in
ClickHouse: back its tables up with ClickHouse's tools.

Shows progress with an ETA on a terminal.`,
		Example: `  takedown backup --out /srv/backup/takedown-$(date +%F).duckdb
  takedown backup --out takedown.duckdb --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usage(errors.New("--out FILE is required"))
			}
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("--out %s: the file exists; backup writes a new file", out)
			}
			cfg, err := e.config()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			res := backupResult{File: out}
			done := false
			if e.mode != "local" {
				_, err := e.remote(ctx, cfg)
				switch {
				case err == nil:
					res.Via = "server"
					if err := e.backupRemote(ctx, cfg, out, &res); err != nil {
						return err
					}
					done = true
				case e.mode == "remote" || !errors.Is(err, api.ErrUnreachable):
					return err
				}
			}
			if !done {
				res.Via = "file"
				if err := backupLocal(ctx, cfg, out, &res); err != nil {
					return err
				}
			}
			if fi, err := os.Stat(out); err == nil {
				res.Bytes = fi.Size()
			}
			if e.jsonOut {
				return writeJSON(e.stdout, res)
			}
			via := "through the running server"
			if res.Via == "file" {
				via = "from " + cfg.Store.Path
			}
			fmt.Fprintf(e.stdout, "backup written to %s (%s bytes), %s\n", out, thousands(res.Bytes), via)
			return printCounts(e, res.Counts)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the backup file to write (must not exist)")
	e.jsonFlag(cmd)
	return cmd
}

// backupLocal copies the database file opened here.
func backupLocal(ctx context.Context, cfg config.Config, out string, res *backupResult) error {
	if _, err := os.Stat(cfg.Store.Path); err != nil {
		return fmt.Errorf("no database file to back up: %w", err)
	}
	db, err := dbfile.Open(ctx, cfg.Store.Path)
	if err != nil {
		return err
	}
	defer db.Close()
	res.Counts, err = backup.Snapshot(ctx, db, out, nil) // nobody else writes: the file is ours
	return err
}

// backupRemote fetches the server's snapshot into out, checking its
// SHA-256 and its rows against what the server counted.
func (e *env) backupRemote(ctx context.Context, cfg config.Config, out string, res *backupResult) (err error) {
	tok, err := app.ReadToken(cfg.API.TokenFile)
	if err != nil {
		return err
	}
	base := cfg.API.Listen
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("backup through %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg struct{ Error string }
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(body, &msg) != nil || msg.Error == "" {
			msg.Error = strings.TrimSpace(string(body))
		}
		return fmt.Errorf("backup through %s: %s: %s", base, resp.Status, msg.Error)
	}
	var want backup.Counts
	if err := json.Unmarshal([]byte(resp.Header.Get(app.BackupCountsHeader)), &want); err != nil {
		return fmt.Errorf("backup through %s: header %s: %w", base, app.BackupCountsHeader, err)
	}
	part := out + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(part)
		}
	}()
	h := sha256.New()
	_, err = backup.Copy(io.MultiWriter(f, h), resp.Body, resp.ContentLength, e.stderr, "backup")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("receiving the backup: %w", err)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if w := resp.Header.Get(app.BackupSHA256Header); w != res.SHA256 {
		return fmt.Errorf("backup through %s: received file has SHA-256 %s, the server sent %s", base, res.SHA256, w)
	}
	got, err := backup.Check(ctx, part)
	if err != nil {
		return err
	}
	if !got.Equal(want) {
		return fmt.Errorf("backup through %s: the received file's rows differ from the server's count: %s", base, want.Diff(got))
	}
	res.Counts = got
	return os.Rename(part, out)
}

func (e *env) restoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Bring a backup back into an empty data directory",
		Long: `Bring the backup FILE (made by takedown backup) back as the database file of
the data directory (data_dir of the config, or --data-dir), which must be
empty or not exist: restore never overwrites. FILE is checked first (a
takedown DuckDB file), copied, opened as serve opens it (an older schema is
migrated), its audit log's hash chain verified and the rows of every table
compared with FILE's; only then does the copy take the database file's name.

Copy evidence.key and evidence.pub back into the data directory too (they are
not in the backup), then start serve. Shows progress with an ETA on a
terminal.`,
		Example: `  takedown --data-dir /var/lib/takedown restore /srv/backup/takedown-2026-12-01.duckdb`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.config()
			if err != nil {
				return err
			}
			counts, head, err := backup.Restore(cmd.Context(), args[0], cfg.DataDir, cfg.Store.Path, e.stderr)
			if err != nil {
				return err
			}
			res := backupResult{File: args[0], Counts: counts, Database: cfg.Store.Path, AuditHead: head.String()}
			if fi, err := os.Stat(cfg.Store.Path); err == nil {
				res.Bytes = fi.Size()
			}
			if e.jsonOut {
				return writeJSON(e.stdout, res)
			}
			fmt.Fprintf(e.stdout, "restored %s into %s\naudit log verified: %s entries, head %s\n", args[0], cfg.Store.Path, thousands(head.Seq), head)
			return printCounts(e, counts)
		},
	}
	e.jsonFlag(cmd)
	return cmd
}

// printCounts prints the rows of every table.
func printCounts(e *env, c backup.Counts) error {
	t := newTable(e.stdout, "TABLE", "ROWS")
	for _, n := range c.Tables() {
		t.row(n, thousands(c[n]))
	}
	return t.flush()
}
