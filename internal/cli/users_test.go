package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/users"
)

// runIn runs takedown with standard input.
func runIn(t *testing.T, cfg, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config", cfg, "--actor", "tester"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running takedown %v: %v", args, err)
	}
	return result{o.String(), e.String(), code}
}

// TestUsers: users are added from standard input or a file, never from a
// flag's value; through the database, and through a running serve, whose
// dashboard then lets them log in.
func TestUsers(t *testing.T) {
	cfg, _, addr := setup(t)
	if r := runIn(t, cfg, "alice's long password\n", "users", "add", "alice", "--role", "analyst"); r.code != 0 || r.stdout != "added user alice (analyst)\n" {
		t.Fatalf("add from stdin: %+v", r)
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"x\n", []string{"users", "add", "bob", "--role", "viewer", "--password", "a flag value"}, "unknown flag: --password"},
		{"short\n", []string{"users", "add", "bob", "--role", "viewer"}, "shorter than 10 characters"},
		{"long enough password\n", []string{"users", "add", "bob", "--role", "root"}, "want admin, analyst or viewer"},
		{"long enough password\n", []string{"users", "add", "Bob!", "--role", "viewer"}, "user name"},
		{"another long password\n", []string{"users", "add", "alice", "--role", "viewer"}, "already exists"},
		{"", []string{"users", "add", "bob", "--role", "viewer"}, "no password"},
	} {
		r := runIn(t, cfg, tc.stdin, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("bob's long password\nignored line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, cfg, "users", "add", "bob", "--role", "viewer", "--password-file", pwFile)

	// While serve runs, through its API.
	startServer(t, cfg, addr)
	if r := runIn(t, cfg, "carol's long password\n", "users", "add", "carol", "--role", "admin"); r.code != 0 {
		t.Fatalf("add through serve: %+v", r)
	}
	mustRun(t, cfg, "users", "set", "alice", "--role", "viewer")
	// The server's refusals: the users package's message and the exit
	// code of its class, as without a server.
	for _, c := range []struct {
		code  int
		stdin string
		args  []string
		want  string
	}{
		{4, "another long password\n", []string{"users", "add", "alice", "--role", "viewer"}, "takedown: user alice: already exists\n"},
		{3, "", []string{"users", "set", "nobody", "--role", "viewer"}, "takedown: user nobody: not found\n"},
		{2, "", []string{"users", "set", "alice", "--role", "root"}, `takedown: --role: role "root": want admin, analyst or viewer: invalid input` + "\n"},
		{1, "short\n", []string{"users", "set", "alice", "--password"}, "takedown: password: shorter than 10 characters: invalid input\n"},
	} {
		if r := runIn(t, cfg, c.stdin, c.args...); r.code != c.code || r.stderr != c.want {
			t.Errorf("%v through serve: exit %d, stderr %q; want %d, %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
	var list []users.User
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "users", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]users.Role{}
	for _, u := range list {
		got[u.Name] = u.Role
	}
	if len(got) != 3 || got["alice"] != users.Viewer || got["bob"] != users.Viewer || got["carol"] != users.Admin {
		t.Errorf("users %v", got)
	}
	// Every change names --actor in the audit log, through serve as in
	// the database.
	var audit []registry.AuditEntry
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "audit", "list", "--json")), &audit); err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, a := range audit {
		acts = append(acts, a.Action+" "+a.Object+" by "+a.Actor)
	}
	if want := "user.add user:alice by tester,user.add user:bob by tester,user.add user:carol by tester,user.update user:alice by tester"; strings.Join(acts, ",") != want {
		t.Errorf("audit log:\n%s\nwant %s", strings.Join(acts, "\n"), want)
	}
	// bob logs in with the password of his file (its first line).
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", "http://"+addr+"/ui/api/login", strings.NewReader(`{"name":"bob","password":"bob's long password"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("bob's login: %s", resp.Status)
	}
	resp, err = c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/ui/" {
		t.Errorf("GET / logged in: %s at %s, want the dashboard", resp.Status, resp.Request.URL)
	}
	c.CloseIdleConnections()
}
