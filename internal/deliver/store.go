package deliver

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/migrate"
)

// migrations is the schema of the delivery log.
var migrations = []migrate.Migration{{
	Version: 1,
	Name:    "delivery log and attempts",
	SQL: `
CREATE TABLE deliver_log (
	subscriber VARCHAR NOT NULL,
	day        DATE NOT NULL,
	format     VARCHAR NOT NULL,
	status     VARCHAR NOT NULL,
	attempts   INTEGER NOT NULL,
	message_id VARCHAR NOT NULL,
	recipients VARCHAR NOT NULL,
	bytes      BIGINT NOT NULL,
	last_error VARCHAR NOT NULL,
	response   VARCHAR NOT NULL,
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	sent_at    TIMESTAMP,
	PRIMARY KEY (subscriber, day, format)
);
CREATE TABLE deliver_attempts (
	subscriber  VARCHAR NOT NULL,
	day         DATE NOT NULL,
	format      VARCHAR NOT NULL,
	attempted_at TIMESTAMP NOT NULL,
	duration_us BIGINT NOT NULL,
	outcome     VARCHAR NOT NULL,
	error       VARCHAR NOT NULL,
	response    VARCHAR NOT NULL
);`,
}}

func (d *Deliverer) migrate(ctx context.Context) error {
	return migrate.Apply(ctx, d.db, "deliver", migrations)
}

// clock returns the current time as stored: UTC, whole microseconds.
func (d *Deliverer) clock() time.Time {
	return d.now().UTC().Truncate(time.Microsecond)
}

// recover turns the rows left in "sending" into "unknown".
func (d *Deliverer) recover(ctx context.Context) (int64, error) {
	res, err := d.db.ExecContext(ctx, `UPDATE deliver_log SET status = ?, last_error = ?, updated_at = ? WHERE status = ?`,
		string(StatusUnknown), "the process stopped during the SMTP transaction: the relay may have accepted the message",
		d.clock(), string(StatusSending))
	if err != nil {
		return 0, fmt.Errorf("recovering interrupted deliveries: %w", err)
	}
	return res.RowsAffected()
}

const recordColumns = `subscriber, day, format, status, attempts, message_id, recipients, bytes, last_error, response, created_at, updated_at, sent_at`

func scanRecord(s interface{ Scan(...any) error }) (Record, error) {
	var r Record
	var rcpts string
	var sent sql.NullTime
	err := s.Scan(&r.Subscriber, &r.Day, &r.Format, &r.Status, &r.Attempts, &r.MessageID, &rcpts, &r.Bytes,
		&r.LastError, &r.Response, &r.Created, &r.Updated, &sent)
	if err != nil {
		return Record{}, err
	}
	r.Day = r.Day.UTC()
	if rcpts != "" {
		r.Recipients = strings.Split(rcpts, ", ")
	}
	if sent.Valid {
		r.Sent = sent.Time.UTC()
	}
	r.Created, r.Updated = r.Created.UTC(), r.Updated.UTC()
	return r, nil
}

