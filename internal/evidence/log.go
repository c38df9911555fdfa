package evidence

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/migrate"
	"github.com/takedown-project/takedown/internal/registry"
)

// Config configures a Log. DB is required; the zero value of every other
// field works.
type Config struct {
	// DB is the takedown DuckDB database (the registry's), whichever engine
	// keeps the events. Open brings the log's tables up to date in it.
	DB *sql.DB
	// Origin names the log in its checkpoints. Zero:
	// "takedown/<hostname>".
	Origin string
	// Signer signs checkpoints. Nil: the log can be read and verified but
	// Checkpoint fails.
	Signer note.Signer
	// Verifier checks the signatures of stored checkpoints (Open, Verify,
	// Checkpoints). Nil: signatures are not checked, only the checkpoints'
	// sizes and roots against the tree.
	Verifier note.Verifier
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// Logger receives the log's messages. Zero: slog.Default().
	Logger *slog.Logger
	// Signed, when not nil, is called after a checkpoint is signed and
	// before it is stored: the crash tests hold the process there to kill
	// it in the middle of a checkpoint.
	Signed func(Checkpoint)
}

// ErrTampered: the log, a checkpoint or a bundle does not verify.
var ErrTampered = errors.New("evidence does not verify")

// TamperError names what does not verify: a leaf, a checkpoint, a file.
// It wraps ErrTampered.
type TamperError struct {
	// Leaf is the index of the first leaf that does not verify, -1 if
	// none is known.
	Leaf int64
	// Checkpoint is the tree size of the first checkpoint that does not
	// verify, -1 if none.
	Checkpoint int64
	// File is the bundle file that does not verify, "" if none.
	File string
	// Reason says what is wrong.
	Reason string
}

// Error names the file, the checkpoint and the leaf, then the reason.
func (e *TamperError) Error() string {
	var parts []string
	if e.File != "" {
		parts = append(parts, "file "+e.File)
	}
	if e.Checkpoint >= 0 {
		parts = append(parts, fmt.Sprintf("checkpoint of size %d", e.Checkpoint))
	}
	if e.Leaf >= 0 {
		parts = append(parts, fmt.Sprintf("leaf %d", e.Leaf))
	}
	if len(parts) == 0 {
		return "evidence: " + e.Reason
	}
	return strings.Join(parts, ", ") + ": " + e.Reason
}

// Unwrap returns ErrTampered.
func (e *TamperError) Unwrap() error { return ErrTampered }

// AuditSource gives the registry's audit entries (a *registry.Registry).
type AuditSource interface {
	Audit(ctx context.Context, f registry.AuditFilter) ([]registry.AuditEntry, error)
}

// Log is the transparency log: an append-only Merkle tree of batch and
// audit leaves with signed checkpoints, kept in DuckDB tables. Its methods
// are safe for concurrent use; appends and checkpoints are serialised.
// One process keeps one Log per database: a Log holds the tree's size, so
// a second Log appending to the same tables would not see the first's
// leaves (read-only Logs, without a Signer, may be opened beside it).
type Log struct {
	db       *sql.DB
	origin   string
	signer   note.Signer
	verifier note.Verifier
	now      func() time.Time
	logger   *slog.Logger
	signed   func(Checkpoint)

	// mu serialises appends, so that leaves are numbered in one line.
	mu   sync.Mutex
	size int64 // number of leaves; under mu
	// cpMu serialises checkpoints. A checkpoint holds mu only to read the
	// size: the stored hashes of a committed tree never change, so
	// appends go on while it is computed and signed (an external signer
	// may take seconds).
	cpMu sync.Mutex
}

