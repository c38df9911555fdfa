package app

import (
	"context"
	"encoding/base64"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/evidence"
)

// TestEvidenceKill9InCheckpoint kills serve with SIGKILL in the middle of a
// checkpoint (signed, not stored: holdInCheckpointEnv) while events keep
// arriving, and starts it again. The log goes on: no leaf index is skipped
// or repeated, every pair of checkpoints (stored and published) is
// consistent, the checkpoint signed before the kill is of the same tree,
// and every stored event is in a leaf.
func TestEvidenceKill9InCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg, cfgPath := evidenceConfig(t, dir)
	seize(t, cfg, "wal", "waledac", seizedZone)
	held := filepath.Join(dir, "held")
	srv := startServe(t, cfgPath, holdInCheckpointEnv+"="+held)
	waitAPI(t, srv, cfg.API.Listen)
	ingestEvents(t, cfg, 0, 100)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(held); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint held\n%s", srv.stderr())
		}
	}
	ingestEvents(t, cfg, 100, 100) // into the spool, while the log waits
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-srv.done

	srv = startServe(t, cfgPath)
	waitAPI(t, srv, cfg.API.Listen)
	ingestEvents(t, cfg, 200, 50)
	ctx := context.Background()
	cl := client(t, cfg, cfg.API.Listen)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := cl.Status(ctx)
		if err == nil && st.Store.Events >= 250 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not stored: %+v %v\n%s", st.Store, err, srv.stderr())
		}
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-srv.done; err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, srv.stderr())
	}

	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	lg, _, err := OpenEvidence(ctx, cfg, local)
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	size, _ := lg.Size(ctx)
	var leaves int64
	if err := local.DB.QueryRow(`SELECT count(*) FROM evidence_leaves`).Scan(&leaves); err != nil {
		t.Fatal(err)
	}
	if leaves != size {
		t.Fatalf("%d leaf rows for a log of %d", leaves, size)
	}
	inLeaves := map[[32]byte]bool{}
	for i := range size {
		data, err := lg.Leaf(ctx, i)
		if err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		lf, err := evidence.ParseLeaf(data)
		if err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		for _, h := range lf.Events {
			inLeaves[h] = true
		}
	}
	cps, err := lg.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) < 3 || cps[len(cps)-1].Size != size {
		t.Fatalf("%d checkpoints, the last of size %d; the log has %d leaves", len(cps), cps[len(cps)-1].Size, size)
	}
	consistent := func(what string, old evidence.Checkpoint) {
		t.Helper()
		last := cps[len(cps)-1]
		p, err := lg.ProveConsistency(ctx, old.Size, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, last.Size, last.Root, old.Size, old.Root); err != nil {
			t.Errorf("%s (size %d) is not consistent with the last checkpoint: %v", what, old.Size, err)
		}
	}
	for i := 1; i < len(cps); i++ {
		p, err := lg.ProveConsistency(ctx, cps[i-1].Size, cps[i].Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, cps[i].Size, cps[i].Root, cps[i-1].Size, cps[i-1].Root); err != nil {
			t.Errorf("checkpoints %d and %d are not consistent: %v", cps[i-1].Size, cps[i].Size, err)
		}
	}
	files, err := filepath.Glob(filepath.Join(cfg.Evidence.PublishDir, "checkpoints", "*.note"))
	if err != nil || len(files) != len(cps) {
		t.Errorf("%d published checkpoints, %d stored (%v)", len(files), len(cps), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := evidence.ParseCheckpoint(b, note.VerifierList(lg.Verifier()))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		consistent(f, c)
	}
	// The checkpoint that was signed when serve was killed: of the tree
	// the log went on with.
	body, err := os.ReadFile(held)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(body), "\n")
	hsize, _ := strconv.ParseInt(lines[1], 10, 64)
	root, _ := base64.StdEncoding.DecodeString(lines[2])
	if hsize < 1 || hsize > size {
		t.Fatalf("the held checkpoint has size %d, the log %d", hsize, size)
	}
	consistent("the checkpoint signed at the kill", evidence.Checkpoint{Size: hsize, Root: tlog.Hash(root)})

	local.Close()
	logMatchesStore(t, cfg, 250)
}

// logMatchesStore checks that the store holds n events and that the
// hashes of the stored events and those the log's batch leaves list are
// the same set.
func logMatchesStore(t *testing.T, cfg config.Config, n int) {
	t.Helper()
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	lg, _, err := OpenEvidence(ctx, cfg, local)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[[32]byte]int64{}
	err = lg.Leaves(ctx, math.MinInt64, math.MaxInt64, func(idx int64, data []byte) error {
		lf, err := evidence.ParseLeaf(data)
		for _, h := range lf.Events {
			listed[h] = idx
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[32]byte]bool{}
	err = local.Store.Scan(ctx, eventstore.ScanQuery{}, func(e *event.Event) error {
		h := evidence.EventHash(e)
		stored[h] = true
		if _, ok := listed[h]; !ok {
			t.Errorf("stored event of %s from %s (%x) is in no leaf", e.Time, e.SrcIP, h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != n {
		t.Errorf("%d events stored, want %d", len(stored), n)
	}
	for h, idx := range listed {
		if !stored[h] {
			t.Errorf("leaf %d lists %x, which is not stored", idx, h)
		}
	}
}
