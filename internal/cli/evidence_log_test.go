package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
)

// loggedEvents writes batches of events into cfg's store through the
// evidence log, as serve does (evidence.Store, write-ahead), signing a
// checkpoint after each batch, and returns the events, their batches in
// order.
// openEvidenceLog opens the database and the evidence log of the config at
// cfgPath, as serve does; the caller closes local.
func openEvidenceLog(t *testing.T, cfgPath string) (*app.Local, *evidence.Log) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	local, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	signer, verifier, err := evidence.LoadSigner(evidence.SignerConfig{KeyFile: cfg.Evidence.KeyFile})
	if err == nil {
		var lg *evidence.Log
		lg, err = evidence.Open(context.Background(), evidence.Config{DB: local.DB, Origin: cfg.Evidence.Origin, Signer: signer, Verifier: verifier})
		if err == nil {
			return local, lg
		}
	}
	local.Close()
	t.Fatal(err)
	return nil, nil
}

func loggedEvents(t *testing.T, cfgPath string, batches, per int) []event.Event {
	t.Helper()
	ctx := context.Background()
	local, lg := openEvidenceLog(t, cfgPath)
	defer local.Close()
	st := evidence.NewStore(local.Store, lg)
	t0 := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	var all []event.Event
	for b := range batches {
		batch := make([]event.Event, per)
		for i := range batch {
			n := b*per + i
			batch[i] = event.Event{Time: t0.Add(time.Duration(n) * time.Minute), Sensor: "test-1", Protocol: event.ProtoDNS,
				Transport: event.TransportUDP, SrcIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}), SrcPort: uint16(1000 + n),
				Domain: fmt.Sprintf("b%d.seized.example", n), DNSQType: "A", DNSRcode: "NOERROR"}
		}
		if err := st.AppendMarked(ctx, batch, "", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := lg.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	return all
}

