package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/config"
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
