package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVersion: the values linked in, the Go and DuckDB versions, in both
// forms and through both spellings.
func TestVersion(t *testing.T) {
	cfg, _, _ := setup(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out := mustRun(t, cfg, args...)
		for _, want := range []string{"takedown " + testVersion + "\n", testCommit, testDate, "go1.", "duckdb:  v1."} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: no %q in\n%s", args, want, out)
			}
		}
	}
	for _, args := range [][]string{{"version", "--json"}, {"--version", "--json"}} {
		var v map[string]any
		if err := json.Unmarshal([]byte(mustRun(t, cfg, args...)), &v); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if v["version"] != testVersion || v["commit"] != testCommit || v["date"] != testDate ||
			!strings.HasPrefix(v["go"].(string), "go1.") || !strings.HasPrefix(v["duckdb"].(string), "v1.") ||
			!strings.HasPrefix(v["duckdb_driver"].(string), "v2.") {
			t.Errorf("%v: %v", args, v)
		}
	}
}

// TestExitCodes: the usage errors cobra finds and those the commands find
// (a required flag missing, flags that exclude each other or need each
// other, a bad flag value) exit 2; the rest of the table is checked by
// scenario (local and remote), TestRemoteModeWithoutServer and
// TestUsersExitCodes.
func TestExitCodes(t *testing.T) {
	cfg, _, _ := setup(t)
	for _, c := range []struct {
		code int
		args []string
	}{
		{0, nil},
		{0, []string{"stats"}},
		{2, []string{"bogus"}},
		{2, []string{"stats", "bogus"}},
		{2, []string{"cases", "list", "--bogus"}},
		{2, []string{"cases", "show"}},
		{2, []string{"stats", "hosts", "--limit", "many"}},
		{2, []string{"stats", "hosts", "--by", "planet"}},
		{2, []string{"--mode", "sideways", "cases", "list"}},
		{2, []string{"docs", "man"}},
		{2, []string{"completion", "tcsh"}},
		// Required flags and arguments the commands check themselves.
		{2, []string{"backup"}},
		{2, []string{"config", "check", "--config", ""}},
		{2, []string{"cases", "add", "c1"}},
		{2, []string{"cases", "add", "c1", "--court", "E.D. Va."}},
		{2, []string{"cases", "add-order", "c1", "--type", "tro"}},
		{2, []string{"cases", "add-order", "c1", "--type", "tro", "--issued", "2026-13-01"}},
		{2, []string{"domains", "set-state", "--state", "restrained"}},
		{2, []string{"subscribers", "add", "s1", "--org", "S"}},
		{2, []string{"subscribers", "update", "s1"}},
		{2, []string{"users", "set", "ana"}},
		{2, []string{"users", "add", "Ana!", "--role", "viewer"}},
		{2, []string{"report", "generate", "--date", "2026-11-01", "--out", ""}},
		{2, []string{"report", "trend"}},
		{2, []string{"enrich", "lookup", "192.0.2.1"}},
		{2, []string{"enrich", "lookup", "not-an-address", "--db", "x.mmdb"}},
		{2, []string{"demo-world"}},
		{2, []string{"demo", "--bots", "0"}},
		{2, []string{"demo", "--store", "sqlite"}},
		{2, []string{"simulate", "--families", "nope"}},
		// Flags that exclude each other, or that need another.
		{2, []string{"domains", "set-state", "--state", "restrained", "--from-state", "listed", "a.example"}},
		{2, []string{"subscribers", "update", "s1", "--asn", "AS1", "--add-asn", "AS2"}},
		{2, []string{"subscribers", "update", "s1", "--contact", "a@b.example", "--remove-contact", "c@d.example"}},
		{2, []string{"users", "set", "ana", "--disable", "--enable"}},
		{2, []string{"domains", "verify", "--case", "c1", "a.example"}},
		{2, []string{"report", "trend", "--subscriber", "s1", "--asn", "AS1"}},
		{2, []string{"simulate", "--live=false"}},
		{2, []string{"simulate", "--http", "192.0.2.1:80"}},
		{3, []string{"cases", "show", "nope"}},
		{3, []string{"users", "set", "nobody", "--role", "viewer"}},
	} {
		r := run(t, cfg, c.args...)
		if r.code != c.code {
			t.Errorf("takedown %s: exit %d, want %d\n%s", strings.Join(c.args, " "), r.code, c.code, r.stderr)
		}
	}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600)
	mustRun(t, cfg, "users", "add", "ana", "--role", "viewer", "--password-file", pw)
	if r := run(t, cfg, "users", "add", "ana", "--role", "viewer", "--password-file", pw); r.code != 4 {
		t.Errorf("adding a user twice: exit %d, want 4\n%s", r.code, r.stderr)
	}
	help := mustRun(t, cfg, "--help")
	for _, want := range []string{"Exit codes:", "2  usage error", "3  not found", "4  conflict", "5  server unreachable"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestManPages: one page per command, that man renders, the same bytes
// twice under SOURCE_DATE_EPOCH.
func TestManPages(t *testing.T) {
	cfg, _, _ := setup(t)
	gen := func() string {
		dir := t.TempDir()
		cmd := exec.Command(bin, "--config", cfg, "docs", "man", "--dir", filepath.Join(dir, "man1"))
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1262304000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docs man: %v\n%s", err, out)
		}
		return filepath.Join(dir, "man1")
	}
	a, b := gen(), gen()
	pages, _ := filepath.Glob(filepath.Join(a, "*.1"))
	if len(pages) < 40 {
		t.Fatalf("%d pages", len(pages))
	}
	for _, p := range pages {
		x, _ := os.ReadFile(p)
		y, _ := os.ReadFile(filepath.Join(b, filepath.Base(p)))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs", filepath.Base(p))
		}
		if !bytes.Contains(x, []byte(`"Jan 2010" "takedown `+testVersion+`"`)) {
			t.Errorf("%s: header %q", filepath.Base(p), bytes.SplitN(x, []byte("\n"), 3)[1])
		}
	}
	for _, name := range []string{"takedown.1", "takedown-stats-hosts.1", "takedown-version.1", "takedown-completion-bash.1"} {
		if _, err := os.Stat(filepath.Join(a, name)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(a, "takedown-docs.1")); err == nil {
		t.Error("the hidden docs command has a page")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "man", "-l", filepath.Join(a, "takedown-stats-hosts.1"))
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "MAN_KEEP_FORMATTING=0", "PAGER=cat")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l: %v", err)
	}
	out = regexp.MustCompile(".\x08").ReplaceAll(out, nil) // overstrike for bold
	for _, want := range []string{"takedown-stats-hosts - Unique infected hosts", "takedown stats hosts [flags]", "--by", "SEE ALSO"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered page lacks %q:\n%s", want, out)
		}
	}
}

// TestCompletion: bash, with the bash-completion package, completes a
// subcommand and a flag by asking the binary; zsh and fish get scripts.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	td := filepath.Join(dir, "takedown")
	if err := os.Symlink(bin, td); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		script := `source /usr/share/bash-completion/bash_completion
source <("$TD" completion bash)
COMP_WORDS=("$TD" ` + strings.Join(words, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
__start_takedown 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"`
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Env = append(os.Environ(), "TD="+td)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completion of %v: %v", words, err)
		}
		return string(out)
	}
	if got := complete("stat"); !strings.Contains(got, "stats\n") || !strings.Contains(got, "status\n") {
		t.Errorf("takedown stat<TAB>: %q", got)
	}
	if got := complete("stats", "hosts", "--b"); got != "--by\n" {
		t.Errorf("takedown stats hosts --b<TAB>: %q", got)
	}
	for _, sh := range []string{"zsh", "fish"} {
		r := run(t, os.DevNull, "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "takedown") || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s: exit %d, %.200q", sh, r.code, r.stdout)
		}
	}
}
