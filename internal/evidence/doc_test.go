package evidence_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/registry"
)

// auditList is an AuditSource of fixed entries.
type auditList []registry.AuditEntry

func (a auditList) Audit(_ context.Context, f registry.AuditFilter) ([]registry.AuditEntry, error) {
	var out []registry.AuditEntry
	for _, e := range a {
		if e.Seq > f.AfterSeq {
			out = append(out, e)
		}
	}
	return out, nil
}

// exampleAudit is the audit entry of the worked example, with its hash.
func exampleAudit() registry.AuditEntry {
	e := registry.AuditEntry{
		Seq: 1, At: time.Date(2010, 2, 22, 9, 30, 0, 0, time.UTC),
		Actor: "alice", Action: "case.add", Object: "case:waledac-2010",
		Detail: `{"court":"E.D. Va.","docket":"1:10cv156"}`, Reason: "TRO granted",
	}
	e.Hash = registry.EntryHash("", e)
	return e
}

// docExample builds the worked example of docs/evidence-formats.md: a log
// of a batch of two events, an audit entry and a batch of one event,
// checkpointed and cosigned, with two proofs, and returns it as Markdown.
func docExample(t *testing.T) string {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	e1 := exampleEvent()
	e2 := exampleEvent()
	e2.Time = e2.Time.Add(time.Second)
	e2.SrcIP, e2.SrcPort = e2.SrcIP.Unmap().Next(), 40001
	e3 := exampleEvent()
	e3.Time = e3.Time.Add(time.Minute)
	e3.Protocol, e3.Transport, e3.DstPort, e3.Domain = event.ProtoHTTP, event.TransportTCP, 80, "b.waledac.example"
	e3.DNSQType, e3.DNSRcode, e3.HTTPMethod, e3.HTTPPath = "", "", "POST", "/"
	if _, err := l.AppendBatch(ctx, []event.Event{e1, e2}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.FollowAudit(ctx, auditList{exampleAudit()}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(ctx, []event.Event{e3}); err != nil {
		t.Fatal(err)
	}
	c, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, logV := keys(t, "log.example", 1)
	witness, _ := keys(t, "witness.example", 2)
	cosigned, err := evidence.Cosign(c.Note, nil, nil, logV, witness)
	if err != nil {
		t.Fatal(err)
	}
	_, logVKey := testKey(t, "log.example", 1)
	_, witnessVKey := testKey(t, "witness.example", 2)

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	block := func(s string) { p("```\n%s```\n\n", s) }
	p("Keys (Ed25519 seeds of 32 bytes 0x01 and 0x02; never use these):\n\n")
	block(logVKey + "\n" + witnessVKey + "\n")
	for i, e := range []event.Event{e1, e2, e3} {
		line := evidence.EventLine(nil, &e)
		sum := sha256.Sum256(line)
		p("Event %d, its line (%d bytes, no newline):\n\n", i+1, len(line))
		block(string(line) + "\n")
		p("and its event hash: `%s`\n\n", hex.EncodeToString(sum[:]))
	}
	var recs []tlog.Hash
	for i := range int64(3) {
		data, err := l.Leaf(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		rh := tlog.RecordHash(data)
		recs = append(recs, rh)
		p("Leaf %d, its data (%d bytes, each line ending in `\\n`):\n\n", i, len(data))
		block(string(data))
		p("and its record hash SHA-256(0x00 ‖ data): `%s`\n\n", hex.EncodeToString(rh[:]))
		if lf, err := evidence.ParseLeaf(data); err == nil && lf.Kind == evidence.KindAudit {
			p("SHA-256 of the data after the header line, the entry's hash in the registry's chain: `%s`\n\n", lf.AuditHash())
			if lf.AuditHash() != exampleAudit().Hash {
				t.Fatal("the audit leaf does not hash to the entry's hash")
			}
		}
	}
	n01 := tlog.NodeHash(recs[0], recs[1])
	root := tlog.NodeHash(n01, recs[2])
	p("Tree of 3 leaves: node(0,1) = SHA-256(0x01 ‖ rec0 ‖ rec1), root = SHA-256(0x01 ‖ node(0,1) ‖ rec2):\n\n")
	block("node(0,1) " + hex.EncodeToString(n01[:]) + "\nroot      " + hex.EncodeToString(root[:]) + "\nroot base64 " + base64.StdEncoding.EncodeToString(root[:]) + "\n")
	if root != c.Root {
		t.Fatalf("the example's root %x is not the checkpoint's %x", root, c.Root)
	}
	p("Checkpoint as signed by log.example, then cosigned by witness.example:\n\n")
	block(string(c.Note))
	block(string(cosigned))
	var proof bytes.Buffer
	ip, err := l.ProveInclusion(ctx, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	evidence.WriteInclusion(&proof, 1, 3, ip)
	p("Inclusion proof of leaf 1 in the tree of 3 (`proofs/1.inclusion`):\n\n")
	block(proof.String())
	proof.Reset()
	// A consistency proof needs an older checkpoint: the tree of 2.
	cp, err := l.ProveConsistency(ctx, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	evidence.WriteConsistency(&proof, 2, 3, cp)
	old := tlog.NodeHash(recs[0], recs[1])
	p("Consistency proof from the tree of 2 (root %s) to the tree of 3 (`proofs/2-3.consistency`):\n\n", base64.StdEncoding.EncodeToString(old[:]))
	block(proof.String())
	if _, err := evidence.ParseCheckpoint(cosigned, note.VerifierList(logV)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestDocExample checks that docs/evidence-formats.md holds the worked
// example this package computes. TAKEDOWN_UPDATE_DOCS=1 writes it there.
func TestDocExample(t *testing.T) {
	got := docExample(t)
	path := filepath.Join("..", "..", "docs", "evidence-formats.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- example:begin (generated by TestDocExample) -->\n", "<!-- example:end -->"
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s: no %q … %q", path, begin, end)
	}
	if string(doc[i+len(begin):j]) == got {
		return
	}
	if os.Getenv("TAKEDOWN_UPDATE_DOCS") != "" {
		out := append(append(append([]byte{}, doc[:i+len(begin)]...), got...), doc[j:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the worked example differs from what the code computes; run with TAKEDOWN_UPDATE_DOCS=1 and review the diff", path)
}
