package eventstore_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/takedown-project/takedown/"

// TestLayering holds the tree to the shape that lets a second engine come:
// this package is a leaf (the standard library and internal/event alone),
// and only the composition imports an engine or its database file. Tests
// may open an engine anywhere: they need a real one.
func TestLayering(t *testing.T) {
	// internal/backup copies and restores the DuckDB file: it belongs with
	// the file's engine.
	engine := map[string]bool{"internal/store": true, "internal/dbfile": true, "internal/chstore": true, "internal/backup": true}
	composition := map[string]bool{"internal/app": true, "internal/cli": true, "cmd/takedown": true}
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(rel))
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, spec := range f.Imports {
			imp, _ := strconv.Unquote(spec.Path.Value)
			local, ours := strings.CutPrefix(imp, module)
			switch {
			case pkg == "internal/eventstore" && local != "internal/event" && (ours || strings.Contains(strings.Split(imp, "/")[0], ".")):
				t.Errorf("%s imports %s: the event store's contract imports only internal/event and the standard library", rel, imp)
			case ours && engine[local] && !composition[pkg] && !engine[pkg]:
				t.Errorf("%s imports %s: only the composition (%s) imports an engine; name the types of internal/eventstore instead", rel, local, "internal/app, internal/cli, cmd/takedown")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked %d files: not the tree", checked)
	}
}
