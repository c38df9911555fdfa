// Package users keeps the people who log in to the web dashboard: their
// names, roles and password hashes, and their sessions, in takedown's
// database (tables users and users_sessions, migrations component
// "users").
//
// Passwords are hashed with Argon2id (RFC 9106) and a random salt, and kept
// as a PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash), so that the cost
// can rise later without invalidating old hashes. Session tokens are 256
// random bits; the database keeps only their SHA-256, so a copy of the
// database does not give a session. Each session has an absolute expiry
// and an idle timeout.
package users

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/takedown-project/takedown/internal/migrate"
)

// Component is the name of the users' migrations in schema_migrations.
const Component = "users"

var migrations = []migrate.Migration{{
	Version: 1,
	Name:    "users and sessions",
	SQL: `
CREATE TABLE users (
	name       VARCHAR PRIMARY KEY,
	role       VARCHAR NOT NULL,
	password   VARCHAR NOT NULL,
	created    TIMESTAMP NOT NULL,
	disabled   BOOLEAN NOT NULL,
	last_login TIMESTAMP
);
CREATE TABLE users_sessions (
	id_hash   VARCHAR PRIMARY KEY,
	user_name VARCHAR NOT NULL,
	created   TIMESTAMP NOT NULL,
	expires   TIMESTAMP NOT NULL,
	seen      TIMESTAMP NOT NULL
);`,
}}

// Role is what a user may do.
type Role string

// The roles, from most to least.
const (
	// Admin may do everything, users included.
	Admin Role = "admin"
	// Analyst reads everything, infected addresses included, and changes
	// cases and domains.
	Analyst Role = "analyst"
	// Viewer reads aggregates only: counts, maps, trends, cases and domain
	// states; never an IP address.
	Viewer Role = "viewer"
)

// Roles lists the roles, from most to least.
var Roles = []Role{Admin, Analyst, Viewer}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	switch r {
	case Admin, Analyst, Viewer:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want admin, analyst or viewer: %w", s, ErrInvalid)
}

// SeesAddresses reports whether the role may see infected hosts' IP
// addresses (and other addresses: name servers, subscribers' CIDRs).
func (r Role) SeesAddresses() bool { return r == Admin || r == Analyst }

// Changes reports whether the role may change cases and domains.
func (r Role) Changes() bool { return r == Admin || r == Analyst }

// Administers reports whether the role may manage users.
func (r Role) Administers() bool { return r == Admin }

// Errors that callers tell apart.
var (
	ErrInvalid  = errors.New("invalid input")
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
	// ErrBadCredentials: unknown user, wrong password or disabled user;
	// which one is not said.
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrNoSession: no such session, or it expired.
	ErrNoSession = errors.New("no session or session expired")
)

// Params are the Argon2id parameters of new hashes.
type Params struct {
	// Memory in KiB, Time the number of passes, Threads the lanes.
	Memory  uint32
	Time    uint32
	Threads uint8
}

// DefaultParams are RFC 9106's second recommended option: 64 MiB, 3
// passes (about 0.1 s on one core of 2024), with 2 lanes.
var DefaultParams = Params{Memory: 64 * 1024, Time: 3, Threads: 2}

// Defaults of Config fields left zero.
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultIdleTimeout = time.Hour
)

// Config configures a Store. The zero value of every field but DB works.
type Config struct {
	// DB is takedown's database.
	DB *sql.DB
	// Params of new password hashes; zero means DefaultParams. Tests use
	// small ones.
	Params Params
	// SessionTTL is how long a session lasts at most; default 12 hours.
	SessionTTL time.Duration
	// IdleTimeout ends a session not used for that long; default 1 hour.
	IdleTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// User is one person who logs in.
type User struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Created   time.Time `json:"created"`
	Disabled  bool      `json:"disabled"`
	LastLogin time.Time `json:"last_login,omitzero"`
}

// Session is a logged-in user's session.
type Session struct {
	User    User
	Created time.Time
	Expires time.Time
	// CSRF is the token every change in the session must carry: derived
	// from the session token, so it is not stored.
	CSRF string
}

