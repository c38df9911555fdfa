package registry

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrAuditBroken: the audit log's hash chain does not verify; an entry was
// altered, removed or inserted outside the registry.
var ErrAuditBroken = errors.New("audit chain broken")

// ChainError names the first audit entry that breaks the hash chain. It
// wraps ErrAuditBroken.
type ChainError struct {
	// Seq is the sequence number of the first bad entry.
	Seq int64
	// Reason says what is wrong with it.
	Reason string
}

// Error names the entry and what is wrong with it.
func (e *ChainError) Error() string {
	return fmt.Sprintf("audit entry %d: %s", e.Seq, e.Reason)
}

// Unwrap returns ErrAuditBroken.
func (e *ChainError) Unwrap() error { return ErrAuditBroken }

// auditTimeLayout is how At enters the hash: UTC, microseconds, fixed width.
const auditTimeLayout = "2006-01-02T15:04:05.000000Z"

// EntryHash returns the hash of e that follows prev (the previous entry's
// Hash, "" for the first entry): the hex SHA-256 of the fields prev, Seq,
// At, Actor, Action, Object, Detail and Reason, each written as its length
// in bytes in decimal, ':', the bytes and '\n'. Seq is decimal; At is UTC
// with microseconds, as in "2010-02-22T15:04:05.000000Z".
func EntryHash(prev string, e AuditEntry) string {
	h := sha256.New()
	buf := make([]byte, 0, 256)
	field := func(s string) {
		buf = strconv.AppendInt(buf[:0], int64(len(s)), 10)
		buf = append(buf, ':')
		buf = append(buf, s...)
		buf = append(buf, '\n')
		h.Write(buf)
	}
	field(prev)
	field(strconv.FormatInt(e.Seq, 10))
	field(e.At.UTC().Format(auditTimeLayout))
	field(e.Actor)
	field(e.Action)
	field(e.Object)
	field(e.Detail)
	field(e.Reason)
	return hex.EncodeToString(h.Sum(nil))
}

// Audit actions.
const (
	actionCaseAdd      = "case.add"
	actionOrderAdd     = "order.add"
	actionDomainImport = "domain.import"
	actionDomainState  = "domain.state"
)

// writeTx is a write transaction with the audit entries it makes; entries
// are inserted in the same transaction as the change they describe.
type writeTx struct {
	ctx   context.Context
	tx    *sql.Tx
	at    time.Time
	ch    Change
	seq   int64 // of the last entry
	prev  string
	audit []AuditEntry
}