// Open brings the log's schema up to date and checks the log against its
// last checkpoint: the tree must have at least that many leaves and the
// same root at that size. A damaged log (a truncated or rewritten tree) is
// refused with a *TamperError.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.DB == nil {
		return nil, errors.New("evidence: no database")
	}
	if err := migrate.Apply(ctx, cfg.DB, Component, migrations); err != nil {
		return nil, err
	}
	l := &Log{db: cfg.DB, origin: cfg.Origin, signer: cfg.Signer, verifier: cfg.Verifier, now: cfg.Now, logger: cfg.Logger, signed: cfg.Signed}
	if l.origin == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		l.origin = "takedown/" + host
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	l.logger = l.logger.With("component", "evidence")
	var n sql.NullInt64
	var count int64
	if err := l.db.QueryRowContext(ctx, `SELECT max(idx), count(*) FROM evidence_leaves`).Scan(&n, &count); err != nil {
		return nil, fmt.Errorf("reading evidence log: %w", err)
	}
	size := int64(0)
	if n.Valid {
		size = n.Int64 + 1
	}
	if count != size {
		return nil, fmt.Errorf("evidence log is damaged, refusing to go on (run takedown evidence verify): %w",
			&TamperError{Leaf: -1, Checkpoint: -1, Reason: fmt.Sprintf("%d leaf rows for leaves 0 to %d: leaves were deleted", count, size-1)})
	}
	var hashes int64
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM evidence_hashes`).Scan(&hashes); err != nil {
		return nil, fmt.Errorf("reading evidence log: %w", err)
	}
	if want := tlog.StoredHashCount(size); hashes != want {
		return nil, fmt.Errorf("evidence log is damaged, refusing to go on (run takedown evidence verify): %w",
			&TamperError{Leaf: -1, Checkpoint: -1, Reason: fmt.Sprintf("%d stored hashes for %d leaves, want %d", hashes, size, want)})
	}
	l.size = size
	last, err := l.lastCheckpoint(ctx, l.db)
	if err != nil {
		return nil, err
	}
	if last != nil {
		if err := l.checkAgainst(ctx, l.db, *last, size); err != nil {
			return nil, fmt.Errorf("evidence log is damaged, refusing to go on (run takedown evidence verify): %w", err)
		}
		if l.signer != nil {
			if err := l.checkOrigin(*last); err != nil {
				return nil, err
			}
		}
	}
	lastSize := int64(-1)
	if last != nil {
		lastSize = last.Size
	}
	l.logger.Info("evidence log opened", "origin", l.origin, "leaves", size, "last_checkpoint", lastSize, "signing", l.signer != nil)
	return l, nil
}

// Summary is what Peek reads of a log.
type Summary struct {
	// Size is the number of leaves.
	Size int64
	// Last is the newest checkpoint, its signature not checked; nil when
	// none was signed yet.
	Last *Checkpoint
}

// Peek reads the size and the last checkpoint of the log in db without
// opening it: it changes nothing in the file (Open brings the schema up to
// date) and checks nothing (Verify does). It returns nil when db holds no
// log. `takedown status` without a serve shows it.
func Peek(ctx context.Context, db *sql.DB) (*Summary, error) {
	v, err := migrate.Version(ctx, db, Component)
	if err != nil || v == 0 {
		return nil, err
	}
	var sum Summary
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM evidence_leaves`).Scan(&sum.Size); err != nil {
		return nil, fmt.Errorf("evidence log: counting leaves: %w", err)
	}
	sum.Last, err = (&Log{}).lastCheckpoint(ctx, db)
	if err != nil {
		return nil, err
	}
	return &sum, nil
}

// Origin returns the log's name in its checkpoints.
func (l *Log) Origin() string { return l.origin }

// Verifier returns the verifier of the log's key, nil if not known.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// hashReader reads stored hashes from the database (through q), or from
// pending, the hashes of leaves appended in the running transaction.
type hashReader struct {
	ctx     context.Context
	q       queryer
	pending map[int64]tlog.Hash
}