// Store keeps the users and their sessions. Its methods are safe for
// concurrent use.
type Store struct {
	db     *sql.DB
	params Params
	ttl    time.Duration
	idle   time.Duration
	now    func() time.Time
	// hashing bounds the Argon2id computations in flight: each takes
	// Params.Memory, and a flood of logins must not take the machine's.
	hashing chan struct{}

	dummyOnce sync.Once
	dummy     string // a hash to check against for unknown users
}

// Open brings the users' schema in cfg.DB up to date and returns a Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("users: no database given")
	}
	if err := migrate.Apply(ctx, cfg.DB, Component, migrations); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	s := &Store{db: cfg.DB, params: cfg.Params, ttl: cfg.SessionTTL, idle: cfg.IdleTimeout, now: cfg.Now,
		hashing: make(chan struct{}, max(1, runtime.NumCPU()))}
	if s.params == (Params{}) {
		s.params = DefaultParams
	}
	if s.ttl <= 0 {
		s.ttl = DefaultSessionTTL
	}
	if s.idle <= 0 {
		s.idle = DefaultIdleTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// CheckName checks a user name: 1 to 64 lower-case letters, digits, '.',
// '_', '-' and '@', starting with a letter or digit.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("user name %q: want 1 to 64 lower-case letters, digits, '.', '_', '-' or '@', starting with a letter or digit: %w", name, ErrInvalid)
	}
	return nil
}

// MinPassword and MaxPassword bound a password's length in characters
// and bytes.
const (
	MinPassword = 10
	MaxPassword = 1024
)

// CheckPassword checks a new password: at least MinPassword characters,
// at most MaxPassword bytes, valid UTF-8.
func CheckPassword(pw []byte) error {
	switch {
	case !utf8.Valid(pw):
		return fmt.Errorf("password: not valid UTF-8: %w", ErrInvalid)
	case utf8.RuneCount(pw) < MinPassword:
		return fmt.Errorf("password: shorter than %d characters: %w", MinPassword, ErrInvalid)
	case len(pw) > MaxPassword:
		return fmt.Errorf("password: longer than %d bytes: %w", MaxPassword, ErrInvalid)
	}
	return nil
}

// Hash returns the PHC string of the Argon2id hash of pw with a random
// salt.
func Hash(pw []byte, p Params) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic("users: no randomness: " + err.Error())
	}
	sum := argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum))
}