// get returns key's row.
func (d *Deliverer) get(ctx context.Context, k Key) (Record, bool, error) {
	r, err := scanRecord(d.db.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM deliver_log WHERE subscriber = ? AND day = ? AND format = ?`,
		k.Subscriber, k.Day, k.Format))
	if err == sql.ErrNoRows {
		return Record{Key: k}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("reading the delivery log: %w", err)
	}
	return r, true, nil
}

// prepare makes key's row pending, with the message about to be sent.
func (d *Deliverer) prepare(ctx context.Context, k Key, messageID string, rcpts []string, size int) (Record, error) {
	now := d.clock()
	_, err := d.db.ExecContext(ctx, `INSERT INTO deliver_log (`+recordColumns+`)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?, '', '', ?, ?, NULL)
		ON CONFLICT (subscriber, day, format) DO UPDATE SET
			status = excluded.status, message_id = excluded.message_id, recipients = excluded.recipients,
			bytes = excluded.bytes, updated_at = excluded.updated_at`,
		k.Subscriber, k.Day, k.Format, string(StatusPending), messageID, strings.Join(rcpts, ", "), size, now, now)
	if err != nil {
		return Record{}, fmt.Errorf("writing the delivery log: %w", err)
	}
	r, _, err := d.get(ctx, k)
	return r, err
}

// markSending records that the SMTP transaction of key reaches DATA.
func (d *Deliverer) markSending(ctx context.Context, k Key) error {
	_, err := d.db.ExecContext(ctx, `UPDATE deliver_log SET status = ?, updated_at = ? WHERE subscriber = ? AND day = ? AND format = ?`,
		string(StatusSending), d.clock(), k.Subscriber, k.Day, k.Format)
	if err != nil {
		return fmt.Errorf("writing the delivery log: %w", err)
	}
	return nil
}

// finish records the end of an attempt begun at start with outcome, or,
// when outcome is empty, an operator's decision.
func (d *Deliverer) finish(ctx context.Context, k Key, status Status, outcome, errText, resp string, start time.Time) (Record, error) {
	now := d.clock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Record{}, fmt.Errorf("writing the delivery log: %w", err)
	}
	defer tx.Rollback()
	var sent any
	if status == StatusSent {
		sent = now
	}
	tried := 0
	if outcome != "" {
		tried = 1
		if _, err := tx.ExecContext(ctx, `INSERT INTO deliver_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.Subscriber, k.Day, k.Format, start.UTC().Truncate(time.Microsecond), now.Sub(start).Microseconds(),
			outcome, errText, resp); err != nil {
			return Record{}, fmt.Errorf("writing the delivery log: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE deliver_log SET status = ?, attempts = attempts + ?, last_error = ?,
		response = CASE WHEN ? = '' THEN response ELSE ? END, updated_at = ?, sent_at = coalesce(?, sent_at)
		WHERE subscriber = ? AND day = ? AND format = ?`,
		string(status), tried, errText, resp, resp, now, sent, k.Subscriber, k.Day, k.Format); err != nil {
		return Record{}, fmt.Errorf("writing the delivery log: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Record{}, fmt.Errorf("writing the delivery log: %w", err)
	}
	r, _, err := d.get(ctx, k)
	return r, err
}

// Filter selects rows of the delivery log. Zero fields select all.
type Filter struct {
	Subscriber string
	Format     string
	// From and To bound the day, both included.
	From, To time.Time
	// Status selects rows in any of these states.
	Status []Status
	// Limit caps the rows returned, newest day first. 0: no cap.
	Limit int
}

// List returns the rows of the delivery log that f selects, newest day
// first, then by subscriber and format.
func (d *Deliverer) List(ctx context.Context, f Filter) ([]Record, error) {
	var where []string
	var args []any
	if f.Subscriber != "" {
		where, args = append(where, "subscriber = ?"), append(args, f.Subscriber)
	}
	if f.Format != "" {
		where, args = append(where, "format = ?"), append(args, f.Format)
	}
	if !f.From.IsZero() {
		y, m, dd := f.From.Date()
		where, args = append(where, "day >= ?"), append(args, time.Date(y, m, dd, 0, 0, 0, 0, time.UTC))
	}
	if !f.To.IsZero() {
		y, m, dd := f.To.Date()
		where, args = append(where, "day <= ?"), append(args, time.Date(y, m, dd, 0, 0, 0, 0, time.UTC))
	}
	if len(f.Status) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(f.Status)), ", ")
		where = append(where, "status IN ("+ph+")")
		for _, s := range f.Status {
			args = append(args, string(s))
		}
	}
	q := `SELECT ` + recordColumns + ` FROM deliver_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY day DESC, subscriber, format"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the delivery log: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("reading the delivery log: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Get returns key's row of the delivery log; false when there is none.
func (d *Deliverer) Get(ctx context.Context, key Key) (Record, bool, error) {
	key, err := key.normalize()
	if err != nil {
		return Record{}, false, err
	}
	return d.get(ctx, key)
}

// Attempts returns key's SMTP attempts, oldest first.
func (d *Deliverer) Attempts(ctx context.Context, key Key) ([]Attempt, error) {
	key, err := key.normalize()
	if err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT attempted_at, duration_us, outcome, error, response FROM deliver_attempts
		WHERE subscriber = ? AND day = ? AND format = ? ORDER BY attempted_at, rowid`, key.Subscriber, key.Day, key.Format)
	if err != nil {
		return nil, fmt.Errorf("reading the delivery attempts: %w", err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		a := Attempt{Key: key}
		var us int64
		if err := rows.Scan(&a.At, &us, &a.Outcome, &a.Error, &a.Response); err != nil {
			return nil, fmt.Errorf("reading the delivery attempts: %w", err)
		}
		a.At = a.At.UTC()
		a.Duration = time.Duration(us) * time.Microsecond
		out = append(out, a)
	}
	return out, rows.Err()
}