// ReadHashes implements tlog.HashReader.
func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var need []int64
	pos := make(map[int64][]int, len(indexes))
	for i, x := range indexes {
		if h, ok := r.pending[x]; ok {
			out[i] = h
			continue
		}
		if _, ok := pos[x]; !ok {
			need = append(need, x)
		}
		pos[x] = append(pos[x], i)
	}
	if len(need) == 0 {
		return out, nil
	}
	var q strings.Builder
	q.WriteString(`SELECT idx, hash FROM evidence_hashes WHERE idx IN (`)
	args := make([]any, len(need))
	for i, x := range need {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
		args[i] = x
	}
	q.WriteByte(')')
	rows, err := r.q.QueryContext(r.ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("reading stored hashes: %w", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var x int64
		var h []byte
		if err := rows.Scan(&x, &h); err != nil {
			return nil, fmt.Errorf("reading stored hashes: %w", err)
		}
		if len(h) != tlog.HashSize {
			return nil, &TamperError{Leaf: -1, Checkpoint: -1, Reason: fmt.Sprintf("stored hash %d has %d bytes, not %d", x, len(h), tlog.HashSize)}
		}
		for _, i := range pos[x] {
			out[i] = tlog.Hash(h)
		}
		if r.pending != nil {
			r.pending[x] = tlog.Hash(h) // stored hashes never change
		}
		found++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading stored hashes: %w", err)
	}
	if found != len(need) {
		return nil, &TamperError{Leaf: -1, Checkpoint: -1, Reason: fmt.Sprintf("%d of the stored hashes %v are missing", len(need)-found, need)}
	}
	return out, nil
}

// newLeaf is a leaf about to be appended.
type newLeaf struct {
	kind            string
	firstNs, lastNs sql.NullInt64
	events          int
	auditSeq        sql.NullInt64
	// data is the leaf data; stored, when not nil, what the table keeps
	// of it (packed), and hash its record hash.
	data, stored []byte
	hash         tlog.Hash
}

