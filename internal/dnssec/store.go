package dnssec

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/migrate"
)

// Component is the migration component of the key store's tables.
const Component = "dnssec"

var migrations = []migrate.Migration{{Version: 1, Name: "dnssec keys", SQL: `
CREATE TABLE dnssec_keys (
	case_name  VARCHAR NOT NULL,
	tag        INTEGER NOT NULL,
	algorithm  INTEGER NOT NULL,
	flags      INTEGER NOT NULL,
	public_key VARCHAR NOT NULL,
	file       VARCHAR NOT NULL,
	state      VARCHAR NOT NULL,
	created    TIMESTAMP NOT NULL,
	activated  TIMESTAMP,
	retired    TIMESTAMP,
	removed    TIMESTAMP,
	PRIMARY KEY (case_name, public_key)
)`}}

// Errors of the store, for the callers to map (exit codes, HTTP statuses).
var (
	// ErrNotFound: the case has no keys, or no key of that tag.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the keys' states do not allow the step (a rollover
	// already started, none to finish, a key imported twice).
	ErrConflict = errors.New("conflict")
	// ErrTooEarly: a rollover finished before the caches can hold the new
	// key (Finish without Force).
	ErrTooEarly = errors.New("too early")
)

// Config configures a Store. DB and Dir are required.
type Config struct {
	// DB is the takedown database; Open brings its dnssec_keys table up
	// to date (migration component "dnssec").
	DB *sql.DB
	// Dir holds the private key files (<data_dir>/dnssec); Open makes it,
	// mode 0700.
	Dir string
	// Now gives the time of the keys' states; nil means time.Now.
	Now func() time.Time
}

// Store keeps the keys of the cases: their private parts as BIND files in
// Dir (mode 0600; a file that group or others may read is refused), their
// states and times in the database. Its methods are safe for concurrent
// use; the changes of one process are serialised.
type Store struct {
	db  *sql.DB
	dir string
	now func() time.Time
	mu  sync.Mutex // one change at a time
}

// Info is a key as the store lists it (`takedown dnssec keys`).
type Info struct {
	Case          string    `json:"case"`
	Tag           uint16    `json:"tag"`
	Algorithm     uint8     `json:"algorithm"`
	AlgorithmName string    `json:"algorithm_name"`
	Flags         uint16    `json:"flags"`
	State         State     `json:"state"`
	Created       time.Time `json:"created"`
	Activated     time.Time `json:"activated,omitzero"`
	Retired       time.Time `json:"retired,omitzero"`
	Removed       time.Time `json:"removed,omitzero"`
	// File is the private key file, in the store's directory.
	File      string `json:"file"`
	PublicKey string `json:"public_key"`
}

// Open brings the store's schema up to date, makes its directory and
// returns the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DB == nil || cfg.Dir == "" {
		return nil, errors.New("dnssec: no database or no key directory given")
	}
	if err := migrate.Apply(ctx, cfg.DB, Component, migrations); err != nil {
		return nil, fmt.Errorf("dnssec: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dnssec: making the key directory: %w", err)
	}
	s := &Store{db: cfg.DB, dir: cfg.Dir, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Dir is the directory of the private key files.
func (s *Store) Dir() string { return s.dir }

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Second) }

const infoColumns = `case_name, tag, algorithm, flags, public_key, file, state, created, activated, retired, removed`

