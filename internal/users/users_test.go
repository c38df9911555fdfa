package users_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/users"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast are parameters that keep the tests quick; the format and the code
// path are those of DefaultParams.
var fast = users.Params{Memory: 64, Time: 1, Threads: 1}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t *testing.T) (*users.Store, *clock) {
	t.Helper()
	db, err := dbfile.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	s, err := users.Open(t.Context(), users.Config{DB: db, Params: fast, SessionTTL: 8 * time.Hour, IdleTimeout: 30 * time.Minute, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestHash(t *testing.T) {
	h := users.Hash([]byte("correct horse battery"), users.DefaultParams)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("hash %q: want the PHC string of argon2id with the default parameters", h)
	}
	if h2 := users.Hash([]byte("correct horse battery"), users.DefaultParams); h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, c := range []struct {
		pw   string
		want bool
	}{{"correct horse battery", true}, {"correct horse batterY", false}, {"", false}} {
		ok, err := users.Verify([]byte(c.pw), h)
		if err != nil || ok != c.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", c.pw, ok, err, c.want)
		}
	}
	for _, bad := range []string{"", "$2y$10$abc", "$argon2id$v=19$m=1,t=1,p=1$!!$!!", "$argon2id$v=18$m=64,t=1,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"} {
		if ok, err := users.Verify([]byte("x"), bad); ok || err == nil {
			t.Errorf("Verify against %q = %v, %v; want an error", bad, ok, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	if _, err := s.Add(ctx, "alice", users.Analyst, []byte("alice's long password")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "alice", users.Viewer, []byte("another long password")); !errors.Is(err, users.ErrExists) {
		t.Errorf("second alice: %v, want ErrExists", err)
	}
	for _, c := range []struct{ name, role, pw string }{
		{"Bob", "viewer", "long enough password"}, {"bob", "boss", "long enough password"}, {"bob", "viewer", "short"},
		{"-bob", "viewer", "long enough password"},
	} {
		if _, err := s.Add(ctx, c.name, users.Role(c.role), []byte(c.pw)); !errors.Is(err, users.ErrInvalid) {
			t.Errorf("Add(%q, %q, %q): %v, want ErrInvalid", c.name, c.role, c.pw, err)
		}
	}
	u, err := s.Authenticate(ctx, "alice", []byte("alice's long password"))
	if err != nil || u.Name != "alice" || u.Role != users.Analyst {
		t.Fatalf("Authenticate: %+v, %v", u, err)
	}
	for _, c := range []struct{ name, pw string }{{"alice", "wrong password!!"}, {"mallory", "alice's long password"}, {"alice", strings.Repeat("x", 5000)}} {
		if _, err := s.Authenticate(ctx, c.name, []byte(c.pw)); !errors.Is(err, users.ErrBadCredentials) {
			t.Errorf("Authenticate(%q, %.10q…): %v, want ErrBadCredentials", c.name, c.pw, err)
		}
	}
	yes := true
	if _, err := s.Update(ctx, "alice", nil, nil, &yes); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice", []byte("alice's long password")); !errors.Is(err, users.ErrBadCredentials) {
		t.Errorf("disabled user: %v, want ErrBadCredentials", err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || !list[0].Disabled {
		t.Errorf("List: %+v, %v", list, err)
	}
}

func TestSessions(t *testing.T) {
	s, c := open(t)
	ctx := t.Context()
	if _, err := s.Add(ctx, "vic", users.Viewer, []byte("vic's long password")); err != nil {
		t.Fatal(err)
	}
	token, sess, err := s.CreateSession(ctx, "vic")
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 40 || sess.CSRF == "" || sess.CSRF == token {
		t.Fatalf("token %q, CSRF %q", token, sess.CSRF)
	}
	got, err := s.Session(ctx, token)
	if err != nil || got.User.Name != "vic" || got.User.Role != users.Viewer || got.CSRF != sess.CSRF {
		t.Fatalf("Session: %+v, %v", got, err)
	}
	if !users.CheckCSRF(token, sess.CSRF) || users.CheckCSRF(token, sess.CSRF[1:]) || users.CheckCSRF(token, "") {
		t.Error("CheckCSRF accepts the wrong token or refuses the right one")
	}
	for _, bad := range []string{"", token[1:], token + "x", strings.Repeat("A", 43)} {
		if _, err := s.Session(ctx, bad); !errors.Is(err, users.ErrNoSession) {
			t.Errorf("Session(%q): %v, want ErrNoSession", bad, err)
		}
	}

	// Idle: used every 20 minutes it lives on; 31 minutes idle end it.
	for range 3 {
		c.add(20 * time.Minute)
		if _, err := s.Session(ctx, token); err != nil {
			t.Fatalf("after 20 minutes: %v", err)
		}
	}
	c.add(31 * time.Minute)
	if _, err := s.Session(ctx, token); !errors.Is(err, users.ErrNoSession) {
		t.Errorf("idle session: %v, want ErrNoSession", err)
	}
	// Check finds a session as Session does but does not keep it alive.
	token, _, err = s.CreateSession(ctx, "vic")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c.add(10 * time.Minute)
		if got, err := s.Check(ctx, token); err != nil || got.User.Name != "vic" {
			t.Fatalf("Check after 10 minutes: %+v, %v", got, err)
		}
	}
	if _, err := s.Check(ctx, token[1:]); !errors.Is(err, users.ErrNoSession) {
		t.Errorf("Check of a wrong token: %v", err)
	}
	c.add(11 * time.Minute)
	if _, err := s.Check(ctx, token); !errors.Is(err, users.ErrNoSession) {
		t.Errorf("Check of a session idle 31 minutes, checked all along: %v, want ErrNoSession", err)
	}

	// Absolute: 8 hours, however busy.
	token, _, err = s.CreateSession(ctx, "vic")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8*3-1; i++ {
		c.add(20 * time.Minute)
		if _, err := s.Session(ctx, token); err != nil {
			t.Fatalf("after %d minutes: %v", (i+1)*20, err)
		}
	}
	c.add(20 * time.Minute)
	if _, err := s.Session(ctx, token); !errors.Is(err, users.ErrNoSession) {
		t.Errorf("session of 8 hours: %v, want ErrNoSession", err)
	}

	// Logout, and a change of role, end sessions.
	t1, _, _ := s.CreateSession(ctx, "vic")
	t2, _, _ := s.CreateSession(ctx, "vic")
	if err := s.EndSession(ctx, t1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, t1); !errors.Is(err, users.ErrNoSession) {
		t.Errorf("after logout: %v", err)
	}
	if _, err := s.Session(ctx, t2); err != nil {
		t.Errorf("the other session: %v", err)
	}
	admin := users.Admin
	if _, err := s.Update(ctx, "vic", &admin, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, t2); !errors.Is(err, users.ErrNoSession) {
		t.Errorf("after a change of role: %v, want ErrNoSession", err)
	}
	c.add(24 * time.Hour)
	if _, _, err := s.CreateSession(ctx, "vic"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeSessions(ctx); err != nil || n != 0 {
		t.Errorf("PurgeSessions: %d, %v; want 0 (the live one stays)", n, err)
	}
}

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		role                 users.Role
		sees, changes, admin bool
	}{{users.Admin, true, true, true}, {users.Analyst, true, true, false}, {users.Viewer, false, false, false}} {
		if c.role.SeesAddresses() != c.sees || c.role.Changes() != c.changes || c.role.Administers() != c.admin {
			t.Errorf("%s: sees %v changes %v administers %v", c.role, c.role.SeesAddresses(), c.role.Changes(), c.role.Administers())
		}
	}
	if r, err := users.ParseRole(" Analyst "); err != nil || r != users.Analyst {
		t.Errorf("ParseRole: %q, %v", r, err)
	}
	if _, err := users.ParseRole("root"); err == nil {
		t.Error("ParseRole(root): no error")
	}
}

// TestCallerErrors: each mistake of the caller is an error of its class,
// whatever the timing: a name added by several at once is ErrExists for
// all but one (not an error of the database's constraint), an unknown
// user ErrNotFound, a bad role, name or password ErrInvalid.
func TestCallerErrors(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.Add(ctx, "dana", users.Viewer, []byte("dana's long password"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	added := 0
	for err := range errs {
		switch {
		case err == nil:
			added++
		case !errors.Is(err, users.ErrExists) || err.Error() != "user dana: already exists":
			t.Errorf("adding dana at once with others: %v; want ErrExists", err)
		}
	}
	if added != 1 {
		t.Errorf("dana added %d times", added)
	}
	role := users.Role("root")
	pw := []byte("a long enough password")
	for _, c := range []struct {
		err  error
		want error
		msg  string
	}{
		{func() error { _, err := s.Update(ctx, "nobody", nil, pw, nil); return err }(), users.ErrNotFound, "user nobody: not found"},
		{func() error { _, err := s.Add(ctx, "erin", role, pw); return err }(), users.ErrInvalid, `role "root": want admin, analyst or viewer`},
		{func() error { _, err := s.Update(ctx, "dana", &role, nil, nil); return err }(), users.ErrInvalid, `role "root"`},
		{func() error { _, err := s.Add(ctx, "Erin!", users.Viewer, pw); return err }(), users.ErrInvalid, `user name "Erin!"`},
		{func() error { _, err := s.Add(ctx, "erin", users.Viewer, []byte("short")); return err }(), users.ErrInvalid, "password: shorter than"},
	} {
		if !errors.Is(c.err, c.want) || !strings.Contains(c.err.Error(), c.msg) {
			t.Errorf("%v: want %v with %q", c.err, c.want, c.msg)
		}
	}
}
