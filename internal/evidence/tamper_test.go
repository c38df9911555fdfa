package evidence_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/evidence"
)

// tamperLog returns a log of 8 leaves with checkpoints at sizes 2, 5 and
// 8, which verifies.
func tamperLog(t *testing.T) (*sql.DB, *evidence.Log) {
	t.Helper()
	db, _ := openDB(t)
	l := openLog(t, db)
	for _, n := range []int{2, 3, 3} {
		appendBatches(t, l, n)
		if _, err := l.Checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Verify(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db, l
}

// rehash recomputes the stored hashes from the leaves' hash column, as one
// would who rewrites leaves and wants the tree to agree.
func rehash(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT hash FROM evidence_leaves ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	var stored []tlog.Hash
	for n := int64(0); rows.Next(); n++ {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.Hash(h), tlog.HashReaderFunc(func(x []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(x))
			for i, j := range x {
				out[i] = stored[j]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	rows.Close()
	exec(t, db, `DELETE FROM evidence_hashes`)
	for i, h := range stored {
		exec(t, db, `INSERT INTO evidence_hashes VALUES (?, ?)`, i, h[:])
	}
}

// wantTamper checks that err is a *TamperError naming leaf and checkpoint
// (-1: none) with a reason that holds want.
func wantTamper(t *testing.T, err error, leaf, checkpoint int64, want string) {
	t.Helper()
	var te *evidence.TamperError
	if !errors.As(err, &te) || !errors.Is(err, evidence.ErrTampered) {
		t.Fatalf("got %v, want a *TamperError", err)
	}
	if te.Leaf != leaf || te.Checkpoint != checkpoint || !strings.Contains(te.Reason, want) {
		t.Fatalf("got leaf %d, checkpoint %d, %q; want leaf %d, checkpoint %d and %q", te.Leaf, te.Checkpoint, te.Reason, leaf, checkpoint, want)
	}
	t.Logf("detected: %v", err)
}

func TestTamperLeafData(t *testing.T) {
	db, l := tamperLog(t)
	other := evidence.BatchLeaf(nil)
	exec(t, db, `UPDATE evidence_leaves SET data = ? WHERE idx = 3`, other)
	wantTamper(t, l.Verify(t.Context()), 3, -1, "data does not match its hash")

	// The hash column too: the stored hash of leaf 3 no longer matches.
	rh := tlog.RecordHash(other)
	exec(t, db, `UPDATE evidence_leaves SET hash = ? WHERE idx = 3`, rh[:])
	wantTamper(t, l.Verify(t.Context()), 3, -1, "stored hash")

	// And every stored hash: only the checkpoints tell, the first one
	// over leaf 3 (size 5), after the last good one (size 2).
	rehash(t, db)
	wantTamper(t, l.Verify(t.Context()), 2, 5, "leaves 2 to 4")
	_, err := evidence.Open(t.Context(), evidence.Config{DB: db, Origin: "takedown/test"})
	wantTamper(t, errors.Unwrap(err), -1, 8, "rewritten")
}

func TestTamperDeleteLeaf(t *testing.T) {
	db, l := tamperLog(t)
	exec(t, db, `DELETE FROM evidence_leaves WHERE idx = 4`)
	wantTamper(t, l.Verify(t.Context()), 4, -1, "missing")
	_, err := evidence.Open(t.Context(), evidence.Config{DB: db, Origin: "takedown/test"})
	if err == nil || !strings.Contains(err.Error(), "leaves were deleted") {
		t.Fatalf("Open over a deleted leaf: %v", err)
	}
}

func TestTamperSwapLeaves(t *testing.T) {
	db, l := tamperLog(t)
	exec(t, db, `UPDATE evidence_leaves SET idx = -1 WHERE idx = 1`)
	exec(t, db, `UPDATE evidence_leaves SET idx = 1 WHERE idx = 6`)
	exec(t, db, `UPDATE evidence_leaves SET idx = 6 WHERE idx = -1`)
	wantTamper(t, l.Verify(t.Context()), 1, -1, "stored hash 1 does not match")
	rehash(t, db)
	wantTamper(t, l.Verify(t.Context()), 0, 2, "leaves 0 to 1")
}

func TestTamperTruncate(t *testing.T) {
	db, l := tamperLog(t)
	truncate(t, db, 6)
	wantTamper(t, l.Verify(t.Context()), 6, 8, "leaves 6 to 7 were removed")
	_, err := evidence.Open(t.Context(), evidence.Config{DB: db, Origin: "takedown/test"})
	if err == nil || !strings.Contains(err.Error(), "refusing to go on") {
		t.Fatalf("Open over a truncated log: %v", err)
	}
	wantTamper(t, errors.Unwrap(err), 6, 8, "truncated")
}

// TestTamperForkedCheckpoint replaces the checkpoint of size 5 by one of
// a forked tree: the same log key and size, another root.
func TestTamperForkedCheckpoint(t *testing.T) {
	db, l := tamperLog(t)
	fdb, _ := openDB(t)
	fork := openLog(t, fdb)
	appendBatches(t, fork, 4)
	if _, err := fork.AppendBatch(t.Context(), batch(1000, 1)); err != nil {
		t.Fatal(err)
	}
	fc, err := fork.Checkpoint(t.Context())
	if err != nil || fc.Size != 5 {
		t.Fatal(fc.Size, err)
	}
	exec(t, db, `UPDATE evidence_checkpoints SET note = ? WHERE size = 5`, fc.Note)
	wantTamper(t, l.Verify(t.Context()), 2, 5, "not the checkpoint's")

	// A checkpoint not signed by the log's key is named too.
	s, _ := keys(t, "mallory.example", 9)
	msg, err := note.Sign(&note.Note{Text: "takedown/test\n8\n" + strings.Repeat("A", 43) + "=\ntime 2010-02-22T12:00:00Z\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, db, `UPDATE evidence_checkpoints SET note = ? WHERE size = 8`, msg)
	err = l.Verify(t.Context())
	if err == nil || !strings.Contains(err.Error(), "mallory.example") {
		t.Fatalf("Verify with a checkpoint signed by another key: %v", err)
	}
}

// TestCheckpointRefusesRewrittenLog: a running log whose tables were
// rewritten under it does not sign the new tree.
func TestCheckpointRefusesRewrittenLog(t *testing.T) {
	db, l := tamperLog(t)
	other := evidence.BatchLeaf(nil)
	rh := tlog.RecordHash(other)
	exec(t, db, `UPDATE evidence_leaves SET data = ?, hash = ? WHERE idx = 0`, other, rh[:])
	rehash(t, db)
	appendBatches(t, l, 1)
	_, err := l.Checkpoint(t.Context())
	wantTamper(t, err, -1, 8, "rewritten")
	if cps, _ := l.Checkpoints(context.Background()); len(cps) != 3 {
		t.Errorf("%d checkpoints after a refused one", len(cps))
	}
}