// append adds leaves in one transaction, with their stored hashes, and
// returns the index of the first. The caller holds l.mu.
//
// The transaction does not heed ctx's cancellation: it is short, and a
// commit that was interrupted may have been made durable all the same
// (DuckDB), which would leave the size the log holds behind the table.
// Should a commit still fail, the size is read back from the table.
func (l *Log) append(ctx context.Context, leaves []newLeaf) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("evidence log: appending: %w", err)
	}
	ctx = context.WithoutCancel(ctx)
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("evidence log: starting transaction: %w", err)
	}
	defer tx.Rollback()
	r := hashReader{ctx: ctx, q: tx, pending: make(map[int64]tlog.Hash)}
	first := l.size
	at := l.now().UTC()
	var hashIdx []int64
	var hashVals []string // hex: the driver binds no BLOB[]
	var bulk leafColumns
	for i, lf := range leaves {
		n := first + int64(i)
		rh := lf.hash
		if lf.data != nil {
			rh = tlog.RecordHash(lf.data)
		}
		keep := lf.stored
		if keep == nil {
			keep = lf.data
		}
		hs, err := tlog.StoredHashesForRecordHash(n, rh, r)
		if err != nil {
			return 0, fmt.Errorf("evidence log: hashing leaf %d: %w", n, err)
		}
		base := tlog.StoredHashIndex(0, n)
		for j, h := range hs {
			r.pending[base+int64(j)] = h
			hashIdx = append(hashIdx, base+int64(j))
			hashVals = append(hashVals, hex.EncodeToString(h[:]))
		}
		if len(leaves) == 1 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO evidence_leaves (idx, kind, logged_at, first_ns, last_ns, events, audit_seq, data, hash)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, n, lf.kind, at, lf.firstNs, lf.lastNs, lf.events, lf.auditSeq, keep, rh[:]); err != nil {
				return 0, fmt.Errorf("evidence log: storing leaf %d: %w", n, err)
			}
		} else {
			if lf.kind != KindAudit {
				return 0, fmt.Errorf("evidence log: leaf %d: only audit leaves are appended several at a time", n)
			}
			bulk.add(n, lf, rh)
		}
	}
	if err := bulk.insert(ctx, tx, at); err != nil {
		return 0, fmt.Errorf("evidence log: storing leaves %d to %d: %w", first, first+int64(len(leaves))-1, err)
	}
	for start := 0; start < len(hashIdx); start += bulkRows {
		end := min(start+bulkRows, len(hashIdx))
		if _, err := tx.ExecContext(ctx, `INSERT INTO evidence_hashes (idx, hash) SELECT i, unhex(h) FROM (SELECT unnest(?::BIGINT[]) AS i, unnest(?::VARCHAR[]) AS h)`,
			hashIdx[start:end], hashVals[start:end]); err != nil {
			return 0, fmt.Errorf("evidence log: storing hashes of leaves %d to %d: %w", first, first+int64(len(leaves))-1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("evidence log: committing leaves %d to %d: %w", first, first+int64(len(leaves))-1, err)
		var n sql.NullInt64
		if rerr := l.db.QueryRowContext(ctx, `SELECT max(idx) FROM evidence_leaves`).Scan(&n); rerr != nil {
			return 0, errors.Join(err, fmt.Errorf("evidence log: reading its size back: %w", rerr))
		}
		l.size = n.Int64 + 1
		if !n.Valid {
			l.size = 0
		}
		return 0, err
	}
	l.size += int64(len(leaves))
	return first, nil
}

// leafColumns are the columns of audit leaves appended together (one
// INSERT for thousands of entries rather than one each). Every leaf in
// it is an audit leaf: time range NULL, no events.
type leafColumns struct {
	idx, seq   []int64
	kind       []string
	data, hash []string // hex: the driver binds no BLOB[]
}

func (c *leafColumns) add(n int64, lf newLeaf, rh tlog.Hash) {
	c.idx = append(c.idx, n)
	c.seq = append(c.seq, lf.auditSeq.Int64)
	c.kind = append(c.kind, lf.kind)
	c.data = append(c.data, hex.EncodeToString(lf.data))
	c.hash = append(c.hash, hex.EncodeToString(rh[:]))
}

func (c *leafColumns) insert(ctx context.Context, tx *sql.Tx, at time.Time) error {
	for start := 0; start < len(c.idx); start += bulkRows {
		end := min(start+bulkRows, len(c.idx))
		_, err := tx.ExecContext(ctx, `INSERT INTO evidence_leaves (idx, kind, logged_at, first_ns, last_ns, events, audit_seq, data, hash)
			SELECT i, k, ?::TIMESTAMP, NULL, NULL, 0, s, unhex(d), unhex(h)
			FROM (SELECT unnest(?::BIGINT[]) AS i, unnest(?::VARCHAR[]) AS k, unnest(?::BIGINT[]) AS s,
				unnest(?::VARCHAR[]) AS d, unnest(?::VARCHAR[]) AS h)`,
			at, c.idx[start:end], c.kind[start:end], c.seq[start:end], c.data[start:end], c.hash[start:end])
		if err != nil {
			return err
		}
	}
	return nil
}

// bulkRows is how many rows one INSERT … SELECT unnest(…) writes.
const bulkRows = 50_000

// AppendBatch appends the leaf of a batch of events and returns its index.
// The events are hashed as given (EventLine canonicalises them).
func (l *Log) AppendBatch(ctx context.Context, events []event.Event) (int64, error) {
	return l.appendHashed(ctx, hashEvents(events), timeRange(events))
}

// appendHashed appends a batch leaf of hashes whose events span tr.
func (l *Log) appendHashed(ctx context.Context, hashes [][32]byte, tr [2]int64) (int64, error) {
	if len(hashes) == 0 {
		return 0, errors.New("evidence log: an empty batch has no leaf")
	}
	sorted := slices.Clone(hashes)
	slices.SortFunc(sorted, compareHashes)
	lf := newLeaf{kind: KindBatch, events: len(hashes), stored: packBatch(sorted), hash: batchRecordHash(sorted),
		firstNs: sql.NullInt64{Int64: tr[0], Valid: true}, lastNs: sql.NullInt64{Int64: tr[1], Valid: true}}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(ctx, []newLeaf{lf})
}

// timeRange returns the first and last event time of events in Unix
// nanoseconds.
func timeRange(events []event.Event) [2]int64 {
	var tr [2]int64
	for i := range events {
		ns := events[i].Time.UnixNano()
		if i == 0 || ns < tr[0] {
			tr[0] = ns
		}
		if i == 0 || ns > tr[1] {
			tr[1] = ns
		}
	}
	return tr
}

// FollowAudit appends one leaf per audit entry of reg newer than the last
// one logged, and returns how many it appended. It checks each entry's
// chain hash before logging it: a broken registry chain is not logged.
// Serve calls it at start and before each checkpoint.
func (l *Log) FollowAudit(ctx context.Context, reg AuditSource) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var seq sql.NullInt64
	if err := l.db.QueryRowContext(ctx, `SELECT max(audit_seq) FROM evidence_leaves`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("evidence log: reading the last audit leaf: %w", err)
	}
	prev := ""
	if seq.Valid {
		var data []byte
		var idx int64
		if err := l.db.QueryRowContext(ctx, `SELECT idx, data FROM evidence_leaves WHERE audit_seq = ? ORDER BY idx DESC LIMIT 1`, seq.Int64).Scan(&idx, &data); err != nil {
			return 0, fmt.Errorf("evidence log: reading the last audit leaf: %w", err)
		}
		lf, err := ParseLeaf(data)
		if err != nil || lf.Kind != KindAudit {
			return 0, &TamperError{Leaf: idx, Checkpoint: -1, Reason: fmt.Sprintf("audit leaf of entry %d does not parse: %v", seq.Int64, err)}
		}
		prev = lf.AuditHash()
	}
	total := 0
	for range maxAuditRounds {
		entries, err := reg.Audit(ctx, registry.AuditFilter{AfterSeq: seq.Int64, Limit: auditChunk})
		if err != nil {
			return total, fmt.Errorf("evidence log: reading the registry's audit log: %w", err)
		}
		if len(entries) == 0 {
			return total, nil
		}
		leaves := make([]newLeaf, len(entries))
		for i, e := range entries {
			if e.Seq != seq.Int64+1 {
				return total, fmt.Errorf("evidence log: audit entry %d follows entry %d: the registry's audit log has a gap", e.Seq, seq.Int64)
			}
			if h := registry.EntryHash(prev, e); h != e.Hash {
				return total, fmt.Errorf("evidence log: audit entry %d: its hash does not match its contents and the previous hash; not logging a broken chain: %w", e.Seq, registry.ErrAuditBroken)
			}
			leaves[i] = newLeaf{kind: KindAudit, auditSeq: sql.NullInt64{Int64: e.Seq, Valid: true}, data: AuditLeaf(prev, e)}
			prev, seq = e.Hash, sql.NullInt64{Int64: e.Seq, Valid: true}
		}
		if _, err := l.append(ctx, leaves); err != nil {
			return total, err
		}
		total += len(entries)
	}
	return total, nil
}

