package evidence

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

const (
	inclusionHeader   = "takedown-evidence/inclusion/v1"
	consistencyHeader = "takedown-evidence/consistency/v1"
	// maxProofHashes bounds a proof read from outside: a tree of 2^63
	// leaves needs at most 2·63 hashes.
	maxProofHashes = 128
)

// WriteInclusion writes the proof that leaf idx is in the tree of size
// leaves: the header line, "index N", "size S", then one base64 hash per
// line.
func WriteInclusion(w io.Writer, idx, size int64, p tlog.RecordProof) error {
	return writeProof(w, inclusionHeader, "index", idx, size, p)
}

// ReadInclusion reads a proof written by WriteInclusion. Errors name the
// line that is wrong.
func ReadInclusion(r io.Reader) (idx, size int64, p tlog.RecordProof, err error) {
	idx, size, p, err = readProof(r, inclusionHeader, "index")
	if err == nil && idx >= size {
		err = fmt.Errorf("inclusion proof: index %d is not below the tree size %d", idx, size)
	}
	return idx, size, p, err
}

// WriteConsistency writes the proof that the tree of size old leaves is a
// prefix of the tree of size leaves: the header line, "old N", "new S",
// then one base64 hash per line.
func WriteConsistency(w io.Writer, old, size int64, p tlog.TreeProof) error {
	return writeProof(w, consistencyHeader, "old", old, size, p)
}

// ReadConsistency reads a proof written by WriteConsistency. Errors name
// the line that is wrong.
func ReadConsistency(r io.Reader) (old, size int64, p tlog.TreeProof, err error) {
	old, size, p, err = readProof(r, consistencyHeader, "old")
	if err == nil && old > size {
		err = fmt.Errorf("consistency proof: old size %d is above the new size %d", old, size)
	}
	return old, size, p, err
}

func writeProof(w io.Writer, header, first string, a, size int64, hashes []tlog.Hash) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s %d\n", header, first, a)
	fmt.Fprintf(&b, "%s %d\n", map[bool]string{true: "size", false: "new"}[first == "index"], size)
	for _, h := range hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func readProof(r io.Reader, header, first string) (int64, int64, []tlog.Hash, error) {
	kind := strings.TrimSuffix(strings.TrimPrefix(header, "takedown-evidence/"), "/v1")
	second := "size"
	if first == "old" {
		second = "new"
	}
	sc := bufio.NewScanner(io.LimitReader(r, 1<<16))
	sc.Buffer(make([]byte, 0, 256), 256)
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	if h, ok := next(); !ok || h != header {
		return 0, 0, nil, fmt.Errorf("%s proof line 1: %q is not %q", kind, cutBytes([]byte(h), 60), header)
	}
	num := func(key string) (int64, error) {
		s, ok := next()
		v, found := strings.CutPrefix(s, key+" ")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || !found || err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
			return 0, fmt.Errorf("%s proof line %d: %q is not %q and a decimal number", kind, line, cutBytes([]byte(s), 60), key)
		}
		return n, nil
	}
	a, err := num(first)
	if err != nil {
		return 0, 0, nil, err
	}
	size, err := num(second)
	if err != nil {
		return 0, 0, nil, err
	}
	var hashes []tlog.Hash
	for {
		s, ok := next()
		if !ok {
			break
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			return 0, 0, nil, fmt.Errorf("%s proof line %d: %q is not the base64 of a 32-byte hash", kind, line, cutBytes([]byte(s), 60))
		}
		if len(hashes) == maxProofHashes {
			return 0, 0, nil, fmt.Errorf("%s proof line %d: more than %d hashes", kind, line, maxProofHashes)
		}
		hashes = append(hashes, tlog.Hash(raw))
	}
	if err := sc.Err(); err != nil {
		return 0, 0, nil, fmt.Errorf("%s proof line %d: %w", kind, line+1, err)
	}
	return a, size, hashes, nil
}
