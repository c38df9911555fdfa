package evidence_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
)

// testKey returns the note keys of the Ed25519 key whose seed is 32 bytes
// of b, so that examples are the same in every run.
func testKey(t testing.TB, name string, b byte) (skey, vkey string) {
	t.Helper()
	seed := bytes.Repeat([]byte{b}, ed25519.SeedSize)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.Split(vkey, "+")[1]
	skey = "PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))
	return skey, vkey
}

// keys returns the signer and verifier of testKey(name, b).
func keys(t testing.TB, name string, b byte) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey := testKey(t, name, b)
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// clock is a test clock that moves a second at each reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// openDB opens a fresh DuckDB file, closed when the test ends.
func openDB(t testing.TB) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "takedown.db")
	db, err := dbfile.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// openLog opens a log on db signed by the test key "log.example", with a
// clock from 2010-02-22 12:00:00 UTC.
func openLog(t testing.TB, db *sql.DB) *evidence.Log {
	t.Helper()
	s, v := keys(t, "log.example", 1)
	c := &clock{t: time.Date(2010, 2, 22, 12, 0, 0, 0, time.UTC)}
	l, err := evidence.Open(context.Background(), evidence.Config{DB: db, Origin: "takedown/test", Signer: s, Verifier: v, Now: c.now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// batch returns n DNS events numbered from k.
func batch(k, n int) []event.Event {
	out := make([]event.Event, n)
	t0 := time.Date(2010, 2, 22, 0, 0, 0, 0, time.UTC)
	for i := range out {
		j := k + i
		out[i] = event.Event{
			Time: t0.Add(time.Duration(j) * time.Second), Sensor: "ns1", Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP: netip.AddrFrom4([4]byte{198, 51, byte(j >> 8), byte(j)}), SrcPort: uint16(1024 + j), DstPort: 53,
			Domain: fmt.Sprintf("q%d.waledac.example", j), Zone: "waledac.example", Case: "waledac-2010", Family: "waledac",
			DNSQType: "A", DNSRcode: "NOERROR", Bytes: 40,
		}
	}
	return out
}

// appendBatches appends n leaves of batches of 3 events each, the events
// numbered on from the log's size so that no two leaves are the same.
func appendBatches(t testing.TB, l *evidence.Log, n int) {
	t.Helper()
	size, err := l.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := l.AppendBatch(context.Background(), batch(3*(int(size)+i), 3)); err != nil {
			t.Fatal(err)
		}
	}
}