// List returns the keys of the case named, or of every case for "",
// removed ones too, by case and age.
func (s *Store) List(ctx context.Context, caseName string) ([]Info, error) {
	q := `SELECT ` + infoColumns + ` FROM dnssec_keys`
	var args []any
	if caseName != "" {
		q += ` WHERE case_name = ?`
		args = append(args, caseName)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY case_name, created, rowid`, args...)
	if err != nil {
		return nil, fmt.Errorf("dnssec: listing keys: %w", err)
	}
	defer rows.Close()
	var out []Info
	for rows.Next() {
		var in Info
		var tag, alg, flags int
		var act, ret, rem sql.NullTime
		if err := rows.Scan(&in.Case, &tag, &alg, &flags, &in.PublicKey, &in.File, &in.State, &in.Created, &act, &ret, &rem); err != nil {
			return nil, fmt.Errorf("dnssec: listing keys: %w", err)
		}
		in.Tag, in.Algorithm, in.Flags = uint16(tag), uint8(alg), uint16(flags)
		in.AlgorithmName = AlgorithmName(in.Algorithm)
		in.Created = in.Created.UTC()
		in.Activated, in.Retired, in.Removed = act.Time.UTC(), ret.Time.UTC(), rem.Time.UTC()
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dnssec: listing keys: %w", err)
	}
	return out, nil
}

// Keys returns the keys of the case named that are not removed, oldest
// first, each with its private key read from its file: a file missing,
// damaged, readable by group or others, or not the key the database names
// is an error that names it.
func (s *Store) Keys(ctx context.Context, caseName string) ([]Key, error) {
	infos, err := s.List(ctx, caseName)
	if err != nil {
		return nil, err
	}
	var out []Key
	for _, in := range infos {
		if in.State == StateRemoved {
			continue
		}
		k, err := s.load(in)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, nil
}

// AllKeys returns Keys of every case that has some.
func (s *Store) AllKeys(ctx context.Context) (map[string][]Key, error) {
	infos, err := s.List(ctx, "")
	if err != nil {
		return nil, err
	}
	out := map[string][]Key{}
	for _, in := range infos {
		if in.State == StateRemoved {
			continue
		}
		k, err := s.load(in)
		if err != nil {
			return nil, err
		}
		out[in.Case] = append(out[in.Case], *k)
	}
	return out, nil
}

// load reads the private key of in from its file, checked.
func (s *Store) load(in Info) (*Key, error) {
	path := filepath.Join(s.dir, in.File)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dnssec: key %d of case %s: %w", in.Tag, in.Case, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("dnssec: key %d of case %s: %w", in.Tag, in.Case, err)
	}
	if m := st.Mode(); !m.IsRegular() || m.Perm()&0o077 != 0 {
		return nil, fmt.Errorf("dnssec: key file %s has mode %s: a private key must be readable by its owner alone (chmod 600 it)", path, m)
	}
	data := make([]byte, maxKeyFile+1)
	n, err := f.Read(data)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("dnssec: reading key file %s: %w", path, err)
	}
	alg, signer, err := ParsePrivate(data[:n], path)
	if err != nil {
		return nil, err
	}
	k, err := keyOf(alg, signer)
	if err != nil {
		return nil, fmt.Errorf("dnssec: key file %s: %w", path, err)
	}
	if alg != in.Algorithm || k.PublicKey != in.PublicKey {
		return nil, fmt.Errorf("dnssec: key file %s holds a key of algorithm %d and tag %d, not key %d (algorithm %d) of case %s that the database names: %w",
			path, alg, k.Tag(), in.Tag, in.Algorithm, in.Case, ErrKeyFile)
	}
	k.Flags, k.State, k.Created, k.Activated, k.Retired = in.Flags, in.State, in.Created, in.Activated, in.Retired
	return k, nil
}

// fileName is the name of the private key file of k for a case, after
// BIND's K<name>+<algorithm>+<tag>.private.
func fileName(caseName string, k *Key) string {
	return fmt.Sprintf("K%s+%03d+%05d.private", caseName, k.Algorithm, k.Tag())
}

// add writes k's private key file and its row, in state st at now.
func (s *Store) add(ctx context.Context, tx *sql.Tx, caseName string, k *Key, st State, now time.Time) (Info, error) {
	data, err := FormatPrivate(k)
	if err != nil {
		return Info{}, err
	}
	name := fileName(caseName, k)
	path := filepath.Join(s.dir, name)
	if err := writePrivate(path, data); err != nil {
		return Info{}, err
	}
	k.State, k.Created = st, now
	if st == StateActive {
		k.Activated = now
	}
	var act any
	if !k.Activated.IsZero() {
		act = k.Activated
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dnssec_keys (`+infoColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)`,
		caseName, int(k.Tag()), int(k.Algorithm), int(k.Flags), k.PublicKey, name, string(st), now, act); err != nil {
		os.Remove(path)
		if strings.Contains(err.Error(), "onstraint") {
			return Info{}, fmt.Errorf("dnssec: key %d is a key of case %s already: %w", k.Tag(), caseName, ErrConflict)
		}
		return Info{}, fmt.Errorf("dnssec: recording key %d of case %s: %w", k.Tag(), caseName, err)
	}
	return Info{Case: caseName, Tag: k.Tag(), Algorithm: k.Algorithm, AlgorithmName: AlgorithmName(k.Algorithm), Flags: k.Flags,
		State: st, Created: now, Activated: k.Activated, File: name, PublicKey: k.PublicKey}, nil
}

// writePrivate writes a private key file, mode 0600, synced; it refuses to
// replace a file.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("dnssec: key file %s exists already: %w", path, ErrConflict)
		}
		return fmt.Errorf("dnssec: writing key file: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("dnssec: writing key file %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// change runs fn in a transaction with the keys of the case named that are
// not removed, oldest first, under the store's lock.
func (s *Store) change(ctx context.Context, caseName string, fn func(tx *sql.Tx, keys []Info, now time.Time) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	infos, err := s.List(ctx, caseName)
	if err != nil {
		return err
	}
	infos = slices.DeleteFunc(infos, func(in Info) bool { return in.State == StateRemoved })
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("dnssec: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx, infos, s.clock()); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("dnssec: %w", err)
	}
	return nil
}

// Ensure gives the case named an active key of algorithm alg if it has no
// key (one not removed), and reports whether it made one. serve calls it
// for every case that signs.
func (s *Store) Ensure(ctx context.Context, caseName string, alg uint8) (made bool, err error) {
	err = s.change(ctx, caseName, func(tx *sql.Tx, keys []Info, now time.Time) error {
		if len(keys) > 0 {
			return nil
		}
		k, err := NewKey(alg)
		if err != nil {
			return err
		}
		_, err = s.add(ctx, tx, caseName, k, StateActive, now)
		made = err == nil
		return err
	})
	return made, err
}

// Import adds a key read from a private key file (dnssec-keygen's, with
// algorithm 13 or 15) to the case named: active if the case has no key,
// so that its zones are signed with it; else refused (start a rollover to
// it instead: Start with the key).
func (s *Store) Import(ctx context.Context, caseName string, data []byte, file string) (Info, error) {
	k, err := ReadKey(data, file)
	if err != nil {
		return Info{}, err
	}
	var in Info
	err = s.change(ctx, caseName, func(tx *sql.Tx, keys []Info, now time.Time) error {
		if len(keys) > 0 {
			return fmt.Errorf("dnssec: case %s has keys already (%s): roll over to the key instead: %w", caseName, tags(keys), ErrConflict)
		}
		in, err = s.add(ctx, tx, caseName, k, StateActive, now)
		return err
	})
	return in, err
}

// tags lists the keys' tags and states for an error.
func tags(keys []Info) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", k.Tag, k.State)
	}
	return b.String()
}

// Start begins a rollover of the case named (a double-signature rollover
// of its combined signing key): it publishes a new key and makes it active
// beside the old one, so that every answer is signed by both, and the
// zones validate whether a parent holds the old DS, the new one, or both.
// The new key is next (a key read from a private key file, e.g. made by
// dnssec-keygen), or nil to make one of algorithm alg. It refuses while a
// rollover is under way, and for a case without keys.
func (s *Store) Start(ctx context.Context, caseName string, alg uint8, next *Key) (Info, error) {
	var in Info
	err := s.change(ctx, caseName, func(tx *sql.Tx, keys []Info, now time.Time) error {
		active := 0
		for _, k := range keys {
			if k.State == StateActive {
				active++
			}
		}
		switch {
		case len(keys) == 0:
			return fmt.Errorf("dnssec: case %s has no keys: its zones are not signed: %w", caseName, ErrNotFound)
		case active != 1 || len(keys) != 1:
			return fmt.Errorf("dnssec: case %s is rolling its keys already (%s): finish that rollover first: %w", caseName, tags(keys), ErrConflict)
		}
		k := next
		if k == nil {
			var err error
			if k, err = NewKey(alg); err != nil {
				return err
			}
		}
		var err error
		in, err = s.add(ctx, tx, caseName, k, StateActive, now)
		return err
	})
	return in, err
}

// FinishOptions are the checks of Finish.
type FinishOptions struct {
	// Wait is how long after the new key was published the old one may
	// go: the longest of the parent's DS TTL, the DNSKEY TTL and the
	// answers' TTL, so that no cache holds a DS or a DNSKEY set that
	// only the old key validates.
	Wait time.Duration
	// Check, if set, is asked before the old keys go, with the new key
	// and the old ones; an error refuses (e.g. a zone whose parent holds
	// only the old DS).
	Check func(ctx context.Context, next Info, old []Info) error
	// Force skips Wait and Check.
	Force bool
}

// Finish ends the rollover of the case named: the old keys stop signing and
// leave the DNSKEY set (retired and removed at once: every answer is
// signed by the new key already). Unless Force, it refuses with what
// Check returns, then with ErrTooEarly before Wait has passed since the
// new key was published. It returns the keys retired.
func (s *Store) Finish(ctx context.Context, caseName string, o FinishOptions) ([]Info, error) {
	var old []Info
	err := s.change(ctx, caseName, func(tx *sql.Tx, keys []Info, now time.Time) error {
		if len(keys) == 0 {
			return fmt.Errorf("dnssec: case %s has no keys: its zones are not signed: %w", caseName, ErrNotFound)
		}
		if len(keys) < 2 {
			return fmt.Errorf("dnssec: case %s has one key (%s), no rollover to finish: %w", caseName, tags(keys), ErrConflict)
		}
		next := keys[len(keys)-1]
		old = keys[:len(keys)-1]
		if !o.Force {
			if o.Check != nil {
				if err := o.Check(ctx, next, old); err != nil {
					return err
				}
			}
			if ready := next.Created.Add(o.Wait); now.Before(ready) {
				return fmt.Errorf("dnssec: case %s: key %d was published at %s: caches may hold the old DS or DNSKEY set until %s (in %s); finish then, or with --force: %w",
					caseName, next.Tag, next.Created.Format(time.RFC3339), ready.Format(time.RFC3339), ready.Sub(now).Round(time.Second), ErrTooEarly)
			}
		}
		for i := range old {
			if _, err := tx.ExecContext(ctx, `UPDATE dnssec_keys SET state = ?, retired = coalesce(retired, ?), removed = ? WHERE case_name = ? AND public_key = ?`,
				string(StateRemoved), now, now, caseName, old[i].PublicKey); err != nil {
				return fmt.Errorf("dnssec: removing key %d of case %s: %w", old[i].Tag, caseName, err)
			}
			old[i].State, old[i].Removed = StateRemoved, now
			if old[i].Retired.IsZero() {
				old[i].Retired = now
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return old, nil
}