// TestEvidenceLogCommands: keygen, checkpoint, prove (leaf, event,
// consistency) and cosign on a log of three batches; each proof verifies
// against the checkpoints with tlog, as a third party would.
func TestEvidenceLogCommands(t *testing.T) {
	cfg, dataDir, _ := setup(t)
	vkey := strings.TrimSpace(mustRun(t, cfg, "evidence", "keygen", "--name", "takedown/test-1", "--out", filepath.Join(dataDir, "evidence.key")))
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("keygen printed %q: %v", vkey, err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "evidence.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v", err)
	}
	if r := run(t, cfg, "evidence", "keygen", "--name", "x", "--out", filepath.Join(dataDir, "evidence.key")); r.code == 0 {
		t.Error("keygen overwrote a key file")
	}
	evs := loggedEvents(t, cfg, 3, 4)

	latest := []byte(mustRun(t, cfg, "evidence", "checkpoint"))
	c, err := evidence.ParseCheckpoint(latest, note.VerifierList(v))
	if err != nil || c.Size != 3 {
		t.Fatalf("checkpoint: %+v %v\n%s", c, err, latest)
	}
	var list []struct {
		Size int64  `json:"size"`
		Root string `json:"root"`
		Note string `json:"note"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "evidence", "checkpoint", "--list", "--json")), &list); err != nil || len(list) != 3 {
		t.Fatalf("checkpoint --list --json: %v %+v", err, list)
	}
	if out := mustRun(t, cfg, "evidence", "checkpoint", "--list"); !strings.Contains(out, "SIZE") || strings.Count(out, "\n") != 4 {
		t.Errorf("checkpoint --list:\n%s", out)
	}

	// The second event of the second batch, by its line.
	line := evidence.EventLine(nil, &evs[5])
	lineFile := filepath.Join(dataDir, "event.json")
	if err := os.WriteFile(lineFile, append(line, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	leafFile := filepath.Join(dataDir, "leaf.txt")
	proof := mustRun(t, cfg, "evidence", "prove", "--event-line", lineFile, "--leaf-out", leafFile)
	idx, size, p, err := evidence.ReadInclusion(strings.NewReader(proof))
	if err != nil || idx != 1 || size != 3 {
		t.Fatalf("prove --event-line: leaf %d size %d %v\n%s", idx, size, err, proof)
	}
	leaf, err := os.ReadFile(leafFile)
	if err != nil {
		t.Fatal(err)
	}
	h := evidence.EventHash(&evs[5])
	if !bytes.Contains(leaf, fmt.Appendf(nil, "\n%x\n", h)) {
		t.Errorf("the leaf does not list the event's hash:\n%s", leaf)
	}
	if err := tlog.CheckRecord(p, size, c.Root, idx, tlog.RecordHash(leaf)); err != nil {
		t.Errorf("inclusion proof: %v", err)
	}
	byHash := mustRun(t, cfg, "evidence", "prove", "--event", fmt.Sprintf("%x", h))
	if byHash != proof {
		t.Errorf("prove --event and --event-line differ:\n%s\n%s", byHash, proof)
	}
	if r := run(t, cfg, "evidence", "prove", "--event", strings.Repeat("ab", 32)); r.code == 0 || !strings.Contains(r.stderr, "no batch leaf of the log lists event abab") {
		t.Errorf("prove --event of an unknown hash: %d %s", r.code, r.stderr)
	}
	if r := run(t, cfg, "evidence", "prove", "--leaf", "3"); r.code == 0 || !strings.Contains(r.stderr, "leaf 3 is not in the tree of 3 leaves") {
		t.Errorf("prove --leaf 3: %d %s", r.code, r.stderr)
	}

	// Consistency of the first checkpoint with the last, and a witness
	// that cosigns both.
	first := []byte(list[0].Note)
	cons := mustRun(t, cfg, "evidence", "prove", "--from", "1", "--to", "3")
	old, nw, tp, err := evidence.ReadConsistency(strings.NewReader(cons))
	if err != nil || old != 1 || nw != 3 {
		t.Fatalf("prove --from 1 --to 3: %d %d %v", old, nw, err)
	}
	c1, err := evidence.ParseCheckpoint(first, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(tp, 3, c.Root, 1, c1.Root); err != nil {
		t.Errorf("consistency proof: %v", err)
	}
	dir := t.TempDir()
	wkey := filepath.Join(dir, "witness.key")
	wv, err := note.NewVerifier(strings.TrimSpace(mustRun(t, cfg, "evidence", "keygen", "--name", "witness.example", "--out", wkey)))
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "witness.state")
	files := map[string][]byte{"c1.note": first, "c3.note": latest, "1-3.consistency": []byte(cons)}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cosign := func(args ...string) result {
		return run(t, cfg, append([]string{"evidence", "cosign", "--key", wkey, "--state", state}, args...)...)
	}
	if r := cosign(filepath.Join(dir, "c1.note")); r.code != 0 {
		t.Fatalf("cosign c1: %s", r.stderr)
	}
	if r := cosign(filepath.Join(dir, "c3.note")); r.code == 0 || !strings.Contains(r.stderr, "give --proof") {
		t.Errorf("cosign without a proof: %d %s", r.code, r.stderr)
	}
	r := cosign("--proof", filepath.Join(dir, "1-3.consistency"), filepath.Join(dir, "c3.note"))
	if r.code != 0 {
		t.Fatalf("cosign c3: %s", r.stderr)
	}
	n, err := note.Open([]byte(r.stdout), note.VerifierList(v, wv))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("cosigned checkpoint: %v %+v\n%s", err, n, r.stdout)
	}
	if st, _ := os.ReadFile(state); string(st) != r.stdout {
		t.Error("the state is not the last cosigned checkpoint")
	}
}

// TestEvidenceCheckNamesTampering: with serve stopped, one stored event is
// changed and another deleted with SQL on the database file; evidence
// check names both, with their leaves, and exits non-zero.
func TestEvidenceCheckNamesTampering(t *testing.T) {
	cfg, dataDir, _ := setup(t)
	mustRun(t, cfg, "evidence", "keygen", "--name", "takedown/test-1", "--out", filepath.Join(dataDir, "evidence.key"))
	evs := loggedEvents(t, cfg, 3, 4)
	if out := mustRun(t, cfg, "evidence", "check"); !strings.Contains(out, "evidence log verified; 12 stored events all in the log's 3 batch leaves") {
		t.Fatalf("check before: %s", out)
	}
	db, err := dbfile.Open(context.Background(), filepath.Join(dataDir, "takedown.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	changed, deleted := evs[2], evs[9] // of leaves 0 and 2
	if _, err := db.Exec(`UPDATE events SET country_code = 'ZZ' WHERE domain = ?`, changed.Domain); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM events WHERE domain = ?`, deleted.Domain); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r := run(t, cfg, "evidence", "check")
	if r.code == 0 {
		t.Fatalf("check passed after tampering:\n%s", r.stdout)
	}
	after := changed
	after.CountryCode = "ZZ"
	for _, want := range []string{
		fmt.Sprintf("event of %s from 192.0.2.2 (sensor test-1, hash %x) is in no leaf of the log", changed.Time.Format(time.RFC3339Nano), evidence.EventHash(&after)),
		fmt.Sprintf("leaf 0 lists event %x", evidence.EventHash(&changed)),
		fmt.Sprintf("leaf 2 lists event %x", evidence.EventHash(&deleted)),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check does not say %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "3 finding(s)") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// The period of the first batch only: the changed event, not the
	// deleted one.
	r = run(t, cfg, "evidence", "check", "--from", "2026-11-03T10:00:00Z", "--to", "2026-11-03T10:04:00Z", "--json")
	var res struct {
		OK       bool `json:"ok"`
		Events   int  `json:"events"`
		Findings []struct {
			Kind string `json:"kind"`
			Leaf int64  `json:"leaf"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code == 0 || res.OK || res.Events != 4 || len(res.Findings) != 2 ||
		res.Findings[0].Kind != "unlogged" || res.Findings[1].Kind != "missing" || res.Findings[1].Leaf != 0 {
		t.Errorf("check of the first batch: %d %+v %v\n%s", r.code, res, err, r.stdout)
	}
}
