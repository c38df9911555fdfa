package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/registry"
)

// TestTreeAndCheckpointByHand checks the tree and the checkpoint of a
// three-leaf log against hashes and a signature computed here with the
// standard library alone.
func TestTreeAndCheckpointByHand(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	var leaves [][]byte
	for i := range 3 {
		if _, err := l.AppendBatch(ctx, batch(10*i, 2+i)); err != nil {
			t.Fatal(err)
		}
		data, err := l.Leaf(ctx, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, data)
	}
	// The leaf of batch(0, 2) from its events' lines.
	evs := batch(0, 2)
	var hashes [][32]byte
	for i := range evs {
		hashes = append(hashes, sha256.Sum256(evidence.EventLine(nil, &evs[i])))
	}
	if !bytes.Equal(leaves[0], evidence.BatchLeaf(hashes)) {
		t.Fatalf("leaf 0 is not the batch leaf of its events")
	}
	rec := func(d []byte) []byte { s := sha256.Sum256(append([]byte{0}, d...)); return s[:] }
	node := func(a, b []byte) []byte {
		s := sha256.Sum256(append(append([]byte{1}, a...), b...))
		return s[:]
	}
	root := node(node(rec(leaves[0]), rec(leaves[1])), rec(leaves[2]))

	c, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The clock moved a second at each of the three appends.
	body := "takedown/test\n3\n" + base64.StdEncoding.EncodeToString(root) + "\ntime 2010-02-22T12:00:04Z\n"
	msg := string(c.Note)
	if !strings.HasPrefix(msg, body+"\n— log.example ") || !strings.HasSuffix(msg, "\n") || strings.Count(msg, "\n") != 6 {
		t.Fatalf("checkpoint\n%s\nwant the body\n%s\nthen a blank line and one signature line", msg, body)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(msg, body+"\n— log.example "), "\n"))
	if err != nil || len(sig) != 4+64 {
		t.Fatalf("signature line: %v, %d bytes", err, len(sig))
	}
	seed := bytes.Repeat([]byte{1}, 32)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	kh := sha256.Sum256(append([]byte("log.example\n\x01"), pub...))
	if !bytes.Equal(sig[:4], kh[:4]) {
		t.Errorf("key hash %x, want %x", sig[:4], kh[:4])
	}
	if !ed25519.Verify(pub, []byte(body), sig[4:]) {
		t.Error("the Ed25519 signature does not verify over the checkpoint body")
	}
	if c.Size != 3 || !bytes.Equal(c.Root[:], root) || !c.Time.Equal(time.Date(2010, 2, 22, 12, 0, 4, 0, time.UTC)) {
		t.Errorf("checkpoint %+v", c)
	}
	_, v := keys(t, "log.example", 1)
	parsed, err := evidence.ParseCheckpoint(c.Note, note.VerifierList(v))
	if err != nil || parsed.Size != 3 || parsed.Root != c.Root || parsed.Origin != "takedown/test" || !parsed.Time.Equal(c.Time) {
		t.Errorf("ParseCheckpoint: %+v, %v", parsed, err)
	}
}