const (
	auditChunk     = 10_000
	maxAuditRounds = 1 << 20
)

// Size returns the number of leaves.
func (l *Log) Size(ctx context.Context) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size, nil
}

// Checkpoint signs the current tree and stores the checkpoint, unless the
// tree has not grown since the last checkpoint: then it returns that one.
// It refuses (a *TamperError) to sign a tree that does not extend the last
// checkpoint's: a truncated or rewritten log.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, errors.New("evidence log: no signing key configured; cannot sign a checkpoint")
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.mu.Lock()
	size := l.size
	l.mu.Unlock()
	last, err := l.lastCheckpoint(ctx, l.db)
	if err != nil {
		return Checkpoint{}, err
	}
	if last != nil {
		if err := l.checkOrigin(*last); err != nil {
			return Checkpoint{}, err
		}
		if err := l.checkAgainst(ctx, l.db, *last, size); err != nil {
			return Checkpoint{}, err
		}
		if last.Size == size {
			return *last, nil
		}
	}
	root, err := tlog.TreeHash(size, hashReader{ctx: ctx, q: l.db})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("evidence log: tree hash of size %d: %w", size, err)
	}
	c, err := signCheckpoint(l.signer, l.origin, size, root, l.now())
	if err != nil {
		return Checkpoint{}, err
	}
	if l.signed != nil {
		l.signed(c)
	}
	if _, err := l.db.ExecContext(ctx, `INSERT INTO evidence_checkpoints (size, signed_at, note) VALUES (?, ?, ?)`, c.Size, c.Time, c.Note); err != nil {
		return Checkpoint{}, fmt.Errorf("evidence log: storing checkpoint of size %d: %w", c.Size, err)
	}
	return c, nil
}

