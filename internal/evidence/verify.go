package evidence

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Verify recomputes the whole log from its leaves: each leaf's record hash
// from its data (unless pruned), every stored hash, the tree hash at every
// checkpoint's size, and each checkpoint's signature (when the verifier is
// known). A *TamperError names the first leaf whose data no longer matches
// or, when the hashes were rewritten as well, the first checkpoint that no
// longer matches and the leaves between it and the last good one.
func (l *Log) Verify(ctx context.Context) error { return l.VerifyProgress(ctx, nil) }

// VerifyProgress is Verify that reports, when progress is not nil, how many
// of the log's leaves it has checked.
func (l *Log) VerifyProgress(ctx context.Context, progress func(done, total int64)) error {
	// Checkpoints first: one whose signature fails is named before any
	// leaf work.
	cps, err := l.Checkpoints(ctx)
	if err != nil {
		return err
	}
	var total int64
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM evidence_leaves`).Scan(&total); err != nil {
		return fmt.Errorf("evidence log: counting leaves: %w", err)
	}
	computed, size, err := l.verifyLeaves(ctx, total, progress)
	if err != nil {
		return err
	}
	if err := l.verifyStoredHashes(ctx, computed); err != nil {
		return err
	}
	mem := memHashes(computed)
	good := int64(0)
	for _, c := range cps {
		if c.Origin != cps[0].Origin {
			return &TamperError{Leaf: -1, Checkpoint: c.Size, Reason: fmt.Sprintf("checkpoint of the log %q among checkpoints of the log %q", c.Origin, cps[0].Origin)}
		}
		if c.Size > size {
			return &TamperError{Leaf: size, Checkpoint: c.Size, Reason: fmt.Sprintf("the log has %d leaves, fewer than this checkpoint's %d: leaves %d to %d were removed", size, c.Size, size, c.Size-1)}
		}
		root, err := tlog.TreeHash(c.Size, mem)
		if err != nil {
			return fmt.Errorf("evidence log: tree hash of size %d: %w", c.Size, err)
		}
		if root != c.Root {
			return &TamperError{Leaf: good, Checkpoint: c.Size, Reason: fmt.Sprintf(
				"the tree of the first %d leaves has root %s, not the checkpoint's %s: leaves and their hashes were rewritten somewhere in leaves %d to %d (the last checkpoint that still matches has size %d), or this checkpoint is of another tree (a fork)",
				c.Size, root, c.Root, good, c.Size-1, good)}
		}
		good = c.Size
	}
	return nil
}

// verifyLeaves reads every leaf in index order, checks each one's data
// against its record hash and the audit chain across audit leaves, and
// returns the stored hashes recomputed from the leaves' record hashes and
// the number of leaves.
func (l *Log) verifyLeaves(ctx context.Context, total int64, progress func(done, total int64)) ([]tlog.Hash, int64, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT idx, kind, audit_seq, data, hash FROM evidence_leaves ORDER BY idx`)
	if err != nil {
		return nil, 0, fmt.Errorf("evidence log: reading leaves: %w", err)
	}
	defer rows.Close()
	var computed []tlog.Hash
	var n int64
	var auditSeq int64
	auditPrev := ""
	for rows.Next() {
		var idx int64
		var kind string
		var seq *int64
		var data, hash []byte
		if err := rows.Scan(&idx, &kind, &seq, &data, &hash); err != nil {
			return nil, 0, fmt.Errorf("evidence log: reading leaves: %w", err)
		}
		if idx != n {
			return nil, 0, &TamperError{Leaf: n, Checkpoint: -1, Reason: fmt.Sprintf("missing: the next leaf found is %d", idx)}
		}
		if len(hash) != tlog.HashSize {
			return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: fmt.Sprintf("its hash has %d bytes, not %d", len(hash), tlog.HashSize)}
		}
		rh := tlog.Hash(hash)
		if data != nil {
			if data, err = unpack(data); err != nil {
				return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: err.Error()}
			}
			if tlog.RecordHash(data) != rh {
				return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: "its data does not match its hash: the leaf was altered"}
			}
			lf, err := ParseLeaf(data)
			if err != nil {
				return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: err.Error()}
			}
			if lf.Kind != kind {
				return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: fmt.Sprintf("its data is a %s leaf, its row says %s", lf.Kind, kind)}
			}
			if lf.Kind == KindAudit {
				f, _ := lf.AuditFields()
				want := fmt.Sprint(auditSeq + 1)
				switch {
				case seq == nil || fmt.Sprint(*seq) != f[1]:
					return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: fmt.Sprintf("audit leaf holds entry %s but its row names another", f[1])}
				case f[1] != want:
					return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: fmt.Sprintf("audit leaf holds entry %s, want entry %s next", f[1], want)}
				case f[0] != auditPrev:
					return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: fmt.Sprintf("audit entry %s does not follow the hash of the entry logged before it", f[1])}
				}
				auditSeq++
				auditPrev = lf.AuditHash()
			}
		} else if kind != KindBatch {
			return nil, 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: "an audit leaf without data: only batch leaves are pruned"}
		}
		hs, err := tlog.StoredHashesForRecordHash(idx, rh, memHashes(computed))
		if err != nil {
			return nil, 0, fmt.Errorf("evidence log: hashing leaf %d: %w", idx, err)
		}
		computed = append(computed, hs...)
		n++
		if progress != nil && (n%4096 == 0 || n == total) {
			progress(n, total)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("evidence log: reading leaves: %w", err)
	}
	return computed, n, nil
}

// verifyStoredHashes compares the stored hashes with those recomputed from
// the leaves.
func (l *Log) verifyStoredHashes(ctx context.Context, computed []tlog.Hash) error {
	rows, err := l.db.QueryContext(ctx, `SELECT idx, hash FROM evidence_hashes ORDER BY idx`)
	if err != nil {
		return fmt.Errorf("evidence log: reading stored hashes: %w", err)
	}
	defer rows.Close()
	var i int64
	for rows.Next() {
		var idx int64
		var h []byte
		if err := rows.Scan(&idx, &h); err != nil {
			return fmt.Errorf("evidence log: reading stored hashes: %w", err)
		}
		switch {
		case idx >= int64(len(computed)):
			return &TamperError{Leaf: -1, Checkpoint: -1, Reason: fmt.Sprintf("stored hash %d is beyond the %d the leaves give: leaves were removed", idx, len(computed))}
		case idx != i:
			return coverErr(i, "is missing")
		case len(h) != tlog.HashSize || tlog.Hash(h) != computed[idx]:
			return coverErr(idx, "does not match the leaves' hashes")
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evidence log: reading stored hashes: %w", err)
	}
	if i < int64(len(computed)) {
		return coverErr(i, "is missing")
	}
	return nil
}

// coverErr names the leaves under stored hash idx.
func coverErr(idx int64, what string) error {
	level, n := tlog.SplitStoredHashIndex(idx)
	lo, hi := n<<level, (n+1)<<level-1
	r := fmt.Sprintf("stored hash %d (level %d, over leaves %d to %d) %s", idx, level, lo, hi, what)
	if level == 0 {
		r = fmt.Sprintf("its stored hash %d %s", idx, what)
	}
	return &TamperError{Leaf: lo, Checkpoint: -1, Reason: r}
}

// memHashes is a tlog.HashReader over stored hashes held in memory.
type memHashes []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d is not known (%d are)", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}
