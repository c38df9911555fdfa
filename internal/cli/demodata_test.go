package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/fictional"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/sim"
)

// TestDemoNamesReserved walks the demo's data and the names the demo
// seizes for the DGA family: every name is reserved, and every registry
// is a fictional one, so that a demo RPZ exported or transferred by
// mistake can block no one.
func TestDemoNamesReserved(t *testing.T) {
	files := 0
	err := filepath.WalkDir("demodata", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines, perr := registry.ParseDomainList(path, data)
		if perr != nil {
			t.Errorf("%s: %v", path, perr)
			return nil
		}
		if len(lines) == 0 {
			t.Errorf("%s: no names", path)
		}
		for _, l := range lines {
			if !fictional.Reserved(l.Name) {
				t.Errorf("%s:%d: %s is not under a reserved TLD (.example, .test, .invalid) or example.com", path, l.Line, l.Name)
			}
			if l.Registry == "" || registry.RegistryOf(l.Name[strings.LastIndexByte(l.Name, '.')+1:]) != "" ||
				!strings.HasPrefix(l.Registry, "Fictional ") || !strings.HasPrefix(l.Registrar, "Fictional ") {
				t.Errorf("%s:%d: %s: registrar %q, registry %q: want fictional ones", path, l.Line, l.Name, l.Registrar, l.Registry)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walking demodata: %d files, %v", files, err)
	}
	if len(demoDomains) == 0 {
		t.Fatal("the demo's list is not embedded")
	}
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := range 400 {
		for _, n := range sim.DGANames(day.AddDate(0, 0, d), sim.DGANamesPerDay) {
			if !fictional.Reserved(n) {
				t.Fatalf("DGA name %s of %s is not reserved", n, day.AddDate(0, 0, d).Format(time.DateOnly))
			}
			if r := demoRegistry(n); !strings.HasPrefix(r, "Fictional .") {
				t.Fatalf("the demo's registry of %s: %q", n, r)
			}
		}
	}
}

// TestDemoExploreCommand: the commands after a `go run` say how to get
// the command, and paths with spaces or quotes are quoted for a shell.
func TestDemoExploreCommand(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/takedown-demo-1/takedown.yaml": "/tmp/takedown-demo-1/takedown.yaml",
		"/home/ana/my demo/takedown.yaml":    "'/home/ana/my demo/takedown.yaml'",
		"/tmp/it's/x":                        `'/tmp/it'\''s/x'`,
		"":                                   "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	var b strings.Builder
	demoExplore(&b, "go run ./cmd/takedown", "/tmp/my demo/takedown.yaml", nil)
	out := b.String()
	for _, want := range []string{"not on your PATH: `go install ./cmd/takedown`", "\n  go run ./cmd/takedown -c '/tmp/my demo/takedown.yaml' cases show waledac-2010\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("Explore it lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	demoExplore(&b, "takedown", "/tmp/d/takedown.yaml", nil)
	if strings.Contains(b.String(), "PATH") || !strings.Contains(b.String(), "\n  takedown -c /tmp/d/takedown.yaml serve &") {
		t.Errorf("with takedown on the PATH:\n%s", b.String())
	}
	// The test binary, like `go run`'s, is in a go-build directory.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := shellQuote(exe)
	if strings.Contains(exe, "/go-build") {
		want = "go run ./cmd/takedown"
	}
	if td := takedownCommand(); td != want {
		t.Errorf("takedownCommand() = %q for the test binary %s, want %q", td, exe, want)
	}
}