// checkOrigin refuses to extend a log under another name than its last
// checkpoint's: witnesses and mirrors know a log by its origin.
func (l *Log) checkOrigin(last Checkpoint) error {
	if last.Origin != l.origin {
		return fmt.Errorf("evidence log: its checkpoints name the log %q, but the configured origin is %q; set the origin back to %q (a log keeps one name)", last.Origin, l.origin, last.Origin)
	}
	return nil
}

// checkAgainst checks that the tree of size leaves extends checkpoint c:
// c.Size ≤ size and the tree hash at c.Size is c.Root.
func (l *Log) checkAgainst(ctx context.Context, q queryer, c Checkpoint, size int64) error {
	if c.Size > size {
		return &TamperError{Leaf: size, Checkpoint: c.Size, Reason: fmt.Sprintf("the log has %d leaves, fewer than this checkpoint's %d: the log was truncated", size, c.Size)}
	}
	root, err := tlog.TreeHash(c.Size, hashReader{ctx: ctx, q: q})
	if err != nil {
		var te *TamperError
		if errors.As(err, &te) {
			te.Checkpoint = c.Size
			return te
		}
		return fmt.Errorf("evidence log: tree hash of size %d: %w", c.Size, err)
	}
	if root != c.Root {
		return &TamperError{Leaf: -1, Checkpoint: c.Size, Reason: fmt.Sprintf("the tree of the first %d leaves has root %s, not the checkpoint's %s: the log was rewritten", c.Size, root, c.Root)}
	}
	return nil
}

