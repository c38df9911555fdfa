package exhibit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/exhibit"
)

// nodeVerifier is the independent verifier.
var nodeVerifier = filepath.Join("..", "..", "tools", "verify-exhibit", "verify.mjs")

// runNode runs the node.js verifier on dir and returns its exit code and
// output.
func runNode(t *testing.T, dir, key string) (int, string) {
	t.Helper()
	cmd := exec.Command("node", nodeVerifier, dir, "--key", key)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("running node: %v", err)
	return 0, ""
}

// copyDir copies an exhibit to a new temporary folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "exhibit")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// first returns the first file of the exhibit whose path matches glob.
func first(t *testing.T, dir, glob string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(glob)))
	if len(m) == 0 {
		t.Fatalf("no %s in the exhibit", glob)
	}
	slices.Sort(m)
	rel, _ := filepath.Rel(dir, m[0])
	return filepath.ToSlash(rel)
}

func edit(t *testing.T, dir, rel string, fn func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, fn(b), 0o640); err != nil {
		t.Fatal(err)
	}
}

// rehash rewrites the manifest's line of rel as an attacker would, to show
// that the deeper checks hold on their own (the signed note still names
// the manifest).
func rehash(t *testing.T, dir, rel string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	edit(t, dir, exhibit.FileManifest, func(m []byte) []byte {
		var out []string
		for _, line := range strings.SplitAfter(string(m), "\n") {
			if strings.HasSuffix(line, "  "+rel+"\n") {
				line = hex.EncodeToString(h[:]) + "  " + rel + "\n"
			}
			out = append(out, line)
		}
		return []byte(strings.Join(out, ""))
	})
}

// TestTamper changes an exported exhibit in every way an editor could and
// checks that both verifiers fail and name what was changed.
func TestTamper(t *testing.T) {
	w := newWorld(t, 600)
	dir, res := w.export(t, nil)
	if r := verify(t, dir, w.vkey); !r.OK() {
		t.Fatalf("the exhibit does not verify:\n%s", findings(r))
	}
	if code, out := runNode(t, dir, w.vkey); code != 0 || !strings.HasPrefix(out, "verified: ") {
		t.Fatalf("node verifier on the real exhibit: exit %d\n%s", code, out)
	}
	cpFile := fmt.Sprintf("%s/%d.note", exhibit.DirCheckpoints, res.Checkpoint.Size)

	type tamper struct {
		name string
		do   func(t *testing.T, dir string)
		// file must be named by a finding of both verifiers; line, if
		// set, by one of ours.
		file string
		line int
	}
	var cases []tamper
	// One byte of each kind of file.
	for _, glob := range []string{"README.txt", "summary.html", "case.json", "counts.csv", "counts.json", "maps/*.svg", "maps/*.png",
		"events.jsonl", "events.csv", "leaves/*.txt", "proofs/*.inclusion", "proofs/*.consistency", "checkpoints/*.note",
		"audit/*.txt", "audit/*.inclusion", "key.pub", "MANIFEST.sha256", "MANIFEST.sha256.note"} {
		rel := first(t, dir, glob)
		cases = append(cases, tamper{name: "byte of " + rel, file: rel, do: func(t *testing.T, dir string) {
			edit(t, dir, rel, func(b []byte) []byte { b[len(b)/2] ^= 0x04; return b })
		}})
	}
	cases = append(cases,
		tamper{name: "deleted file", file: "events.csv", do: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "events.csv"))
		}},
		tamper{name: "deleted leaf", file: first(t, dir, "leaves/*.txt"), do: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, first(t, dir, "leaves/*.txt")))
		}},
		tamper{name: "added file", file: "maps/extra.svg", do: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "maps", "extra.svg"), []byte("<svg/>"), 0o640)
		}},
		tamper{name: "two event lines swapped", file: "events.jsonl", do: func(t *testing.T, dir string) {
			edit(t, dir, "events.jsonl", func(b []byte) []byte {
				lines := bytes.SplitAfter(b, []byte("\n"))
				lines[0], lines[1] = lines[1], lines[0]
				return bytes.Join(lines, nil)
			})
		}},
		tamper{name: "an event changed and the manifest rehashed", file: "events.jsonl", line: 3, do: func(t *testing.T, dir string) {
			edit(t, dir, "events.jsonl", func(b []byte) []byte {
				lines := bytes.SplitAfter(b, []byte("\n"))
				lines[2] = bytes.Replace(lines[2], []byte(`"source.port":`), []byte(`"source.port":9`), 1)
				return bytes.Join(lines, nil)
			})
			rehash(t, dir, "events.jsonl")
		}},
		tamper{name: "checkpoint from a forked tree", file: cpFile, do: func(t *testing.T, dir string) {
			root := res.Checkpoint.Root
			root[0] ^= 0xff
			body := fmt.Sprintf("%s\n%d\n%s\ntime %s\n", res.Checkpoint.Origin, res.Checkpoint.Size,
				base64.StdEncoding.EncodeToString(root[:]), time.Now().UTC().Format(time.RFC3339))
			forked, err := note.Sign(&note.Note{Text: body}, w.signer)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, filepath.FromSlash(cpFile)), forked, 0o640)
		}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := copyDir(t, dir)
			c.do(t, d)
			r := verify(t, d, w.vkey)
			if r.OK() {
				t.Fatal("verify passed a tampered exhibit")
			}
			named := false
			for _, f := range r.Findings {
				if f.File == c.file && (c.line == 0 || f.Line == c.line) {
					named = true
				}
			}
			if !named {
				t.Errorf("verify does not name %s (line %d):\n%s", c.file, c.line, findings(r))
			}
			code, out := runNode(t, d, w.vkey)
			if code != 1 || !strings.Contains(out, c.file) {
				t.Errorf("node verifier: exit %d, does not name %s:\n%s", code, c.file, out)
			}
		})
	}
}