func TestCheckpointOnlyWhenGrown(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	c0, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 6962: the empty tree's hash is SHA-256 of nothing.
	if c0.Size != 0 || c0.Root != tlog.Hash(sha256.Sum256(nil)) {
		t.Errorf("first checkpoint %+v", c0)
	}
	again, err := l.Checkpoint(ctx)
	if err != nil || !bytes.Equal(again.Note, c0.Note) {
		t.Errorf("a second checkpoint of the same tree was signed anew: %v", err)
	}
	appendBatches(t, l, 5)
	// The Signed hook sees the checkpoint before it is stored.
	var held []int64
	hooked, err := evidence.Open(ctx, evidence.Config{DB: db, Origin: "takedown/test", Signer: keysSigner(t), Logger: slog.New(slog.DiscardHandler),
		Signed: func(c evidence.Checkpoint) {
			held = append(held, c.Size)
			if cps, _ := l.Checkpoints(ctx); len(cps) != 1 {
				t.Errorf("%d checkpoints stored when the hook runs, want 1", len(cps))
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hooked.Checkpoint(ctx); err != nil || len(held) != 1 || held[0] != 5 {
		t.Fatalf("the Signed hook saw %v (%v), want the checkpoint of size 5", held, err)
	}
	if _, err := hooked.Checkpoint(ctx); err != nil || len(held) != 1 {
		t.Errorf("the Signed hook ran %v for a tree that did not grow (%v)", held, err)
	}
	c1, err := l.Checkpoint(ctx)
	if err != nil || c1.Size != 5 {
		t.Fatalf("checkpoint after 5 leaves: %+v %v", c1, err)
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	cps, err := l.Checkpoints(ctx)
	if err != nil || len(cps) != 2 || cps[0].Size != 0 || cps[1].Size != 5 || !bytes.Equal(cps[1].Note, c1.Note) {
		t.Fatalf("checkpoints %+v %v", cps, err)
	}
	// Without a signer the log is read-only.
	ro, err := evidence.Open(ctx, evidence.Config{DB: db, Origin: "takedown/test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Checkpoint(ctx); err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Errorf("checkpoint without a signer: %v", err)
	}
	if err := ro.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestProofs(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	const n = 13
	var roots []tlog.Hash
	var recs []tlog.Hash
	for i := range n {
		roots = append(roots, mustTreeHash(t, l, int64(i)))
		appendBatches(t, l, 1)
		d, err := l.Leaf(ctx, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, tlog.RecordHash(d))
	}
	roots = append(roots, mustTreeHash(t, l, n))
	for size := int64(1); size <= n; size++ {
		for idx := range size {
			p, err := l.ProveInclusion(ctx, idx, size)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := evidence.WriteInclusion(&buf, idx, size, p); err != nil {
				t.Fatal(err)
			}
			gi, gs, gp, err := evidence.ReadInclusion(&buf)
			if err != nil || gi != idx || gs != size {
				t.Fatalf("ReadInclusion: %d %d %v", gi, gs, err)
			}
			if err := tlog.CheckRecord(gp, size, roots[size], idx, recs[idx]); err != nil {
				t.Errorf("leaf %d in tree %d: %v", idx, size, err)
			}
		}
		for old := int64(0); old <= size; old++ {
			p, err := l.ProveConsistency(ctx, old, size)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := evidence.WriteConsistency(&buf, old, size, p); err != nil {
				t.Fatal(err)
			}
			go_, gs, gp, err := evidence.ReadConsistency(&buf)
			if err != nil || go_ != old || gs != size {
				t.Fatalf("ReadConsistency: %d %d %v", go_, gs, err)
			}
			if old == 0 {
				if len(gp) != 0 {
					t.Errorf("a proof from the empty tree has %d hashes", len(gp))
				}
				continue
			}
			if err := tlog.CheckTree(gp, size, roots[size], old, roots[old]); err != nil {
				t.Errorf("tree %d in tree %d: %v", old, size, err)
			}
		}
	}
	if _, err := l.ProveInclusion(ctx, 3, n+1); err == nil {
		t.Error("a proof in a tree larger than the log")
	}
	// The text format, byte for byte.
	p, _ := l.ProveInclusion(ctx, 2, 3)
	var buf bytes.Buffer
	evidence.WriteInclusion(&buf, 2, 3, p)
	want := "takedown-evidence/inclusion/v1\nindex 2\nsize 3\n" + base64.StdEncoding.EncodeToString(p[0][:]) + "\n"
	if len(p) != 1 || buf.String() != want {
		t.Errorf("inclusion proof\n%s\nwant\n%s", buf.String(), want)
	}
	cp, _ := l.ProveConsistency(ctx, 2, 3)
	buf.Reset()
	evidence.WriteConsistency(&buf, 2, 3, cp)
	want = "takedown-evidence/consistency/v1\nold 2\nnew 3\n"
	for _, h := range cp {
		want += base64.StdEncoding.EncodeToString(h[:]) + "\n"
	}
	if buf.String() != want {
		t.Errorf("consistency proof\n%s\nwant\n%s", buf.String(), want)
	}
}

func mustTreeHash(t *testing.T, l *evidence.Log, n int64) tlog.Hash {
	t.Helper()
	h, err := l.TreeHash(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReadProofErrors(t *testing.T) {
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct{ in, want string }{
		{"", "line 1"},
		{"takedown-evidence/consistency/v1\nindex 1\nsize 2\n", "line 1"},
		{"takedown-evidence/inclusion/v1\nindex x\nsize 2\n", "line 2"},
		{"takedown-evidence/inclusion/v1\nindex 1\nsize -2\n", "line 3"},
		{"takedown-evidence/inclusion/v1\nindex 2\nsize 2\n", "not below"},
		{"takedown-evidence/inclusion/v1\nindex 1\nsize 2\n" + h + "\nAAAA\n", "line 5"},
		{"takedown-evidence/inclusion/v1\nindex 1\nsize 2\n" + strings.Repeat(h+"\n", 129), "more than 128"},
	} {
		_, _, _, err := evidence.ReadInclusion(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadInclusion(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
	if _, _, _, err := evidence.ReadConsistency(strings.NewReader("takedown-evidence/consistency/v1\nold 3\nnew 2\n")); err == nil {
		t.Error("ReadConsistency took an old size above the new one")
	}
}

func TestFollowAudit(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, db)
	ch := registry.Change{Actor: "alice", Reason: "TRO"}
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: "waledac-2010", Court: "E.D. Va.", Docket: "1:10cv156"}, ch); err != nil {
		t.Fatal(err)
	}
	n, err := l.FollowAudit(ctx, reg)
	if err != nil || n != 1 {
		t.Fatalf("FollowAudit: %d %v", n, err)
	}
	appendBatches(t, l, 1)
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: "rustock-2011", Court: "W.D. Wash.", Docket: "2"}, ch); err != nil {
		t.Fatal(err)
	}
	if n, err := l.FollowAudit(ctx, reg); err != nil || n != 1 {
		t.Fatalf("FollowAudit: %d %v", n, err)
	}
	if n, err := l.FollowAudit(ctx, reg); err != nil || n != 0 {
		t.Fatalf("FollowAudit again: %d %v", n, err)
	}
	entries, _ := reg.Audit(ctx, registry.AuditFilter{})
	data, err := l.Leaf(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := evidence.ParseLeaf(data)
	if err != nil || lf.Kind != evidence.KindAudit || lf.AuditHash() != entries[1].Hash {
		t.Fatalf("leaf 2 %+v %v does not hold audit entry 2", lf, err)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	// An entry altered in the registry is not logged.
	if _, err := db.ExecContext(ctx, `UPDATE registry_audit SET actor = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: "kelihos-2011", Court: "E.D. Va.", Docket: "3"}, ch); err != nil {
		t.Fatal(err)
	}
	db2 := l
	if n, err := db2.FollowAudit(ctx, reg); err != nil || n != 1 {
		// Entry 3's prev is entry 2's stored hash, which was not changed:
		// the chain from what the log holds still verifies.
		t.Fatalf("FollowAudit after the edit: %d %v", n, err)
	}
}

func TestFollowAuditRefusesBrokenChain(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, db)
	ch := registry.Change{Actor: "alice"}
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: "waledac-2010", Court: "E.D. Va.", Docket: "1"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE registry_audit SET reason = 'edited' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	n, err := l.FollowAudit(ctx, reg)
	if !errors.Is(err, registry.ErrAuditBroken) || n != 0 || !strings.Contains(err.Error(), "audit entry 1") {
		t.Fatalf("FollowAudit over an altered entry: %d %v", n, err)
	}
	if size, _ := l.Size(ctx); size != 0 {
		t.Errorf("size %d after a refused audit entry", size)
	}
}

func TestPrune(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	appendBatches(t, l, 4) // events at seconds 0..11 of 2010-02-22
	c, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := l.Leaf(ctx, 1)
	cut := time.Date(2010, 2, 22, 0, 0, 6, 0, time.UTC).UnixNano() // leaves 0 and 1 end before
	n, err := l.Prune(ctx, cut)
	if err != nil || n != 2 {
		t.Fatalf("Prune: %d %v", n, err)
	}
	if _, err := l.Leaf(ctx, 1); !errors.Is(err, evidence.ErrPruned) {
		t.Errorf("Leaf of a pruned leaf: %v", err)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("Verify after pruning: %v", err)
	}
	p, err := l.ProveInclusion(ctx, 1, c.Size)
	if err != nil || tlog.CheckRecord(p, c.Size, c.Root, 1, tlog.RecordHash(d1)) != nil {
		t.Errorf("the proof of a pruned leaf no longer verifies: %v", err)
	}
	var seen []int64
	err = l.Leaves(ctx, 0, cut, func(idx int64, data []byte) error {
		seen = append(seen, idx)
		if data != nil {
			t.Errorf("leaf %d: data after pruning", idx)
		}
		return nil
	})
	if err != nil || len(seen) != 2 || seen[0] != 0 || seen[1] != 1 {
		t.Errorf("Leaves before the cut: %v %v", seen, err)
	}
	// Leaves meeting [3 s, 4 s): leaf 1 holds events at 3, 4 and 5 s.
	seen = nil
	from := time.Date(2010, 2, 22, 0, 0, 3, 0, time.UTC).UnixNano()
	l.Leaves(ctx, from, from+1, func(idx int64, _ []byte) error { seen = append(seen, idx); return nil })
	if len(seen) != 1 || seen[0] != 1 {
		t.Errorf("Leaves of [3 s, 3 s + 1 ns): %v", seen)
	}
	spans, err := l.LeafSpans(ctx, from, from+1)
	t0 := time.Date(2010, 2, 22, 0, 0, 0, 0, time.UTC).UnixNano()
	if want := (evidence.Span{First: t0 + 3e9, Last: t0 + 5e9}); err != nil || len(spans) != 1 || spans[1] != want {
		t.Errorf("LeafSpans of [3 s, 3 s + 1 ns): %v, %v; want leaf 1 %v", spans, err, want)
	}
}

// TestOpenChecksLastCheckpoint: a log whose tree no longer extends its
// last checkpoint is refused at Open.
func TestOpenChecksLastCheckpoint(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	appendBatches(t, l, 6)
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	truncate(t, db, 4)
	_, err := evidence.Open(ctx, evidence.Config{DB: db, Origin: "takedown/test"})
	var te *evidence.TamperError
	if !errors.As(err, &te) || te.Checkpoint != 6 || !strings.Contains(err.Error(), "refusing to go on") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Open over a truncated log: %v", err)
	}
	// The same log, still open, refuses to sign over the truncation.
	appendBatches(t, l, 0)
	if _, err := l.Checkpoint(ctx); !errors.As(err, &te) || te.Checkpoint != 6 {
		t.Fatalf("Checkpoint over a truncated log: %v", err)
	}
}

// truncate deletes the leaves from n on and their stored hashes, as one
// would who wants the log to end earlier.
func truncate(t *testing.T, db *sql.DB, n int64) {
	t.Helper()
	exec(t, db, `DELETE FROM evidence_leaves WHERE idx >= ?`, n)
	exec(t, db, `DELETE FROM evidence_hashes WHERE idx >= ?`, tlog.StoredHashCount(n))
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestFollowAuditMany logs more audit entries than one round reads.
func TestFollowAuditMany(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	appendBatches(t, l, 1)
	var entries auditList
	prev := ""
	at := time.Date(2010, 2, 22, 9, 0, 0, 0, time.UTC)
	for i := range 12_345 {
		e := registry.AuditEntry{Seq: int64(i + 1), At: at, Actor: "import", Action: "domain.import",
			Object: fmt.Sprintf("domain:d%d.example", i), Detail: `{"state":"seized"}`}
		e.Hash = registry.EntryHash(prev, e)
		prev = e.Hash
		entries = append(entries, e)
	}
	start := time.Now()
	n, err := l.FollowAudit(ctx, entries)
	if err != nil || n != len(entries) {
		t.Fatalf("FollowAudit: %d %v", n, err)
	}
	t.Logf("%d audit entries logged in %s", n, time.Since(start))
	appendBatches(t, l, 1)
	if size, _ := l.Size(ctx); size != int64(len(entries))+2 {
		t.Fatalf("size %d", size)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	data, _ := l.Leaf(ctx, 12_345)
	if lf, err := evidence.ParseLeaf(data); err != nil || lf.AuditHash() != entries[12_344].Hash {
		t.Fatalf("leaf 12345: %v", err)
	}
	// A leaf's data altered among them is found.
	exec(t, db, `UPDATE evidence_leaves SET data = ? WHERE idx = 7000`, evidence.AuditLeaf("", entries[6998]))
	wantTamper(t, l.Verify(ctx), 7000, -1, "does not match its hash")
}

func TestAuditLeafIndex(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	appendBatches(t, l, 2)
	if _, err := l.FollowAudit(ctx, auditList{exampleAudit()}); err != nil {
		t.Fatal(err)
	}
	if idx, err := l.AuditLeafIndex(ctx, 1); err != nil || idx != 2 {
		t.Errorf("AuditLeafIndex(1) = %d, %v; want 2", idx, err)
	}
	if _, err := l.AuditLeafIndex(ctx, 2); err == nil || !strings.Contains(err.Error(), "not logged") {
		t.Errorf("AuditLeafIndex of an entry not logged: %v", err)
	}
	var got []string
	err := l.AuditLeaves(ctx, func(idx, seq int64, data []byte) error {
		got = append(got, fmt.Sprintf("%d %d %s", idx, seq, strings.SplitN(string(data), "\n", 2)[0]))
		return nil
	})
	if want := "2 1 takedown-evidence/audit/v1"; err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("AuditLeaves: %q, %v; want [%q]", got, err, want)
	}
}

func keysSigner(t *testing.T) note.Signer {
	s, _ := keys(t, "log.example", 1)
	return s
}

// TestOriginIsKept: a log is not extended under another name.
func TestOriginIsKept(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	appendBatches(t, l, 2)
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	s, v := keys(t, "log.example", 1)
	_, err := evidence.Open(ctx, evidence.Config{DB: db, Origin: "takedown/renamed", Signer: s, Verifier: v, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), `set the origin back to "takedown/test"`) {
		t.Fatalf("Open under another origin: %v", err)
	}
	ro, err := evidence.Open(ctx, evidence.Config{DB: db, Origin: "takedown/renamed", Verifier: v})
	if err != nil {
		t.Fatalf("a read-only Open under another origin: %v", err)
	}
	if err := ro.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPackedBatchLeaves: the log keeps a batch leaf's hashes packed (32
// bytes each, not 65), gives them back in the documented form, still reads
// leaves stored in the documented form, and names a packed leaf that was
// altered.
func TestPackedBatchLeaves(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	appendBatches(t, l, 2)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT octet_length(data) FROM evidence_leaves WHERE idx = 0`).Scan(&n); err != nil || n != 1+3*32 {
		t.Fatalf("leaf 0 stored in %d bytes (%v), want %d", n, err, 1+3*32)
	}
	doc, err := l.Leaf(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := evidence.ParseLeaf(doc)
	if err != nil || len(doc) != 27+3*65 || !bytes.Equal(doc, evidence.BatchLeaf(lf.Events)) {
		t.Fatalf("leaf 0 read back: %q, %v", doc, err)
	}
	var rh []byte
	db.QueryRowContext(ctx, `SELECT hash FROM evidence_leaves WHERE idx = 0`).Scan(&rh)
	if h := tlog.RecordHash(doc); !bytes.Equal(rh, h[:]) {
		t.Fatal("the stored record hash is not that of the documented form")
	}
	// A leaf stored in the documented form, as logs of before kept them.
	exec(t, db, `UPDATE evidence_leaves SET data = ? WHERE idx = 0`, doc)
	if again, err := l.Leaf(ctx, 0); err != nil || !bytes.Equal(again, doc) {
		t.Fatalf("a leaf stored documented: %q, %v", again, err)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	var packed []byte
	db.QueryRowContext(ctx, `SELECT data FROM evidence_leaves WHERE idx = 1`).Scan(&packed)
	packed[5] ^= 1
	exec(t, db, `UPDATE evidence_leaves SET data = ? WHERE idx = 1`, packed)
	wantTamper(t, l.Verify(ctx), 1, -1, "does not match its hash")
	exec(t, db, `UPDATE evidence_leaves SET data = ? WHERE idx = 1`, packed[:len(packed)-5])
	wantTamper(t, l.Verify(ctx), 1, -1, "not a whole number of 32-byte hashes")
	if _, err := l.Leaf(ctx, 1); err == nil || !strings.Contains(err.Error(), "leaf 1") {
		t.Errorf("Leaf of a damaged packed leaf: %v", err)
	}
}
