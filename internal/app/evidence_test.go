package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/testnet"
)

// evidenceConfig is a serve on loopback with the evidence log signing
// every second, the sinks off: events arrive through /v1/ingest.
func evidenceConfig(t *testing.T, dir string) (config.Config, string) {
	t.Helper()
	path := filepath.Join(dir, "takedown.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: [], https: [], smtp: [], tcp: [], udp: []}
pipeline: {flush_ms: 20, batch_size: 50}
evidence: {interval: 1s}
`, filepath.Join(dir, "data"), testnet.FreePort(t))
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

// ingestEvents sends n events of a seized zone through /v1/ingest, their
// times spread over the last minutes, their addresses from base on.
func ingestEvents(t *testing.T, cfg config.Config, base, n int) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	evs := make([]event.Event, n)
	for i := range evs {
		e := dnsEvent(base + i)
		e.Time = now.Add(-time.Duration(n-i) * time.Second)
		e.DNSQType, e.DNSRcode = "A", "NOERROR"
		evs[i] = *e
	}
	res, err := client(t, cfg, cfg.API.Listen).Ingest(context.Background(), "simulated", evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != n {
		t.Fatalf("ingest accepted %d of %d: %+v", res.Accepted, n, res)
	}
}

// get fetches url without a token and returns the status and body.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestEvidenceServe: serve makes the key at its first start, logs every
// stored batch and every audit entry, signs checkpoints every interval and
// at shutdown, publishes them, and serves them and the key without a
// token; status and readyz show the log.
func TestEvidenceServe(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := evidenceConfig(t, dir)
	seize(t, cfg, "wal", "waledac", seizedZone)
	stop := serveInProcess(t, cfg)
	ingestEvents(t, cfg, 0, 120)

	base := "http://" + cfg.API.Listen + "/api/v1/evidence/"
	code, vkey := get(t, base+"key")
	if code != http.StatusOK {
		t.Fatalf("key: %d %s", code, vkey)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatalf("key %q: %v", vkey, err)
	}
	if pub, err := os.ReadFile(filepath.Join(cfg.DataDir, "evidence.pub")); err != nil || !bytes.Equal(pub, vkey) {
		t.Errorf("evidence.pub %q (%v), the API's key %q", pub, err, vkey)
	}
	if fi, err := os.Stat(cfg.Evidence.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi.Mode(), err)
	}
	// The seizure's audit entries (3: case, import, state) and the
	// ingested events' batches.
	var c evidence.Checkpoint
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, b := get(t, base+"checkpoint")
		if code == http.StatusOK {
			if c, err = evidence.ParseCheckpoint(b, note.VerifierList(v)); err != nil {
				t.Fatal(err)
			}
			if c.Size >= 3+3 {
				break
			}
		}
		if time.Now().After(deadline) {
			st, _ := client(t, cfg, cfg.API.Listen).Status(context.Background())
			t.Fatalf("no checkpoint of the events: %d %s; status %+v", code, b, st.Evidence)
		}
	}
	if c.Origin != cfg.Evidence.Origin {
		t.Errorf("origin %q, want %q", c.Origin, cfg.Evidence.Origin)
	}
	code, b := get(t, fmt.Sprintf("%scheckpoints/%d", base, c.Size))
	if code != http.StatusOK {
		t.Fatalf("checkpoints/%d: %d %s", c.Size, code, b)
	}
	if _, err := evidence.ParseCheckpoint(b, note.VerifierList(v)); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"checkpoints/999999": 404, "checkpoints/x1": 400, "checkpoints/-1": 400, "nothing": 404} {
		if code, b := get(t, base+path); code != want {
			t.Errorf("%s: %d %s, want %d", path, code, b, want)
		}
	}
	_, rb := readyz(t, cfg.API.Listen)
	if rb.Checks["evidence"] != "ok" {
		t.Errorf("readyz: %+v", rb)
	}
	st, err := client(t, cfg, cfg.API.Listen).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if e := st.Evidence; e == nil || e.Size < c.Size || e.CheckpointSize < c.Size || e.Key != strings.TrimSpace(string(vkey)) || e.Error != "" {
		t.Errorf("status: %+v", st.Evidence)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// At shutdown: a checkpoint of the whole log, published.
	local, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	lg, err := evidence.Open(context.Background(), evidence.Config{DB: local.DB, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	size, _ := lg.Size(context.Background())
	latest, err := os.ReadFile(filepath.Join(cfg.Evidence.PublishDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	last, err := evidence.ParseCheckpoint(latest, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if last.Size != size {
		t.Errorf("published checkpoint of size %d, the log has %d leaves", last.Size, size)
	}
	cps, err := lg.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		b, err := os.ReadFile(filepath.Join(cfg.Evidence.PublishDir, "checkpoints", fmt.Sprintf("%d.note", c.Size)))
		if err != nil || !bytes.Equal(b, c.Note) {
			t.Errorf("checkpoint %d not published as stored: %v", c.Size, err)
		}
	}
}

// TestEvidenceOverdue: readyz fails, naming the log, once the last
// checkpoint is more than three intervals old.
func TestEvidenceOverdue(t *testing.T) {
	now := time.Now()
	ev := &evidenceLog{cfg: config.Evidence{Interval: time.Minute}, started: now.Add(-time.Hour)}
	if p := ev.overdue(now); !strings.Contains(p, "no checkpoint signed since the start") {
		t.Errorf("no checkpoint: %q", p)
	}
	ev.last.Store(&evidence.Checkpoint{Size: 42, Time: now.Add(-2 * time.Minute)})
	if p := ev.overdue(now); p != "" {
		t.Errorf("2 minutes old: %q", p)
	}
	ev.last.Store(&evidence.Checkpoint{Size: 42, Time: now.Add(-4 * time.Minute)})
	msg := "the signer is away"
	ev.lastErr.Store(&msg)
	if p := ev.overdue(now); !strings.Contains(p, "size 42") || !strings.Contains(p, "4m0s ago") || !strings.Contains(p, msg) {
		t.Errorf("4 minutes old: %q", p)
	}
}

// copyDir copies the files under src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		return os.WriteFile(to, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// forkedCheckpoint is a checkpoint of the log's origin and size with
// another root, signed with the log's key: what a forked log would show.
func forkedCheckpoint(t *testing.T, cfg config.Config, size int64, at time.Time) []byte {
	t.Helper()
	s, _, err := evidence.LoadSigner(evidence.SignerConfig{KeyFile: cfg.Evidence.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	root := tlog.RecordHash([]byte("another tree"))
	body := fmt.Sprintf("%s\n%d\n%s\ntime %s\n", cfg.Evidence.Origin, size, base64.StdEncoding.EncodeToString(root[:]), at.UTC().Format(time.RFC3339))
	msg, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestEvidenceRefusesTamperedLog: serve refuses to start on a log whose
// end was cut off (with or without its checkpoints), or one of whose
// checkpoints, stored or published, was swapped for one of a forked tree,
// and its error names the checkpoint or the file.
func TestEvidenceRefusesTamperedLog(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := evidenceConfig(t, dir)
	seize(t, cfg, "wal", "waledac", seizedZone)
	stop := serveInProcess(t, cfg)
	ingestEvents(t, cfg, 0, 60)
	storedAfterStop(t, cfg, 60, stop)
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lg, _, err := OpenEvidence(ctx, cfg, local)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := lg.Checkpoints(ctx)
	local.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) < 2 {
		t.Fatalf("%d checkpoints, want at least 2 (at start and at shutdown)", len(cps))
	}
	first, last := cps[0], cps[len(cps)-1]
	cut := last.Size - 1
	published := filepath.Join("evidence", "published", "checkpoint")

	for _, c := range []struct {
		name   string
		tamper func(db *sql.DB, cfg config.Config)
		want   []string
	}{
		{"truncated", func(db *sql.DB, cfg config.Config) {
			mustExec(t, db, `DELETE FROM evidence_leaves WHERE idx >= ?`, cut)
			mustExec(t, db, `DELETE FROM evidence_hashes WHERE idx >= ?`, tlog.StoredHashCount(cut))
		}, []string{fmt.Sprintf("checkpoint of size %d", last.Size), "truncated"}},
		{"truncated with its checkpoints", func(db *sql.DB, cfg config.Config) {
			mustExec(t, db, `DELETE FROM evidence_leaves WHERE idx >= ?`, cut)
			mustExec(t, db, `DELETE FROM evidence_hashes WHERE idx >= ?`, tlog.StoredHashCount(cut))
			mustExec(t, db, `DELETE FROM evidence_checkpoints WHERE size > ?`, cut)
		}, []string{"file {published}", "truncated"}},
		{"stored checkpoint forked", func(db *sql.DB, cfg config.Config) {
			mustExec(t, db, `UPDATE evidence_checkpoints SET note = ? WHERE size = ?`, forkedCheckpoint(t, cfg, first.Size, first.Time), first.Size)
		}, []string{fmt.Sprintf("checkpoint of size %d", first.Size), "another tree"}},
		{"published checkpoint forked", func(db *sql.DB, cfg config.Config) {
			if err := os.WriteFile(filepath.Join(cfg.DataDir, published), forkedCheckpoint(t, cfg, last.Size, last.Time), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"file {published}", fmt.Sprintf("checkpoint of size %d", last.Size), "forked"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cdir := t.TempDir()
			copyDir(t, cfg.DataDir, cdir)
			ccfg, err := config.WithDataDir(cfg, cdir)
			if err != nil {
				t.Fatal(err)
			}
			db, err := dbfile.Open(ctx, ccfg.Store.Path)
			if err != nil {
				t.Fatal(err)
			}
			c.tamper(db, ccfg)
			db.Close()
			err = Serve(ctx, ccfg, slog.New(slog.DiscardHandler), func(string) { t.Error("serve started") })
			if err == nil {
				t.Fatal("serve started on a tampered log")
			}
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "{published}", filepath.Join(ccfg.DataDir, published))
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q: %v", w, err)
				}
			}
		})
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseTreeSize: a size of the API's path parses back to the text it
// came from, or is refused with an error that quotes it.
func FuzzParseTreeSize(f *testing.F) {
	for _, s := range []string{"0", "42", "42.note", "-1", "007", "+3", "9223372036854775808", "", ".note", "1e3", "12 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseTreeSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Errorf("error %q does not quote %q", err, s)
			}
			return
		}
		if n < 0 || strings.TrimSuffix(s, ".note") != fmt.Sprint(n) {
			t.Errorf("%q parsed as %d", s, n)
		}
	})
}

// fakeRetention counts DeleteBefore's calls.
type fakeRetention struct{ cutoff time.Time }

func (f *fakeRetention) DeleteBefore(_ context.Context, cutoff time.Time) (int64, error) {
	f.cutoff = cutoff
	return 5, nil
}

// TestRetentionPrunesTheLog: retention prunes the evidence log's batches
// with the same cutoff as the events it deletes.
func TestRetentionPrunesTheLog(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := &fakeRetention{}
	var pruned time.Time
	prune := func(_ context.Context, cutoff time.Time) (int64, error) {
		pruned = cutoff
		cancel() // one round
		return 1, nil
	}
	runRetention(ctx, st, prune, 30, slog.New(slog.DiscardHandler))
	if pruned.IsZero() || !pruned.Equal(st.cutoff) {
		t.Errorf("pruned before %v, deleted before %v", pruned, st.cutoff)
	}
}

// TestEvidenceSignerCommand: serve signs its checkpoints through an
// external signer, a shell script that signs with openssl (the key stays
// in a file only the script reads), at start, every interval and at
// shutdown; the checkpoints verify with the configured public key, and
// serve makes no key of its own.
func TestEvidenceSignerCommand(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (Debian package openssl): ", err)
	}
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := filepath.Join(dir, "hsm.pem")
	if err := os.WriteFile(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey("hsm.test", pub)
	if err != nil {
		t.Fatal(err)
	}
	// openssl signs Ed25519 in one shot from a file, not a pipe.
	calls := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "sign.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
set -e
msg=$(mktemp)
trap 'rm -f "$msg"' EXIT
cat > "$msg"
echo signed >> %q
exec openssl pkeyutl -sign -inkey %q -rawin -in "$msg"
`, calls, keyPEM)), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, path := evidenceConfig(t, dir)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "evidence: {interval: 1s, signer_command: [%q], public_key: %q}\n", script, vkey)
	f.Close()
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(b, []byte("evidence: {interval: 1s}\n"), nil, 1), 0o644)
	if cfg, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}

	seize(t, cfg, "wal", "waledac", seizedZone)
	stop := serveInProcess(t, cfg)
	ingestEvents(t, cfg, 0, 40)
	var c evidence.Checkpoint
	for deadline := time.Now().Add(20 * time.Second); c.Size < 3+1; time.Sleep(50 * time.Millisecond) {
		if code, b := get(t, "http://"+cfg.API.Listen+"/api/v1/evidence/checkpoint"); code == http.StatusOK {
			if c, err = evidence.ParseCheckpoint(b, note.VerifierList(v)); err != nil {
				t.Fatalf("a checkpoint of serve does not verify with the signer's key: %v\n%s", err, b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the events signed by the script; last of size %d", c.Size)
		}
	}
	if code, b := get(t, "http://"+cfg.API.Listen+"/api/v1/evidence/key"); code != http.StatusOK || strings.TrimSpace(string(b)) != vkey {
		t.Errorf("the API's key: %d %q, want %q", code, b, vkey)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// At shutdown, the whole log is signed (by the script) and published.
	if b, _ := os.ReadFile(calls); bytes.Count(b, []byte("\n")) < 2 {
		t.Errorf("the script signed %d times, want at least 2 (at start and after the events)", bytes.Count(b, []byte("\n")))
	}
	local, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	size := int64(-1)
	if sum, err := evidence.Peek(context.Background(), local.DB); err == nil && sum != nil {
		size = sum.Size
	}
	latest, err := os.ReadFile(filepath.Join(cfg.Evidence.PublishDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	last, err := evidence.ParseCheckpoint(latest, note.VerifierList(v))
	if err != nil || last.Size != size {
		t.Errorf("the published checkpoint after shutdown: size %d (%v), the log has %d leaves", last.Size, err, size)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "evidence.key")); !os.IsNotExist(err) {
		t.Errorf("serve made a key file beside the signer command: %v", err)
	}
}
