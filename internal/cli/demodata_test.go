package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/sim"
)

// reservedName reports whether name can never be anyone's: under a TLD
// that RFC 2606 and RFC 6761 reserve, or under example.com, .net or .org.
func reservedName(name string) bool {
	tld := name[strings.LastIndexByte(name, '.')+1:]
	switch tld {
	case "example", "test", "invalid", "localhost":
		return true
	}
	for _, d := range []string{"example.com", "example.net", "example.org"} {
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

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
			if !reservedName(l.Name) {
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
			if !reservedName(n) {
				t.Fatalf("DGA name %s of %s is not reserved", n, day.AddDate(0, 0, d).Format(time.DateOnly))
			}
			if r := demoRegistry(n); !strings.HasPrefix(r, "Fictional .") {
				t.Fatalf("the demo's registry of %s: %q", n, r)
			}
		}
	}
	for _, n := range []string{"partystore.com", "bestcards.de", "example.com.evil.net", "notexample.com", "example.co"} {
		if reservedName(n) {
			t.Errorf("reservedName(%q) = true", n)
		}
	}
}