// lastCheckpoint returns the newest stored checkpoint, nil if none.
func (l *Log) lastCheckpoint(ctx context.Context, q queryer) (*Checkpoint, error) {
	var msg []byte
	err := q.QueryRowContext(ctx, `SELECT note FROM evidence_checkpoints ORDER BY size DESC, signed_at DESC LIMIT 1`).Scan(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("evidence log: reading the last checkpoint: %w", err)
	}
	c, err := l.parseStored(msg)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// parseStored parses a stored checkpoint, checking its signature when the
// log knows its verifier.
func (l *Log) parseStored(msg []byte) (Checkpoint, error) {
	var c Checkpoint
	var err error
	if l.verifier != nil {
		c, err = ParseCheckpoint(msg, note.VerifierList(l.verifier))
	} else {
		c, err = parseUnverified(msg)
	}
	if err != nil {
		size := int64(-1)
		if u, uerr := parseUnverified(msg); uerr == nil {
			size = u.Size
		}
		return Checkpoint{}, &TamperError{Leaf: -1, Checkpoint: size, Reason: fmt.Sprintf("stored checkpoint does not verify: %v", err)}
	}
	return c, nil
}

// parseUnverified parses a checkpoint without checking its signatures.
func parseUnverified(msg []byte) (Checkpoint, error) {
	text, _, ok := bytes.Cut(msg, []byte("\n\n"))
	if !ok {
		return Checkpoint{Size: -1}, errors.New("checkpoint: no blank line before the signatures")
	}
	c, err := parseCheckpointBody(string(text) + "\n")
	if err != nil {
		return Checkpoint{Size: -1}, err
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}

// Checkpoints returns every stored checkpoint, oldest first.
func (l *Log) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT note FROM evidence_checkpoints ORDER BY size, signed_at`)
	if err != nil {
		return nil, fmt.Errorf("evidence log: reading checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var msg []byte
		if err := rows.Scan(&msg); err != nil {
			return nil, fmt.Errorf("evidence log: reading checkpoints: %w", err)
		}
		c, err := l.parseStored(msg)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evidence log: reading checkpoints: %w", err)
	}
	return out, nil
}

// Leaf returns the data of leaf idx; ErrPruned when retention removed it.
func (l *Log) Leaf(ctx context.Context, idx int64) ([]byte, error) {
	var data []byte
	err := l.db.QueryRowContext(ctx, `SELECT data FROM evidence_leaves WHERE idx = ?`, idx).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("evidence log: no leaf %d", idx)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence log: reading leaf %d: %w", idx, err)
	}
	if data == nil {
		return nil, fmt.Errorf("evidence log: leaf %d: %w", idx, ErrPruned)
	}
	doc, err := unpack(data)
	if err != nil {
		return nil, fmt.Errorf("evidence log: leaf %d: %w", idx, err)
	}
	return doc, nil
}

// AuditLeafIndex returns the index of the leaf that logs audit entry seq,
// an error when the entry is not logged (yet).
func (l *Log) AuditLeafIndex(ctx context.Context, seq int64) (int64, error) {
	var idx int64
	err := l.db.QueryRowContext(ctx, `SELECT idx FROM evidence_leaves WHERE kind = 'audit' AND audit_seq = ? ORDER BY idx LIMIT 1`, seq).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("evidence log: audit entry %d is not logged (FollowAudit logs new entries at each checkpoint)", seq)
	}
	if err != nil {
		return 0, fmt.Errorf("evidence log: finding the leaf of audit entry %d: %w", seq, err)
	}
	return idx, nil
}

// Leaves calls fn with the index and data of each batch leaf whose events'
// time range meets [fromNs, toNs), in index order. Pruned leaves are
// passed with nil data; stored data that does not unpack is passed as it
// is stored, which ParseLeaf refuses.
func (l *Log) Leaves(ctx context.Context, fromNs, toNs int64, fn func(idx int64, data []byte) error) error {
	rows, err := l.db.QueryContext(ctx, `SELECT idx, data FROM evidence_leaves
		WHERE kind = 'batch' AND first_ns < ? AND last_ns >= ? ORDER BY idx`, toNs, fromNs)
	if err != nil {
		return fmt.Errorf("evidence log: reading leaves: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx int64
		var data []byte
		if err := rows.Scan(&idx, &data); err != nil {
			return fmt.Errorf("evidence log: reading leaves: %w", err)
		}
		if doc, err := unpack(data); err == nil {
			data = doc
		}
		if err := fn(idx, data); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evidence log: reading leaves: %w", err)
	}
	return nil
}

// Span is the time range of a batch leaf's events, in Unix nanoseconds:
// the first and the last event's time.
type Span struct{ First, Last int64 }

// LeafSpans returns the time range of the events of each batch leaf whose
// range meets [fromNs, toNs), by leaf index: the leaves Leaves passes.
func (l *Log) LeafSpans(ctx context.Context, fromNs, toNs int64) (map[int64]Span, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT idx, first_ns, last_ns FROM evidence_leaves
		WHERE kind = 'batch' AND first_ns < ? AND last_ns >= ?`, toNs, fromNs)
	if err != nil {
		return nil, fmt.Errorf("evidence log: reading the leaves' time ranges: %w", err)
	}
	defer rows.Close()
	out := map[int64]Span{}
	for rows.Next() {
		var idx int64
		var sp Span
		if err := rows.Scan(&idx, &sp.First, &sp.Last); err != nil {
			return nil, fmt.Errorf("evidence log: reading the leaves' time ranges: %w", err)
		}
		out[idx] = sp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evidence log: reading the leaves' time ranges: %w", err)
	}
	return out, nil
}

