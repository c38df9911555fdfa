package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/backup"
	"github.com/takedown-project/takedown/internal/testnet"
)

type backupJSON struct {
	File      string        `json:"file"`
	Bytes     int64         `json:"bytes"`
	Via       string        `json:"via"`
	Counts    backup.Counts `json:"counts"`
	AuditHead string        `json:"audit_head"`
}

// TestBackupUnderLoadAndRestore takes a backup through the running server
// while bots keep calling its HTTP listener, restores it into another data
// directory, and finds the audit log and the evidence log verifying and the
// rows of the moment of the backup.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	cfg, dataDir, addr := setup(t)
	httpAddr := freePort(t)
	// The sinkhole's HTTP listener on a known port, for the load.
	raw, _ := os.ReadFile(cfg)
	conf := strings.Replace(string(raw), `http: ["127.0.0.1:0"]`, fmt.Sprintf("http: [%q]", httpAddr), 1)
	conf += "pipeline: {flush_ms: 50}\nevidence: {interval: 1s}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, cfg, addr)
	scenario(t, cfg) // a case, an order, domains and their changes: the audit log

	// Bots: callbacks to the HTTP listener until the test says stop.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ctx.Err() == nil && i < 1_000_000; i++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://%s/gate.php?bot=%d-%d", httpAddr, w, i), strings.NewReader("id=1"))
				req.Host = "bad.example.com"
				if resp, err := cl.Do(req); err == nil {
					resp.Body.Close()
					mu.Lock()
					sent++
					mu.Unlock()
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	// Wait for events in the store, then back up while they keep coming.
	out := filepath.Join(t.TempDir(), "backup.duckdb")
	var first backupJSON
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe := filepath.Join(t.TempDir(), "probe.duckdb")
		if err := json.Unmarshal([]byte(mustRun(t, cfg, "backup", "--out", probe, "--json")), &first); err != nil {
			t.Fatal(err)
		}
		if first.Counts["events"] > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if first.Counts["events"] == 0 {
		t.Fatalf("no events stored within 30 s of load: %v", first.Counts)
	}
	var b backupJSON
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "backup", "--out", out, "--json")), &b); err != nil {
		t.Fatal(err)
	}
	if b.Via != "server" {
		t.Errorf("backup went via %q, want the running server", b.Via)
	}
	if b.Counts["registry_audit"] == 0 || b.Counts["evidence_leaves"] == 0 {
		t.Errorf("backup without audit entries or evidence leaves: %v", b.Counts)
	}
	// The load goes on after the backup: more events than it holds.
	deadline = time.Now().Add(30 * time.Second)
	var later backupJSON
	for {
		probe := filepath.Join(t.TempDir(), "later.duckdb")
		json.Unmarshal([]byte(mustRun(t, cfg, "backup", "--out", probe, "--json")), &later)
		if later.Counts["events"] > b.Counts["events"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if later.Counts["events"] <= b.Counts["events"] {
		t.Fatalf("events did not keep flowing: %d at the backup, %d after", b.Counts["events"], later.Counts["events"])
	}
	cancel()
	wg.Wait()
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	// Restore elsewhere: the counts of the moment of the backup.
	cfg2, dataDir2, _ := setup(t)
	var r backupJSON
	if err := json.Unmarshal([]byte(mustRun(t, cfg2, "restore", out, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Counts.Equal(b.Counts) {
		t.Errorf("restored rows differ from the backup's: %s", b.Counts.Diff(r.Counts))
	}
	got, err := backup.CountFile(context.Background(), filepath.Join(dataDir2, "takedown.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(b.Counts) {
		t.Errorf("restored database's rows differ from the backup's: %s", b.Counts.Diff(got))
	}
	if v := mustRun(t, cfg2, "--mode", "local", "audit", "verify"); !strings.Contains(v, "hash chain intact") {
		t.Errorf("audit verify on the restored copy: %s", v)
	}
	// The evidence log's key is kept beside the backups, not in them.
	for _, f := range []string{"evidence.key", "evidence.pub"} {
		data, err := os.ReadFile(filepath.Join(dataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDir2, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if v := mustRun(t, cfg2, "--mode", "local", "evidence", "check"); !strings.Contains(v, "evidence log verified") {
		t.Errorf("evidence check on the restored copy: %s", v)
	}

	// Without a server the backup copies the file itself: the same rows.
	var local backupJSON
	if err := json.Unmarshal([]byte(mustRun(t, cfg2, "backup", "--out", filepath.Join(t.TempDir(), "again.duckdb"), "--json")), &local); err != nil {
		t.Fatal(err)
	}
	if local.Via != "file" || !local.Counts.Equal(got) {
		t.Errorf("backup without a server: via %q, %s", local.Via, got.Diff(local.Counts))
	}

	// Restore never overwrites; a file that is not a backup is refused.
	if r := run(t, cfg2, "restore", out); r.code == 0 || !strings.Contains(r.stderr, "is not empty") {
		t.Errorf("restore into a non-empty directory: exit %d, %s", r.code, r.stderr)
	}
	cfg3, _, _ := setup(t)
	if r := run(t, cfg3, "restore", cfg); r.code == 0 || !strings.Contains(r.stderr, "not a DuckDB database") {
		t.Errorf("restore of a YAML file: exit %d, %s", r.code, r.stderr)
	}
	if r := run(t, cfg, "backup", "--out", out); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("backup over an existing file: exit %d, %s", r.code, r.stderr)
	}
}

// TestServerBackupLeavesNoCopy: serve removes at its start the copies that
// a serve killed during a backup left beside the database, and the copy of
// a backup whose client went away mid-transfer once the transfer ends.
func TestServerBackupLeavesNoCopy(t *testing.T) {
	cfg, dataDir, addr := setup(t)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	copies := func() []string {
		a, _ := filepath.Glob(filepath.Join(dataDir, backup.TempPattern))
		b, _ := filepath.Glob(filepath.Join(dataDir, backup.TempPattern+".wal"))
		return append(a, b...)
	}
	for _, n := range []string{".backup-4242.duckdb", ".backup-4242.duckdb.wal"} {
		if err := os.WriteFile(filepath.Join(dataDir, n), []byte("left by a killed serve"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startServer(t, cfg, addr)
	if left := copies(); len(left) != 0 {
		t.Errorf("after serve started: %v", left)
	}
	scenario(t, cfg)
	token, err := os.ReadFile(filepath.Join(dataDir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/backup: %s", resp.Status)
	}
	var one [1]byte
	resp.Body.Read(one[:])
	resp.Body.Close() // the client goes away after a byte
	testnet.WaitFor(t, "no copy of the interrupted backup", func() bool { return len(copies()) == 0 })
	out := filepath.Join(t.TempDir(), "b.duckdb")
	mustRun(t, cfg, "backup", "--out", out)
	if left := copies(); len(left) != 0 {
		t.Errorf("after a backup: %v", left)
	}
}
