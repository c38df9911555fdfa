package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// checkDemoExhibit checks the end of the demo's output: the exhibit it
// printed verifies with `evidence verify`, and no longer once one byte of
// any file changes.
func checkDemoExhibit(t *testing.T, cfg, data, out string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^6\. exhibit  (\S+): `).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "verified: ") {
		t.Fatalf("the demo does not end with a verified exhibit:\n%s", out)
	}
	dir := m[1]
	if got := mustRun(t, cfg, "evidence", "verify", dir); !strings.HasPrefix(got, "verified: ") {
		t.Errorf("evidence verify %s: %s", dir, got)
	}
	for _, f := range []string{"events.jsonl", "summary.html", "MANIFEST.sha256.note"} {
		p := filepath.Join(dir, f)
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b := append([]byte(nil), orig...)
		b[len(b)/3] ^= 0x01
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		r := run(t, cfg, "evidence", "verify", dir)
		if r.code == 0 || !strings.Contains(r.stdout, f) {
			t.Errorf("evidence verify after a byte of %s changed: exit %d\n%s%s", f, r.code, r.stdout, r.stderr)
		}
		if err := os.WriteFile(p, orig, 0o640); err != nil {
			t.Fatal(err)
		}
	}

	// The command itself: a sample of the case's events, as JSON; an
	// existing folder refused.
	x := filepath.Join(t.TempDir(), "x")
	js := mustRun(t, cfg, "--data-dir", data, "evidence", "export", "--case", "waledac-2010", "--from", "2000-01-01", "--to", "2100-01-01",
		"--out", x, "--sample", "50", "--json")
	var res struct {
		Events, Written int64
		Checkpoint      struct{ Size int64 }
	}
	if err := json.Unmarshal([]byte(js), &res); err != nil || res.Written != 50 || res.Events < 50 || res.Checkpoint.Size == 0 {
		t.Errorf("evidence export --json: %v %s", err, js)
	}
	if got := mustRun(t, cfg, "evidence", "verify", x, "--json"); !strings.Contains(got, `"findings": []`) {
		t.Errorf("evidence verify --json: %s", got)
	}
	r := run(t, cfg, "--data-dir", data, "evidence", "export", "--case", "waledac-2010", "--from", "2000-01-01", "--to", "2100-01-01", "--out", x)
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("export into a used folder: %+v", r)
	}
}
