package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportGarbageLocalAndRemote: a large list of garbage is refused
// with the same message in both modes: the number of problems, the first
// ones with their line numbers, and how many more there are.
func TestImportGarbageLocalAndRemote(t *testing.T) {
	var b strings.Builder
	for i := range 200_000 {
		fmt.Fprintf(&b, "!!garbage-%d!! \"%c\n", i, 'a'+i%26)
	}
	list := filepath.Join(t.TempDir(), "garbage.txt")
	if err := os.WriteFile(list, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{}
	for _, mode := range []string{"local", "remote"} {
		cfg, _, addr := setup(t)
		if mode == "remote" {
			startServer(t, cfg, addr)
		}
		mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1")
		r := run(t, cfg, "--mode", mode, "domains", "import", "--case", "c1", list)
		if r.code == 0 {
			t.Fatalf("%s: the garbage was imported: %s", mode, r.stdout)
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if len(lines) != 1002 ||
			lines[0] != "takedown: "+list+": 200000 problem(s), nothing was imported:" ||
			!strings.HasPrefix(lines[1], list+":1: ") || !strings.HasSuffix(lines[1], `: "!!garbage-0!! \"a"`) ||
			!strings.HasPrefix(lines[1000], list+":1000: ") ||
			lines[1001] != "takedown: and 199000 more problem(s), not listed" {
			t.Errorf("%s: %d lines of stderr:\n%s\n…\n%s", mode, len(lines), strings.Join(lines[:min(3, len(lines))], "\n"), strings.Join(lines[max(0, len(lines)-3):], "\n"))
		}
		outputs[mode] = r.stderr
		if out := mustRun(t, cfg, "domains", "list"); strings.Contains(out, "garbage") {
			t.Errorf("%s: domains after the refused import:\n%s", mode, out)
		}
	}
	if outputs["local"] != outputs["remote"] {
		t.Errorf("local and remote messages differ")
	}
}
