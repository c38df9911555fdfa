package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runInProcess runs the command line in this process.
func runInProcess(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

func TestWorldDBAndEnrichLookup(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := runInProcess(t, "demo-world", "--out", dir)
	if code != 0 || !strings.Contains(out, "takedown-demo-world.mmdb") {
		t.Fatalf("demo-world: exit %d\n%s%s", code, out, errOut)
	}
	db := filepath.Join(dir, "takedown-demo-world.mmdb")
	abuse := filepath.Join(dir, "abuse.txt")
	if err := os.WriteFile(abuse, []byte("127.1.0.0/24 abuse@demo.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runInProcess(t, "enrich", "lookup", "127.1.0.1", "127.0.0.1", "--db", db, "--abuse", abuse, "--json")
	if code != 0 {
		t.Fatalf("enrich lookup: exit %d\n%s%s", code, out, errOut)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != 2 || got[0]["country_code"] != "US" || got[0]["abuse"] != "abuse@demo.example" || got[0]["asn"] == nil ||
		got[1]["ip"] != "127.0.0.1" || got[1]["country_code"] != nil {
		t.Errorf("enrich lookup --json:\n%s", out)
	}
	out, _, code = runInProcess(t, "enrich", "lookup", "127.1.0.1", "--db", db)
	if code != 0 || !strings.Contains(out, "CITY") || !strings.Contains(out, "(demo)") {
		t.Errorf("enrich lookup table: exit %d\n%s", code, out)
	}
	// A missing database is an error naming it.
	_, errOut, code = runInProcess(t, "enrich", "lookup", "127.1.0.1", "--db", filepath.Join(dir, "nope.mmdb"))
	if code == 0 || !strings.Contains(errOut, "nope.mmdb: file does not exist") {
		t.Errorf("missing database: exit %d, stderr %s", code, errOut)
	}
}
