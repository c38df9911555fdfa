package evidence_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/evidence"
)

// The test binary doubles as an external signer: with
// TAKEDOWN_TEST_SIGNER set to a seed byte it signs stdin with that key and
// prints the signature (base64 when TAKEDOWN_TEST_SIGNER_BASE64 is set);
// "sleep" never answers.
func TestMain(m *testing.M) {
	if mode := os.Getenv("TAKEDOWN_TEST_SIGNER"); mode != "" {
		if mode == "sleep" {
			time.Sleep(time.Minute)
			os.Exit(1)
		}
		msg, err := io.ReadAll(os.Stdin)
		if err != nil {
			os.Exit(2)
		}
		key := ed25519.NewKeyFromSeed([]byte(strings.Repeat(mode[:1], 32)))
		sig := ed25519.Sign(key, msg)
		if os.Getenv("TAKEDOWN_TEST_SIGNER_BASE64") != "" {
			os.Stdout.WriteString(base64.StdEncoding.EncodeToString(sig) + "\n")
		} else {
			os.Stdout.Write(sig)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLoadSignerKeyFile(t *testing.T) {
	skey, vkey, err := evidence.GenerateKey("log.example")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "log.key")
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	_, _, err = evidence.LoadSigner(evidence.SignerConfig{KeyFile: path})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "0640") {
		t.Fatalf("a key file of mode 0640: %v", err)
	}
	os.Chmod(path, 0o600)
	s, v, err := evidence.LoadSigner(evidence.SignerConfig{KeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != "log.example" || s.KeyHash() != v.KeyHash() {
		t.Errorf("signer %s+%08x, verifier %s+%08x", s.Name(), s.KeyHash(), v.Name(), v.KeyHash())
	}
	want, _ := note.NewVerifier(vkey)
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(want)); err != nil {
		t.Errorf("the loaded key's signature does not verify with GenerateKey's verifier: %v", err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Errorf("the derived verifier does not verify: %v", err)
	}
	os.WriteFile(path, []byte("not a key\n"), 0o600)
	if _, _, err := evidence.LoadSigner(evidence.SignerConfig{KeyFile: path}); err == nil || !strings.Contains(err.Error(), "not a note signer key") {
		t.Errorf("a file without a key: %v", err)
	}
	if _, _, err := evidence.LoadSigner(evidence.SignerConfig{}); err == nil {
		t.Error("no key file and no command: no error")
	}
}

func TestLoadSignerCommand(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, vkey := testKey(t, "hsm.example", 'k')
	for _, b64 := range []string{"", "1"} {
		t.Setenv("TAKEDOWN_TEST_SIGNER", "k")
		t.Setenv("TAKEDOWN_TEST_SIGNER_BASE64", b64)
		s, v, err := evidence.LoadSigner(evidence.SignerConfig{Command: []string{self}, VerifierKey: vkey})
		if err != nil {
			t.Fatal(err)
		}
		db, _ := openDB(t)
		l, err := evidence.Open(t.Context(), evidence.Config{DB: db, Origin: "takedown/hsm", Signer: s, Verifier: v})
		if err != nil {
			t.Fatal(err)
		}
		appendBatches(t, l, 2)
		c, err := l.Checkpoint(t.Context())
		if err != nil {
			t.Fatalf("checkpoint signed by a command (base64 %q): %v", b64, err)
		}
		if _, err := evidence.ParseCheckpoint(c.Note, note.VerifierList(v)); err != nil {
			t.Error(err)
		}
	}
	// A command that signs with another key than the configured one.
	t.Setenv("TAKEDOWN_TEST_SIGNER", "x")
	s, _, err := evidence.LoadSigner(evidence.SignerConfig{Command: []string{self}, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign([]byte("m\n")); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("a signature by another key: %v", err)
	}
	t.Setenv("TAKEDOWN_TEST_SIGNER", "sleep")
	s, _, _ = evidence.LoadSigner(evidence.SignerConfig{Command: []string{self}, VerifierKey: vkey, Timeout: 200 * time.Millisecond})
	start := time.Now()
	if _, err := s.Sign([]byte("m\n")); err == nil || !strings.Contains(err.Error(), "no signature within") {
		t.Errorf("a command that never answers: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout took %s", d)
	}
	if _, _, err := evidence.LoadSigner(evidence.SignerConfig{Command: []string{self}}); err == nil || !strings.Contains(err.Error(), "verifier key") {
		t.Errorf("a command without a verifier key: %v", err)
	}
}

func TestCosign(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	l := openLog(t, db)
	_, logV := keys(t, "log.example", 1)
	witness, witnessV := keys(t, "witness.example", 2)
	appendBatches(t, l, 3)
	c3, _ := l.Checkpoint(ctx)
	first, err := evidence.Cosign(c3.Note, nil, nil, logV, witness)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(first, note.VerifierList(logV, witnessV))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("cosigned note: %v, %d signatures", err, len(n.Sigs))
	}
	if _, err := evidence.ParseCheckpoint(first, note.VerifierList(witnessV)); err != nil {
		t.Errorf("the witness's signature alone: %v", err)
	}
	appendBatches(t, l, 4)
	c7, _ := l.Checkpoint(ctx)
	proof, err := l.ProveConsistency(ctx, 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Cosign(c7.Note, &c3, proof, logV, witness); err != nil {
		t.Fatalf("cosigning a consistent checkpoint: %v", err)
	}
	// A wrong proof, a fork of the same size, a shorter tree.
	if _, err := evidence.Cosign(c7.Note, &c3, proof[1:], logV, witness); err == nil || !strings.Contains(err.Error(), "not consistent") {
		t.Errorf("a wrong proof: %v", err)
	}
	fdb, _ := openDB(t)
	fork := openLog(t, fdb)
	appendBatches(t, fork, 2)
	fork.AppendBatch(ctx, batch(999, 1))
	f3, _ := fork.Checkpoint(ctx)
	if _, err := evidence.Cosign(f3.Note, &c3, nil, logV, witness); err == nil || !strings.Contains(err.Error(), "forked") {
		t.Errorf("a fork: %v", err)
	}
	if _, err := evidence.Cosign(c3.Note, &c7, nil, logV, witness); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("a shorter tree: %v", err)
	}
	_, otherV := keys(t, "other.example", 3)
	if _, err := evidence.Cosign(c7.Note, &c3, proof, otherV, witness); err == nil {
		t.Error("cosigned a checkpoint the log's key did not sign")
	}
}
