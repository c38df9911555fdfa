package registry

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"
)

// rewriteAudit rewrites the audit log as a forger with write access to the
// database would: edit changes the entries (it may drop some from the
// end), then every hash is computed anew so that the chain verifies.
func rewriteAudit(t *testing.T, r *Registry, db *sql.DB, edit func([]AuditEntry) []AuditEntry) {
	t.Helper()
	es, err := r.Audit(ctxBack, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	es = edit(es)
	if _, err := db.Exec(`DELETE FROM registry_audit`); err != nil {
		t.Fatal(err)
	}
	prev := ""
	for _, e := range es {
		e.Hash = EntryHash(prev, e)
		prev = e.Hash
		if _, err := db.Exec(`INSERT INTO registry_audit (seq, logged_at, actor, action, object, detail, reason, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, e.At, e.Actor, e.Action, e.Object, e.Detail, e.Reason, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
}

// auditLog makes a registry with a case, an order and five domains: seven
// audit entries.
func auditLog(t *testing.T) (*Registry, *sql.DB) {
	t.Helper()
	r, db, _ := newTestRegistry(t)
	mustCase(t, r)
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "list.txt", []byte("a.example.com\nb.example.net\nc.example.org\nd.test\ne.example"), alice); err != nil {
		t.Fatal(err)
	}
	return r, db
}

// TestVerifyAuditHead: the chain alone verifies after its last entries are
// removed or after it is rewritten whole; a head pinned before does not.
func TestVerifyAuditHead(t *testing.T) {
	t.Run("intact", func(t *testing.T) {
		r, _ := auditLog(t)
		head, err := r.VerifyAuditHead(ctxBack, AuditHead{})
		if err != nil || head.Seq != 7 || len(head.Hash) != 64 {
			t.Fatalf("VerifyAuditHead = %+v, %v; want entry 7", head, err)
		}
		for _, pin := range []AuditHead{head, {Seq: 3, Hash: entryHash(t, r, 3)}} {
			if got, err := r.VerifyAuditHead(ctxBack, pin); err != nil || got != head {
				t.Errorf("pinned %v: %+v, %v", pin, got, err)
			}
		}
	})
	t.Run("last entries removed", func(t *testing.T) {
		r, db := auditLog(t)
		pin, _ := r.VerifyAuditHead(ctxBack, AuditHead{})
		if _, err := db.Exec(`DELETE FROM registry_audit WHERE seq > 5`); err != nil {
			t.Fatal(err)
		}
		if n, err := r.VerifyAudit(ctxBack); err != nil || n != 5 {
			t.Fatalf("the chain alone: %d, %v; want 5 entries that verify", n, err)
		}
		head, err := r.VerifyAuditHead(ctxBack, pin)
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Seq != 7 || !errors.Is(err, ErrAuditBroken) || head.Seq != 5 ||
			!strings.Contains(err.Error(), "audit entry 7: missing: the pinned head is entry 7 but the log ends at entry 5") {
			t.Errorf("pinned head 7 after removing 6 and 7: %+v, %v", head, err)
		}
	})
	t.Run("rewritten", func(t *testing.T) {
		r, db := auditLog(t)
		pin, _ := r.VerifyAuditHead(ctxBack, AuditHead{})
		early := AuditHead{Seq: 2, Hash: entryHash(t, r, 2)}
		rewriteAudit(t, r, db, func(es []AuditEntry) []AuditEntry {
			es[0].Reason = "a different story"
			return es
		})
		head, err := r.VerifyAuditHead(ctxBack, AuditHead{})
		if err != nil || head.Seq != 7 || head.Hash == pin.Hash {
			t.Fatalf("the rewritten chain alone: %+v, %v; want it to verify with a new head", head, err)
		}
		for _, p := range []AuditHead{pin, early} {
			_, err := r.VerifyAuditHead(ctxBack, p)
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Seq != p.Seq || !strings.Contains(err.Error(), "differs from the pinned head's "+p.Hash+": the log was rewritten") {
				t.Errorf("pinned %v after the rewrite: %v", p, err)
			}
		}
	})
	t.Run("rewritten and shortened", func(t *testing.T) {
		r, db := auditLog(t)
		pin, _ := r.VerifyAuditHead(ctxBack, AuditHead{})
		rewriteAudit(t, r, db, func(es []AuditEntry) []AuditEntry {
			es[1].At = es[1].At.Add(-time.Hour)
			return es[:4]
		})
		if _, err := r.VerifyAuditHead(ctxBack, pin); !errors.Is(err, ErrAuditBroken) || !strings.Contains(err.Error(), "log ends at entry 4") {
			t.Errorf("pinned %v: %v", pin, err)
		}
	})
}

func entryHash(t *testing.T, r *Registry, seq int64) string {
	t.Helper()
	es, err := r.Audit(ctxBack, AuditFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil || len(es) != 1 {
		t.Fatalf("entry %d: %v", seq, err)
	}
	return es[0].Hash
}

func TestParseAuditHead(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"12:" + hash:                        "12:" + hash,
		" 12:" + strings.ToUpper(hash):      "12:" + hash,
		"12":                                `audit head "12" is not SEQ:HASH`,
		"x:" + hash:                         `sequence number "x" is not a whole number from 1`,
		"0:" + hash:                         `sequence number "0"`,
		"-3:" + hash:                        `sequence number "-3"`,
		"99999999999999999999:" + hash:      `sequence number "99999999999999999999"`,
		"12:" + hash[:63]:                   `hash "` + hash[:63] + `" is not 64 hex digits`,
		"12:" + hash[:63] + "g":             `is not 64 hex digits`,
		"12:" + hash + "00":                 `is not 64 hex digits`,
		"12:":                               `hash "" is not 64 hex digits`,
		"12:" + hash[:62] + "\u00e9":        `is not 64 hex digits`,
		"12:" + hash[:32] + ":" + hash[:31]: `is not 64 hex digits`,
	} {
		h, err := ParseAuditHead(in)
		switch {
		case err == nil && h.String() != want:
			t.Errorf("%q: %v; want %s", in, h, want)
		case err != nil && (!strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalid)):
			t.Errorf("%q: %v; want an error with %q", in, err, want)
		}
	}
}

func FuzzParseAuditHead(f *testing.F) {
	for _, s := range []string{"12:" + strings.Repeat("ab", 32), "1:" + strings.Repeat("0", 64), "12", ":", "0:", "-1:x", "9223372036854775808:ab", "7:AB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseAuditHead(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if h.Seq < 1 || len(h.Hash) != 64 {
			t.Fatalf("%q: accepted %+v", s, h)
		}
		if again, err := ParseAuditHead(h.String()); err != nil || again != h {
			t.Fatalf("%q: round trip %v: %+v, %v", s, h, again, err)
		}
	})
}
