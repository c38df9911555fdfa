package cli_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/dbfile"
)

// verifyJSON is the output of audit verify --json.
type verifyJSON struct {
	OK      bool   `json:"ok"`
	Entries int64  `json:"entries"`
	Error   string `json:"error"`
	Head    struct {
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"`
	} `json:"head"`
}

// TestAuditVerifyHead: audit verify prints the head; a head pinned before
// the last entries were removed fails verify --head, in the database and
// through a running serve, while the chain alone still verifies.
func TestAuditVerifyHead(t *testing.T) {
	cfg, dataDir, addr := setup(t)
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1")
	mustRun(t, cfg, "cases", "add", "c2", "--court", "E.D. Va.", "--docket", "2")
	mustRun(t, cfg, "cases", "add", "c3", "--court", "E.D. Va.", "--docket", "3")

	var v verifyJSON
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "audit", "verify", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Entries != 3 || v.Head.Seq != 3 || len(v.Head.Hash) != 64 || v.Error != "" {
		t.Fatalf("verify --json: %+v", v)
	}
	head := "3:" + v.Head.Hash
	if out := mustRun(t, cfg, "audit", "verify"); out != "audit log verified: 3 entries, hash chain intact\nhead "+head+"\n" {
		t.Errorf("verify:\n%s", out)
	}
	if out := mustRun(t, cfg, "audit", "verify", "--head", "3:"+strings.ToUpper(v.Head.Hash)); !strings.Contains(out, "pinned head "+head+" found unchanged") {
		t.Errorf("verify --head %s:\n%s", head, out)
	}
	for arg, want := range map[string]string{
		"3":                    `--head: audit head "3" is not SEQ:HASH`,
		"three:" + v.Head.Hash: `sequence number "three"`,
		"3:abc":                `hash "abc" is not 64 hex digits`,
	} {
		if r := run(t, cfg, "audit", "verify", "--head", arg); r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("--head %s: exit %d, %q; want %q", arg, r.code, r.stderr, want)
		}
	}

	// Someone with the database file removes the last entry.
	ctx := context.Background()
	db, err := dbfile.Open(ctx, filepath.Join(dataDir, "takedown.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM registry_audit WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	check := func(where string) {
		t.Helper()
		if out := mustRun(t, cfg, "audit", "verify"); !strings.HasPrefix(out, "audit log verified: 2 entries") {
			t.Errorf("%s: the chain alone: %s", where, out)
		}
		want := "audit log does not verify after 2 entries: audit entry 3: missing: the pinned head is entry 3 but the log ends at entry 2"
		r := run(t, cfg, "audit", "verify", "--head", head)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: verify --head: exit %d, %q; want %q", where, r.code, r.stderr, want)
		}
		r = run(t, cfg, "audit", "verify", "--head", head, "--json")
		var v verifyJSON
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code == 0 || v.OK || v.Entries != 2 || v.Head.Seq != 2 || !strings.Contains(v.Error, "log ends at entry 2") {
			t.Errorf("%s: verify --head --json: exit %d, %+v, %v", where, r.code, v, err)
		}
	}
	check("database")
	startServer(t, cfg, addr)
	check("through serve")
	if r := run(t, cfg, "--mode", "remote", "audit", "verify", "--head", "3:abc"); r.code == 0 || !strings.Contains(r.stderr, `hash "abc"`) {
		t.Errorf("remote --head 3:abc: exit %d, %q", r.code, r.stderr)
	}
}