// AuditLeaves calls fn with the index, the audit entry's seq and the data
// of each audit leaf, in index order. An entry is logged once; should it
// be in two leaves, both are passed.
func (l *Log) AuditLeaves(ctx context.Context, fn func(idx, seq int64, data []byte) error) error {
	rows, err := l.db.QueryContext(ctx, `SELECT idx, audit_seq, data FROM evidence_leaves WHERE kind = 'audit' ORDER BY idx`)
	if err != nil {
		return fmt.Errorf("evidence log: reading the audit leaves: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx, seq int64
		var data []byte
		if err := rows.Scan(&idx, &seq, &data); err != nil {
			return fmt.Errorf("evidence log: reading the audit leaves: %w", err)
		}
		if err := fn(idx, seq, data); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evidence log: reading the audit leaves: %w", err)
	}
	return nil
}

// ProveInclusion returns the proof that leaf idx is in the tree of size
// leaves.
func (l *Log) ProveInclusion(ctx context.Context, idx, size int64) (tlog.RecordProof, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if idx < 0 || idx >= size {
		return nil, fmt.Errorf("evidence log: leaf %d is not in a tree of %d leaves", idx, size)
	}
	p, err := tlog.ProveRecord(size, idx, hashReader{ctx: ctx, q: l.db})
	if err != nil {
		return nil, fmt.Errorf("evidence log: proving leaf %d in the tree of size %d: %w", idx, size, err)
	}
	return p, nil
}

// ProveConsistency returns the proof that the tree of old leaves is a
// prefix of the tree of size leaves; from the empty tree (old 0) it has no
// hashes.
func (l *Log) ProveConsistency(ctx context.Context, old, size int64) (tlog.TreeProof, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if old < 0 || old > size {
		return nil, fmt.Errorf("evidence log: old size %d is not from 0 to %d", old, size)
	}
	if old == 0 {
		// Every tree extends the empty one: the proof has no hashes.
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(size, old, hashReader{ctx: ctx, q: l.db})
	if err != nil {
		return nil, fmt.Errorf("evidence log: proving size %d consistent with size %d: %w", old, size, err)
	}
	return p, nil
}

// TreeHash returns the root hash of the tree of the first size leaves.
func (l *Log) TreeHash(ctx context.Context, size int64) (tlog.Hash, error) {
	if err := l.checkSize(size); err != nil {
		return tlog.Hash{}, err
	}
	return tlog.TreeHash(size, hashReader{ctx: ctx, q: l.db})
}

func (l *Log) checkSize(size int64) error {
	l.mu.Lock()
	n := l.size
	l.mu.Unlock()
	if size < 0 || size > n {
		return fmt.Errorf("evidence log: tree size %d is not from 0 to the log's %d", size, n)
	}
	return nil
}

// Prune removes the data of batch leaves whose events all are before
// beforeNs, as retention removes the events; their hashes stay, so every
// checkpoint and proof still verifies. It returns how many leaves it
// pruned.
func (l *Log) Prune(ctx context.Context, beforeNs int64) (int64, error) {
	res, err := l.db.ExecContext(ctx, `UPDATE evidence_leaves SET data = NULL WHERE kind = 'batch' AND last_ns < ? AND data IS NOT NULL`, beforeNs)
	if err != nil {
		return 0, fmt.Errorf("evidence log: pruning leaves before %s: %w", time.Unix(0, beforeNs).UTC().Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("evidence log: pruning: %w", err)
	}
	return n, nil
}