// write runs fn in one transaction under the registry's write lock, then
// appends the audit entries fn recorded, then commits. If anything fails the
// transaction is rolled back and nothing changes.
func (r *Registry) write(ctx context.Context, ch Change, fn func(w *writeTx) error) error {
	ch, err := checkChange(ch)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	defer tx.Rollback()
	w := &writeTx{ctx: ctx, tx: tx, at: r.clock(), ch: ch}
	var seq sql.NullInt64
	var hash sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM registry_audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading audit log: %w", err)
	}
	w.seq, w.prev = seq.Int64, hash.String
	if err := fn(w); err != nil {
		return err
	}
	if err := w.flushAudit(); err != nil {
		return fmt.Errorf("writing audit log: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// checkChange validates and trims ch.
func checkChange(ch Change) (Change, error) {
	ch.Actor = strings.TrimSpace(ch.Actor)
	ch.Reason = strings.TrimSpace(ch.Reason)
	if ch.Actor == "" {
		return ch, fmt.Errorf("change: actor is empty; every change must name who makes it: %w", ErrInvalid)
	}
	if err := checkText("actor", ch.Actor, 200, false); err != nil {
		return ch, err
	}
	if err := checkText("reason", ch.Reason, 2000, true); err != nil {
		return ch, err
	}
	return ch, nil
}

// CheckActor reports whether actor may name who makes a change: not empty
// once trimmed, at most 200 bytes of UTF-8 without control characters. For
// callers that act before they record (the dashboard changes a user, then
// writes the audit entry). Errors wrap ErrInvalid.
func CheckActor(actor string) error {
	_, err := checkChange(Change{Actor: actor})
	return err
}

// record adds an audit entry for one change and returns its seq. detail is
// marshalled to compact JSON.
func (w *writeTx) record(action, object string, detail any) (int64, error) {
	d, err := json.Marshal(detail)
	if err != nil {
		return 0, fmt.Errorf("audit detail of %s %s: %w", action, object, err)
	}
	w.seq++
	e := AuditEntry{
		Seq:    w.seq,
		At:     w.at,
		Actor:  w.ch.Actor,
		Action: action,
		Object: object,
		Detail: string(d),
		Reason: w.ch.Reason,
	}
	e.Hash = EntryHash(w.prev, e)
	w.prev = e.Hash
	w.audit = append(w.audit, e)
	return e.Seq, nil
}

func (w *writeTx) flushAudit() error {
	for start := 0; start < len(w.audit); start += bulkRows {
		part := w.audit[start:min(start+bulkRows, len(w.audit))]
		seqs := make([]int64, len(part))
		objects := make([]string, len(part))
		actions := make([]string, len(part))
		details := make([]string, len(part))
		hashes := make([]string, len(part))
		for i, e := range part {
			seqs[i], objects[i], actions[i], details[i], hashes[i] = e.Seq, e.Object, e.Action, e.Detail, e.Hash
		}
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO registry_audit (seq, logged_at, actor, action, object, detail, reason, hash)
			SELECT unnest(?::BIGINT[]), ?::TIMESTAMP, ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), ?, unnest(?::VARCHAR[])`,
			seqs, w.at, w.ch.Actor, actions, objects, details, w.ch.Reason, hashes)
		if err != nil {
			return err
		}
	}
	w.audit = nil
	return nil
}

// bulkRows is how many rows one INSERT … SELECT unnest(…) writes.
const bulkRows = 50_000

// Audit returns audit entries, oldest first.
func (r *Registry) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := `SELECT seq, logged_at, actor, action, object, detail, reason, hash FROM registry_audit WHERE seq > ?`
	args := []any{f.AfterSeq}
	if f.Object != "" {
		q += ` AND object = ?`
		args = append(args, f.Object)
	}
	q += ` ORDER BY seq`
	if f.Limit < 0 {
		return nil, fmt.Errorf("audit filter: limit %d is negative: %w", f.Limit, ErrInvalid)
	}
	if f.Limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Object, &e.Detail, &e.Reason, &e.Hash); err != nil {
			return nil, fmt.Errorf("reading audit log: %w", err)
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	return out, nil
}

// AuditHead is an audit log's newest entry: its sequence number, which is
// also the number of entries, and its hash. Kept elsewhere (a ticket, a
// court filing, another machine), it lets VerifyAuditHead prove later that
// no entry up to it was removed and that the chain was not computed anew.
type AuditHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// String is the head as ParseAuditHead reads it: SEQ:HASH.
func (h AuditHead) String() string { return strconv.FormatInt(h.Seq, 10) + ":" + h.Hash }

// ParseAuditHead reads a pinned head written SEQ:HASH, e.g.
// "1234:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08":
// a sequence number from 1 and the 64 hex digits of the entry's hash (any
// case). Errors name the part that is wrong and wrap ErrInvalid.
func ParseAuditHead(s string) (AuditHead, error) {
	seq, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return AuditHead{}, fmt.Errorf("audit head %q is not SEQ:HASH (a sequence number, a colon, the entry's 64 hex digits): %w", cut(s, 100), ErrInvalid)
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < 1 {
		return AuditHead{}, fmt.Errorf("audit head %q: sequence number %q is not a whole number from 1: %w", cut(s, 100), cut(seq, 30), ErrInvalid)
	}
	hash = strings.ToLower(hash)
	if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return AuditHead{}, fmt.Errorf("audit head %q: hash %q is not 64 hex digits (a SHA-256): %w", cut(s, 100), cut(hash, 80), ErrInvalid)
	}
	return AuditHead{Seq: n, Hash: hash}, nil
}

// VerifyAudit recomputes the hash chain of the audit log and returns how
// many entries it checked, or an error naming the first entry that breaks:
// VerifyAuditHead without a pinned head.
func (r *Registry) VerifyAudit(ctx context.Context) (int64, error) {
	h, err := r.VerifyAuditHead(ctx, AuditHead{})
	return h.Seq, err
}

// VerifyAuditHead recomputes the hash chain of the audit log and returns
// its head, or an error naming the first entry that breaks with the head of
// the part that verified.
//
// A broken chain is a *ChainError wrapping ErrAuditBroken. Sequence numbers
// must run 1, 2, 3, … without gaps, so a removed entry is found too. The
// chain alone proves that no entry was changed after later ones were
// written; it cannot tell that entries were removed from its end, or that
// the whole log was rewritten and its hashes computed anew. For that, pin
// (a head kept elsewhere; zero: none) must be found in the log: its entry
// must still be there, with the same hash.
func (r *Registry) VerifyAuditHead(ctx context.Context, pin AuditHead) (AuditHead, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT seq, logged_at, actor, action, object, detail, reason, hash FROM registry_audit ORDER BY seq`)
	if err != nil {
		return AuditHead{}, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	var head AuditHead
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Object, &e.Detail, &e.Reason, &e.Hash); err != nil {
			return head, fmt.Errorf("reading audit log: %w", err)
		}
		want := head.Seq + 1
		switch {
		case e.Seq != want:
			return head, &ChainError{Seq: want, Reason: fmt.Sprintf("missing: the next entry found is %d", e.Seq)}
		case EntryHash(head.Hash, e) != e.Hash:
			return head, &ChainError{Seq: e.Seq, Reason: "hash does not match the entry's contents and the previous hash: the entry was altered"}
		case e.Seq == pin.Seq && e.Hash != pin.Hash:
			return head, &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("hash %s differs from the pinned head's %s: the log was rewritten and its chain computed anew", e.Hash, pin.Hash)}
		}
		head = AuditHead{Seq: e.Seq, Hash: e.Hash}
	}
	if err := rows.Err(); err != nil {
		return head, fmt.Errorf("reading audit log: %w", err)
	}
	if pin.Seq > head.Seq {
		return head, &ChainError{Seq: pin.Seq, Reason: fmt.Sprintf("missing: the pinned head is entry %d but the log ends at entry %d; entries were removed from its end", pin.Seq, head.Seq)}
	}
	return head, nil
}

// LastSeq returns the sequence number of the newest audit entry, 0 when the
// log is empty. Every change writes an entry, so a sequence number that
// moved means the registry changed: the sinkhole polls it.
func (r *Registry) LastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	if err := r.db.QueryRowContext(ctx, `SELECT max(seq) FROM registry_audit`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading audit log: %w", err)
	}
	return seq.Int64, nil
}
