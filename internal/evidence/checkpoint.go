package evidence

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the log's tree: its size and root
// hash at a time, in the C2SP tlog-checkpoint format.
type Checkpoint struct {
	// Origin names the log, e.g. "takedown/central-1".
	Origin string
	// Size is the number of leaves of the tree.
	Size int64
	// Root is the tree's root hash.
	Root tlog.Hash
	// Time is when the log signed it, UTC, whole seconds.
	Time time.Time
	// Note is the whole signed note, as stored and published.
	Note []byte
}

// checkpointBody is the text a checkpoint's signatures cover:
// origin, size, base64 root and the time extension line.
func checkpointBody(origin string, size int64, root tlog.Hash, at time.Time) string {
	return origin + "\n" + strconv.FormatInt(size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(root[:]) + "\n" +
		"time " + at.UTC().Format(time.RFC3339) + "\n"
}

// signCheckpoint signs the checkpoint body with s.
func signCheckpoint(s note.Signer, origin string, size int64, root tlog.Hash, at time.Time) (Checkpoint, error) {
	at = at.UTC().Truncate(time.Second)
	msg, err := note.Sign(&note.Note{Text: checkpointBody(origin, size, root, at)}, s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("signing checkpoint of size %d: %w", size, err)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root, Time: at, Note: msg}, nil
}

// ParseCheckpoint parses and checks a signed checkpoint from outside. At
// least one signature must be by one of v (note.Open's rule); the body must
// be exactly origin, size, base64 root hash and one "time" line in RFC 3339
// UTC with seconds. Errors name the line that is wrong.
func ParseCheckpoint(signed []byte, v note.Verifiers) (Checkpoint, error) {
	n, err := note.Open(signed, v)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			var by []string
			for _, s := range unverified.Note.UnverifiedSigs {
				by = append(by, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return Checkpoint{}, fmt.Errorf("checkpoint: no signature by a known key (signed only by %s): %w", strings.Join(by, ", "), err)
		}
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := parseCheckpointBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	c.Note = bytes.Clone(signed)
	return c, nil
}

// parseCheckpointBody parses the text a checkpoint's signatures cover.
func parseCheckpointBody(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 5 || lines[4] != "" {
		return Checkpoint{}, fmt.Errorf("checkpoint: body has %d lines, want 4 (origin, size, root hash, time)", strings.Count(text, "\n"))
	}
	for i := range 4 {
		lines[i] = strings.TrimSuffix(lines[i], "\n")
	}
	var c Checkpoint
	c.Origin = lines[0]
	if c.Origin == "" {
		return Checkpoint{}, errors.New("checkpoint line 1: origin is empty")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint line 2: tree size %q is not a decimal number", cutBytes([]byte(lines[1]), 40))
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("checkpoint line 3: root hash %q is not the base64 of 32 bytes", cutBytes([]byte(lines[2]), 80))
	}
	copy(c.Root[:], root)
	ts, ok := strings.CutPrefix(lines[3], "time ")
	if !ok {
		return Checkpoint{}, fmt.Errorf("checkpoint line 4: %q is not \"time <RFC 3339 UTC>\"", cutBytes([]byte(lines[3]), 80))
	}
	at, err := time.Parse(time.RFC3339, ts)
	if err != nil || at.Format(time.RFC3339) != ts || at.Location() != time.UTC {
		return Checkpoint{}, fmt.Errorf("checkpoint line 4: time %q is not RFC 3339 in UTC with whole seconds", cutBytes([]byte(ts), 60))
	}
	c.Time = at
	return c, nil
}

// Cosign is what a witness does: it checks that signed is a checkpoint
// signed by the log (logVerifier) and, when prev (the last checkpoint the
// witness cosigned) is not nil, that proof shows the new tree extends prev's
// tree; then it returns signed with the witness's signature line added. A
// witness that cosigns only consistent checkpoints makes a fork visible: two
// trees of the same log cannot both carry its signature.
func Cosign(signed []byte, prev *Checkpoint, proof tlog.TreeProof, logVerifier note.Verifier, witness note.Signer) ([]byte, error) {
	n, err := note.Open(signed, note.VerifierList(logVerifier))
	if err != nil {
		return nil, fmt.Errorf("cosigning: the checkpoint does not carry a valid signature of %s: %w", logVerifier.Name(), err)
	}
	c, err := parseCheckpointBody(n.Text)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	if prev != nil {
		switch {
		case prev.Origin != c.Origin:
			return nil, fmt.Errorf("cosigning: the checkpoint is of log %q, the last one cosigned of %q", c.Origin, prev.Origin)
		case c.Size < prev.Size:
			return nil, &TamperError{Leaf: -1, Checkpoint: c.Size, Reason: fmt.Sprintf("the tree has %d leaves, fewer than the %d of the last checkpoint cosigned: the log was truncated", c.Size, prev.Size)}
		case c.Size == prev.Size && c.Root != prev.Root:
			return nil, &TamperError{Leaf: -1, Checkpoint: c.Size, Reason: "same size as the last checkpoint cosigned but another root: the log forked"}
		case c.Size > prev.Size && prev.Size > 0:
			if err := tlog.CheckTree(proof, c.Size, c.Root, prev.Size, prev.Root); err != nil {
				return nil, &TamperError{Leaf: -1, Checkpoint: c.Size, Reason: fmt.Sprintf("not consistent with the last checkpoint cosigned (size %d): %v", prev.Size, err)}
			}
		}
	}
	// Keep the log's signatures and any other cosignatures as they are.
	n.Sigs = append(n.Sigs, n.UnverifiedSigs...)
	n.UnverifiedSigs = nil
	out, err := note.Sign(n, witness)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	return out, nil
}
