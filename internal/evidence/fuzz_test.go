package evidence_test

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/registry"
)

func FuzzParseLeaf(f *testing.F) {
	f.Add(evidence.BatchLeaf([][32]byte{{1}, {2}, {1}}))
	f.Add(evidence.BatchLeaf(nil))
	f.Add(evidence.AuditLeaf("", registry.AuditEntry{Seq: 1, Actor: "a", Action: "case.add", Object: "case:x", Detail: "{}"}))
	f.Add([]byte("takedown-evidence/audit/v1\n0:\n1:1\n0:\n0:\n0:\n0:\n0:\n0:\n"))
	f.Add([]byte("takedown-evidence/batch/v1\nzz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := evidence.ParseLeaf(data)
		if err != nil {
			return
		}
		// What parses is written back byte for byte.
		switch l.Kind {
		case evidence.KindBatch:
			if got := evidence.BatchLeaf(l.Events); !bytes.Equal(got, data) {
				t.Fatalf("batch leaf %q parses but writes back as %q", data, got)
			}
		case evidence.KindAudit:
			if _, err := l.AuditFields(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("kind %q", l.Kind)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	s, v := keys(f, "log.example", 1)
	good, err := note.Sign(&note.Note{Text: "takedown/test\n3\n" + strings.Repeat("A", 43) + "=\ntime 2010-02-22T12:00:00Z\n"}, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("takedown/test\n3\nAAAA\ntime x\n\n— log.example AAAA\n"))
	verifiers := note.VerifierList(v)
	f.Add([]byte("takedown/test\n3\n" + strings.Repeat("A", 43) + "=\ntime 2010-02-22T12:00:00Z\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		check := func(msg []byte) {
			c, err := evidence.ParseCheckpoint(msg, verifiers)
			if err != nil {
				return
			}
			if c.Size < 0 || c.Origin == "" || !bytes.Equal(c.Note, msg) || c.Time.Location().String() != "UTC" {
				t.Fatalf("parsed %+v from %q", c, msg)
			}
		}
		check(msg)
		// The input as the body of a validly signed note, so that the
		// body's parser is fuzzed too.
		if signed, err := note.Sign(&note.Note{Text: string(msg)}, s); err == nil {
			check(signed)
		}
	})
}

func FuzzReadInclusion(f *testing.F) {
	var buf bytes.Buffer
	evidence.WriteInclusion(&buf, 2, 5, tlog.RecordProof{{1}, {2}, {3}})
	f.Add(buf.String())
	f.Add("takedown-evidence/inclusion/v1\nindex 0\nsize 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		idx, size, p, err := evidence.ReadInclusion(strings.NewReader(in))
		if err != nil {
			return
		}
		if idx < 0 || idx >= size || len(p) > 128 {
			t.Fatalf("read index %d, size %d, %d hashes", idx, size, len(p))
		}
		var out bytes.Buffer
		evidence.WriteInclusion(&out, idx, size, p)
		if again, _, _, err := evidence.ReadInclusion(&out); err != nil || again != idx {
			t.Fatalf("written back, it reads %d %v", again, err)
		}
	})
}

func FuzzReadConsistency(f *testing.F) {
	var buf bytes.Buffer
	evidence.WriteConsistency(&buf, 3, 7, tlog.TreeProof{{1}, {2}})
	f.Add(buf.String())
	f.Add("takedown-evidence/consistency/v1\nold 0\nnew 0\n")
	f.Fuzz(func(t *testing.T, in string) {
		old, size, p, err := evidence.ReadConsistency(strings.NewReader(in))
		if err != nil {
			return
		}
		if old < 0 || old > size || len(p) > 128 {
			t.Fatalf("read old %d, new %d, %d hashes", old, size, len(p))
		}
		var out bytes.Buffer
		evidence.WriteConsistency(&out, old, size, p)
		if again, _, _, err := evidence.ReadConsistency(&out); err != nil || again != old {
			t.Fatalf("written back, it reads %d %v", again, err)
		}
	})
}