// Verify reports whether pw matches the PHC string hash, in time that does
// not depend on where they differ.
func Verify(pw []byte, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errors.New("users: not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, fmt.Errorf("users: argon2id version %q", parts[2])
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Memory > 4<<20 || p.Time == 0 || p.Time > 100 || p.Threads == 0 {
		return false, fmt.Errorf("users: argon2id parameters %q", parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("users: argon2id salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, errors.New("users: argon2id hash")
	}
	got := argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// hash and verify take a slot of s.hashing.
func (s *Store) hash(ctx context.Context, pw []byte) (string, error) {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.hashing }()
	return Hash(pw, s.params), nil
}

func (s *Store) verify(ctx context.Context, pw []byte, hash string) (bool, error) {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.hashing }()
	return Verify(pw, hash)
}

// Add adds a user with a role and a password.
func (s *Store) Add(ctx context.Context, name string, role Role, pw []byte) (User, error) {
	if err := CheckName(name); err != nil {
		return User{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return User{}, err
	}
	if err := CheckPassword(pw); err != nil {
		return User{}, err
	}
	h, err := s.hash(ctx, pw)
	if err != nil {
		return User{}, err
	}
	u := User{Name: name, Role: role, Created: s.clock()}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("users: adding %s: %w", name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE name = ?`, name).Scan(&n); err != nil {
		return User{}, fmt.Errorf("users: adding %s: %w", name, err)
	}
	if n > 0 {
		return User{}, fmt.Errorf("user %s: %w", name, ErrExists)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO users VALUES (?, ?, ?, ?, false, NULL)`, name, string(role), h, u.Created); err != nil {
		return User{}, s.addFailed(ctx, name, err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, s.addFailed(ctx, name, err)
	}
	return u, nil
}

// addFailed is the error of an Add whose insert or commit failed: ErrExists
// when the name was taken meanwhile (another Add of the same name between
// this one's check and its insert: the primary key or the commit refuses
// it), else the database's error.
func (s *Store) addFailed(ctx context.Context, name string, err error) error {
	if _, gerr := getUser(ctx, s.db, name); gerr == nil {
		return fmt.Errorf("user %s: %w", name, ErrExists)
	}
	return fmt.Errorf("users: adding %s: %w", name, err)
}

// Update changes a user: a role, a password or being disabled (nil: no
// change). A changed password, role or disabling ends the user's
// sessions.
func (s *Store) Update(ctx context.Context, name string, role *Role, pw []byte, disabled *bool) (User, error) {
	if role != nil {
		if _, err := ParseRole(string(*role)); err != nil {
			return User{}, err
		}
	}
	var h string
	if pw != nil {
		if err := CheckPassword(pw); err != nil {
			return User{}, err
		}
		var err error
		if h, err = s.hash(ctx, pw); err != nil {
			return User{}, err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("users: changing %s: %w", name, err)
	}
	defer tx.Rollback()
	u, err := getUser(ctx, tx, name)
	if err != nil {
		return User{}, err
	}
	if role != nil {
		u.Role = *role
	}
	if disabled != nil {
		u.Disabled = *disabled
	}
	set, args := []string{"role = ?", "disabled = ?"}, []any{string(u.Role), u.Disabled}
	if h != "" {
		set, args = append(set, "password = ?"), append(args, h)
	}
	// DuckDB refuses to update a row of a table with an index and delete
	// rows of it in one transaction in some cases; sessions go first.
	if _, err := tx.ExecContext(ctx, `DELETE FROM users_sessions WHERE user_name = ?`, name); err != nil {
		return User{}, fmt.Errorf("users: changing %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET `+strings.Join(set, ", ")+` WHERE name = ?`, append(args, name)...); err != nil {
		return User{}, fmt.Errorf("users: changing %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("users: changing %s: %w", name, err)
	}
	return u, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getUser(ctx context.Context, q querier, name string) (User, error) {
	var u User
	var last sql.NullTime
	err := q.QueryRowContext(ctx, `SELECT name, role, created, disabled, last_login FROM users WHERE name = ?`, name).
		Scan(&u.Name, &u.Role, &u.Created, &u.Disabled, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("users: reading %s: %w", name, err)
	}
	u.Created = u.Created.UTC()
	if last.Valid {
		u.LastLogin = last.Time.UTC()
	}
	return u, nil
}

// Get returns one user.
func (s *Store) Get(ctx context.Context, name string) (User, error) { return getUser(ctx, s.db, name) }

// List returns the users by name.
func (s *Store) List(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, created, disabled, last_login FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("users: listing: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		var u User
		var last sql.NullTime
		if err := rows.Scan(&u.Name, &u.Role, &u.Created, &u.Disabled, &last); err != nil {
			return nil, fmt.Errorf("users: listing: %w", err)
		}
		u.Created = u.Created.UTC()
		if last.Valid {
			u.LastLogin = last.Time.UTC()
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// dummyHash is a hash to verify against when the user does not exist, so
// that an unknown name takes as long as a wrong password.
func (s *Store) dummyHash() string {
	s.dummyOnce.Do(func() { s.dummy = Hash([]byte("not anybody's password"), s.params) })
	return s.dummy
}

// Authenticate checks a user's password and returns the user. An unknown
// user, a wrong password and a disabled user all give ErrBadCredentials,
// after the same work.
func (s *Store) Authenticate(ctx context.Context, name string, pw []byte) (User, error) {
	var u User
	var h string
	var last sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT name, role, created, disabled, last_login, password FROM users WHERE name = ?`, name).
		Scan(&u.Name, &u.Role, &u.Created, &u.Disabled, &last, &h)
	known := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("users: authenticating: %w", err)
	}
	if !known || len(pw) > MaxPassword {
		h = s.dummyHash()
	}
	ok, verr := s.verify(ctx, pw, h)
	if errors.Is(verr, context.Canceled) || errors.Is(verr, context.DeadlineExceeded) {
		return User{}, verr
	}
	if !known || !ok || verr != nil || u.Disabled || len(pw) > MaxPassword {
		return User{}, ErrBadCredentials
	}
	u.Created = u.Created.UTC()
	if last.Valid {
		u.LastLogin = last.Time.UTC()
	}
	return u, nil
}

// tokenHash is what the database keeps of a session token.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CSRFToken is the CSRF token of the session with token: an HMAC of a
// fixed label under the session token.
func CSRFToken(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("takedown dashboard csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether got is the CSRF token of the session with
// token, in constant time.
func CheckCSRF(token, got string) bool {
	want := CSRFToken(token)
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// CreateSession starts a session of a user and returns its token (for the
// cookie; shown only here) and the session.
func (s *Store) CreateSession(ctx context.Context, name string) (string, Session, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", Session{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	now := s.clock()
	u, err := s.Get(ctx, name)
	if err != nil {
		return "", Session{}, err
	}
	sess := Session{User: u, Created: now, Expires: now.Add(s.ttl), CSRF: CSRFToken(token)}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO users_sessions VALUES (?, ?, ?, ?, ?)`,
		tokenHash(token), name, now, sess.Expires, now); err != nil {
		return "", Session{}, fmt.Errorf("users: creating session: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE users SET last_login = ? WHERE name = ?`, now, name); err != nil {
		return "", Session{}, fmt.Errorf("users: creating session: %w", err)
	}
	return token, sess, nil
}

// Session returns the live session of token with its user: ErrNoSession
// when there is none, it expired (absolute or idle), or its user is
// disabled. It marks the session used.
func (s *Store) Session(ctx context.Context, token string) (Session, error) {
	return s.session(ctx, token, true)
}

// Check is Session without marking the session used: for a long answer
// (the dashboard's live stream) that checks now and then that its session
// still holds, which must not keep an idle session alive.
func (s *Store) Check(ctx context.Context, token string) (Session, error) {
	return s.session(ctx, token, false)
}

func (s *Store) session(ctx context.Context, token string, mark bool) (Session, error) {
	if token == "" || len(token) > 100 {
		return Session{}, ErrNoSession
	}
	id := tokenHash(token)
	var sess Session
	var seen time.Time
	var last sql.NullTime
	u := &sess.User
	err := s.db.QueryRowContext(ctx, `SELECT s.created, s.expires, s.seen, u.name, u.role, u.created, u.disabled, u.last_login
		FROM users_sessions s JOIN users u ON u.name = s.user_name WHERE s.id_hash = ?`, id).
		Scan(&sess.Created, &sess.Expires, &seen, &u.Name, &u.Role, &u.Created, &u.Disabled, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("users: reading session: %w", err)
	}
	now := s.clock()
	if !now.Before(sess.Expires) || !now.Before(seen.Add(s.idle)) || u.Disabled {
		_, _ = s.db.ExecContext(ctx, `DELETE FROM users_sessions WHERE id_hash = ?`, id)
		return Session{}, ErrNoSession
	}
	// Mark it used, at most once a minute: a write per request would be
	// a waste.
	if mark && now.Sub(seen) > time.Minute {
		if _, err := s.db.ExecContext(ctx, `UPDATE users_sessions SET seen = ? WHERE id_hash = ?`, now, id); err != nil {
			return Session{}, fmt.Errorf("users: marking session: %w", err)
		}
	}
	sess.Created, sess.Expires, u.Created = sess.Created.UTC(), sess.Expires.UTC(), u.Created.UTC()
	if last.Valid {
		u.LastLogin = last.Time.UTC()
	}
	sess.CSRF = CSRFToken(token)
	return sess, nil
}

// EndSession ends the session of token (logout). An unknown token is no
// error.
func (s *Store) EndSession(ctx context.Context, token string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM users_sessions WHERE id_hash = ?`, tokenHash(token)); err != nil {
		return fmt.Errorf("users: ending session: %w", err)
	}
	return nil
}

// PurgeSessions deletes the expired sessions and returns how many.
func (s *Store) PurgeSessions(ctx context.Context) (int64, error) {
	now := s.clock()
	res, err := s.db.ExecContext(ctx, `DELETE FROM users_sessions WHERE expires <= ? OR seen <= ?`, now, now.Add(-s.idle))
	if err != nil {
		return 0, fmt.Errorf("users: purging sessions: %w", err)
	}
	return res.RowsAffected()
}
