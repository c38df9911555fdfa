package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// SignerConfig says where the log's signing key is: a key file, or an
// external command that signs (a hardware token, a KMS). Exactly one of
// KeyFile and Command is set.
type SignerConfig struct {
	// KeyFile holds a note signer key (PRIVATE+KEY+name+hash+base64, from
	// GenerateKey or `takedown evidence keygen`) on one line. It must not
	// be readable or writable by group or others (mode 0600 or 0400).
	KeyFile string
	// Command is an external signer: the program and its arguments. It
	// gets the message to sign on stdin and writes the 64-byte Ed25519
	// signature on stdout, raw or in base64.
	Command []string
	// VerifierKey is the note verifier key (name+hash+base64) of the
	// command's key. Required with Command: each signature the command
	// returns is checked against it before it is used.
	VerifierKey string
	// Timeout bounds one run of Command. Zero: 10 s.
	Timeout time.Duration
}

// GenerateKey returns a new Ed25519 note key pair named name: the signer
// key (keep it in a 0600 file) and the verifier key (publish it).
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("generating key %q: %w", name, err)
	}
	return skey, vkey, nil
}

// LoadSigner returns the log's signer and the verifier of its key.
func LoadSigner(cfg SignerConfig) (note.Signer, note.Verifier, error) {
	switch {
	case cfg.KeyFile != "" && len(cfg.Command) > 0:
		return nil, nil, errors.New("evidence signer: both a key file and a command are set; choose one")
	case cfg.KeyFile != "":
		return loadKeyFile(cfg.KeyFile)
	case len(cfg.Command) > 0:
		return newCommandSigner(cfg)
	}
	return nil, nil, errors.New("evidence signer: neither a key file nor a command is set")
}

func loadKeyFile(path string) (note.Signer, note.Verifier, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("evidence key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, nil, fmt.Errorf("evidence key file %s has mode %04o: group or others may read or write it; chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("evidence key file: %w", err)
	}
	skey := strings.TrimSpace(string(b))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("evidence key file %s: not a note signer key (PRIVATE+KEY+name+hash+base64): %w", path, err)
	}
	v, err := verifierOf(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("evidence key file %s: %w", path, err)
	}
	return s, v, nil
}

// verifierOf derives the verifier of a note signer key
// (PRIVATE+KEY+name+hash+base64 of the algorithm byte and the seed).
func verifierOf(skey string) (note.Verifier, error) {
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// VerifierKey returns the note verifier key (name+hash+base64) of a note
// signer key (PRIVATE+KEY+name+hash+base64), as published beside the log.
func VerifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a note signer key (PRIVATE+KEY+name+hash+base64)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	return note.NewEd25519VerifierKey(parts[2], ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
}

// commandSigner signs by running an external program.
type commandSigner struct {
	cmd      []string
	timeout  time.Duration
	verifier note.Verifier
}

func newCommandSigner(cfg SignerConfig) (note.Signer, note.Verifier, error) {
	if cfg.VerifierKey == "" {
		return nil, nil, errors.New("evidence signer command: the verifier key of its key is not set")
	}
	v, err := note.NewVerifier(strings.TrimSpace(cfg.VerifierKey))
	if err != nil {
		return nil, nil, fmt.Errorf("evidence signer command: verifier key: %w", err)
	}
	t := cfg.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	return &commandSigner{cmd: cfg.Command, timeout: t, verifier: v}, v, nil
}

func (s *commandSigner) Name() string    { return s.verifier.Name() }
func (s *commandSigner) KeyHash() uint32 { return s.verifier.KeyHash() }

// Sign runs the command with msg on stdin and checks the signature it
// prints against the verifier key.
func (s *commandSigner) Sign(msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.cmd[0], s.cmd[1:]...)
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("signer command %s: no signature within %s", s.cmd[0], s.timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("signer command %s: %w: %s", s.cmd[0], err, cutBytes(bytes.TrimSpace(stderr.Bytes()), 200))
	}
	sig := out
	if len(sig) != 64 {
		dec, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(out)))
		if derr != nil || len(dec) != 64 {
			return nil, fmt.Errorf("signer command %s: printed %d bytes, neither a 64-byte Ed25519 signature nor its base64", s.cmd[0], len(out))
		}
		sig = dec
	}
	if !s.verifier.Verify(msg, sig) {
		return nil, fmt.Errorf("signer command %s: the signature it printed does not verify with key %s+%08x", s.cmd[0], s.verifier.Name(), s.verifier.KeyHash())
	}
	return sig, nil
}
