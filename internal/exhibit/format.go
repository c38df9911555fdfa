package exhibit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// The files of an exhibit; docs/exhibit.md describes each byte for byte.
const (
	FileReadme       = "README.txt"
	FileSummary      = "summary.html"
	FileCase         = "case.json"
	FileCountsCSV    = "counts.csv"
	FileCountsJSON   = "counts.json"
	FileEvents       = "events.jsonl"
	FileEventsCSV    = "events.csv"
	FileKey          = "key.pub"
	FileManifest     = "MANIFEST.sha256"
	FileManifestNote = "MANIFEST.sha256.note"
	DirMaps          = "maps"
	DirLeaves        = "leaves"
	DirProofs        = "proofs"
	DirCheckpoints   = "checkpoints"
	DirAudit         = "audit"
)

// The headers of the log's formats (the evidence log's, restated here so
// that verifying needs nothing but this package and the folder).
const (
	batchHeader       = "takedown-evidence/batch/v1\n"
	auditHeader       = "takedown-evidence/audit/v1\n"
	inclusionHeader   = "takedown-evidence/inclusion/v1\n"
	consistencyHeader = "takedown-evidence/consistency/v1\n"
	// manifestNoteHeader heads the text of MANIFEST.sha256.note.
	manifestNoteHeader = "takedown-exhibit/manifest/v1\n"
)

// ManifestEntry is one line of MANIFEST.sha256.
type ManifestEntry struct {
	Hash [32]byte
	Path string
}

// WriteManifest returns the manifest of entries in sha256sum's format: the
// lowercase hex SHA-256, two spaces, the path ('/' between folders), '\n';
// sorted by path.
func WriteManifest(entries []ManifestEntry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(hex.EncodeToString(e.Hash[:]))
		b.WriteString("  ")
		b.WriteString(e.Path)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseManifest reads MANIFEST.sha256. Every line must be 64 lowercase hex
// digits, two spaces and a clean relative path, the paths in ascending
// byte order without repeats; an error names the line (from 1) and quotes
// it.
func ParseManifest(data []byte) ([]ManifestEntry, error) {
	if len(data) == 0 {
		return nil, errors.New("empty: it lists no file")
	}
	if data[len(data)-1] != '\n' {
		return nil, errors.New("the last line does not end in a newline: the file was cut")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	out := make([]ManifestEntry, 0, len(lines))
	for i, line := range lines {
		n := i + 1
		h, p, ok := strings.Cut(line, "  ")
		if !ok || len(h) != 64 || !isLowerHex(h) {
			return nil, fmt.Errorf("line %d %q: not the SHA-256 in 64 lowercase hex digits, two spaces and a path", n, cut(line))
		}
		if err := checkPath(p); err != nil {
			return nil, fmt.Errorf("line %d %q: %v", n, cut(line), err)
		}
		if len(out) > 0 && out[len(out)-1].Path >= p {
			return nil, fmt.Errorf("line %d %q: the paths are not in ascending order without repeats (after %q)", n, cut(line), out[len(out)-1].Path)
		}
		var e ManifestEntry
		hex.Decode(e.Hash[:], []byte(h))
		e.Path = p
		out = append(out, e)
	}
	return out, nil
}

// checkPath accepts a relative path of the exhibit's own: '/' separated,
// no empty, "." or ".." element, printable ASCII only.
func checkPath(p string) error {
	if p == "" || path.Clean(p) != p || strings.HasPrefix(p, "/") || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("path %q is not a clean relative path inside the exhibit", cut(p))
	}
	for _, c := range []byte(p) {
		if c <= ' ' || c >= 0x7f || c == '\\' {
			return fmt.Errorf("path %q has a character other than printable ASCII without spaces and backslashes", cut(p))
		}
	}
	return nil
}

// manifestNoteText is the text the log key signs: the header, the case, and
// the hashes of MANIFEST.sha256 and of summary.html.
func manifestNoteText(caseName string, manifest, summary [32]byte) string {
	return manifestNoteHeader + "case " + caseName + "\n" +
		FileManifest + " " + hex.EncodeToString(manifest[:]) + "\n" +
		FileSummary + " " + hex.EncodeToString(summary[:]) + "\n"
}

// manifestNote is what the text of MANIFEST.sha256.note says.
type manifestNote struct {
	Case              string
	Manifest, Summary [32]byte
}

// parseManifestNoteText reads the text of MANIFEST.sha256.note (without
// its signatures).
func parseManifestNoteText(text string) (manifestNote, error) {
	var m manifestNote
	rest, ok := strings.CutPrefix(text, manifestNoteHeader)
	if !ok {
		return m, fmt.Errorf("the text does not begin with %q", strings.TrimSpace(manifestNoteHeader))
	}
	lines := strings.Split(strings.TrimSuffix(rest, "\n"), "\n")
	if len(lines) != 3 {
		return m, fmt.Errorf("the text has %d lines after the header; want 3 (case, %s, %s)", len(lines), FileManifest, FileSummary)
	}
	c, ok := strings.CutPrefix(lines[0], "case ")
	if !ok || c == "" {
		return m, fmt.Errorf("line 2 %q is not \"case NAME\"", cut(lines[0]))
	}
	m.Case = c
	for i, want := range []struct {
		name string
		dst  *[32]byte
	}{{FileManifest, &m.Manifest}, {FileSummary, &m.Summary}} {
		h, ok := strings.CutPrefix(lines[1+i], want.name+" ")
		if !ok || len(h) != 64 || !isLowerHex(h) {
			return m, fmt.Errorf("line %d %q is not %q and 64 lowercase hex digits", i+3, cut(lines[1+i]), want.name)
		}
		hex.Decode(want.dst[:], []byte(h))
	}
	return m, nil
}

// batchLeaf is a batch leaf's data: the header and the event hashes,
// sorted, one per line.
func batchLeaf(hashes [][32]byte) []byte {
	b := make([]byte, 0, len(batchHeader)+65*len(hashes))
	b = append(b, batchHeader...)
	for _, h := range hashes {
		b = hex.AppendEncode(b, h[:])
		b = append(b, '\n')
	}
	return b
}

// parseBatchLeaf reads a batch leaf's data: the header, then lowercase hex
// SHA-256 hashes in ascending order (repeats allowed), each ending in a
// newline, and nothing else.
func parseBatchLeaf(data []byte) ([][32]byte, error) {
	rest, ok := bytes.CutPrefix(data, []byte(batchHeader))
	if !ok {
		return nil, fmt.Errorf("does not begin with the line %q", strings.TrimSpace(batchHeader))
	}
	if len(rest)%65 != 0 {
		return nil, fmt.Errorf("after the header, %d bytes are not whole lines of 64 hex digits and a newline", len(rest))
	}
	out := make([][32]byte, len(rest)/65)
	for i := range out {
		line := rest[65*i : 65*i+65]
		if line[64] != '\n' || !isLowerHex(string(line[:64])) {
			return nil, fmt.Errorf("line %d %q is not an event hash: 64 lowercase hex digits", i+2, cut(string(bytes.TrimSuffix(line, []byte("\n")))))
		}
		hex.Decode(out[i][:], line[:64])
		if i > 0 && bytes.Compare(out[i-1][:], out[i][:]) > 0 {
			return nil, fmt.Errorf("line %d: the hashes are not in ascending order", i+2)
		}
	}
	return out, nil
}

// auditFields are the fields of an audit leaf, in the order of the
// registry's EntryHash.
var auditFields = [...]string{"prev", "seq", "at", "actor", "action", "object", "detail", "reason"}

// parseAuditLeaf reads an audit leaf's data: the header, then the eight
// fields each written as its length in bytes, ':', the bytes and '\n'. It
// returns the fields and the chain hash, the hex SHA-256 of everything
// after the header.
func parseAuditLeaf(data []byte) (fields [8]string, chain string, err error) {
	rest, ok := bytes.CutPrefix(data, []byte(auditHeader))
	if !ok {
		return fields, "", fmt.Errorf("does not begin with the line %q", strings.TrimSpace(auditHeader))
	}
	sum := sha256.Sum256(rest)
	for i, name := range auditFields {
		colon := bytes.IndexByte(rest, ':')
		if colon < 1 || colon > 10 {
			return fields, "", fmt.Errorf("field %s: no length and ':'", name)
		}
		n, err := strconv.Atoi(string(rest[:colon]))
		if err != nil || n < 0 || strconv.Itoa(n) != string(rest[:colon]) {
			return fields, "", fmt.Errorf("field %s: length %q is not a decimal number", name, cut(string(rest[:colon])))
		}
		rest = rest[colon+1:]
		if len(rest) < n+1 || rest[n] != '\n' {
			return fields, "", fmt.Errorf("field %s: %d bytes and a newline do not follow its length", name, n)
		}
		fields[i] = string(rest[:n])
		rest = rest[n+1:]
	}
	if len(rest) != 0 {
		return fields, "", fmt.Errorf("%d bytes follow the last field", len(rest))
	}
	return fields, hex.EncodeToString(sum[:]), nil
}

// proof is an inclusion or a consistency proof as the files hold it.
type proof struct {
	// A and B are index and size (inclusion) or old and new (consistency).
	A, B   int64
	Hashes []tlog.Hash
}

// writeProof writes a proof file: the header, the two numbers, then one
// base64 hash per line.
func writeProof(header, a, b string, p proof) []byte {
	var buf bytes.Buffer
	buf.WriteString(header)
	fmt.Fprintf(&buf, "%s %d\n%s %d\n", a, p.A, b, p.B)
	for _, h := range p.Hashes {
		buf.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func writeInclusion(idx, size int64, p tlog.RecordProof) []byte {
	return writeProof(inclusionHeader, "index", "size", proof{idx, size, p})
}

func writeConsistency(old, size int64, p tlog.TreeProof) []byte {
	return writeProof(consistencyHeader, "old", "new", proof{old, size, p})
}

// parseProof reads a proof file of the header whose numbers are named a
// and b.
func parseProof(data []byte, header, a, b string) (proof, error) {
	var p proof
	rest, ok := bytes.CutPrefix(data, []byte(header))
	if !ok {
		return p, fmt.Errorf("does not begin with the line %q", strings.TrimSpace(header))
	}
	if len(rest) == 0 || rest[len(rest)-1] != '\n' {
		return p, errors.New("the last line does not end in a newline: the file was cut")
	}
	lines := strings.Split(string(rest[:len(rest)-1]), "\n")
	if len(lines) < 2 {
		return p, fmt.Errorf("the lines %q and %q are missing", a+" N", b+" N")
	}
	for i, f := range []struct {
		name string
		dst  *int64
	}{{a, &p.A}, {b, &p.B}} {
		v, ok := strings.CutPrefix(lines[i], f.name+" ")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
			return p, fmt.Errorf("line %d %q is not %q and a whole number", i+2, cut(lines[i]), f.name)
		}
		*f.dst = n
	}
	if len(lines)-2 > 64 {
		return p, fmt.Errorf("%d hashes: more than a tree of 2⁶³ leaves needs", len(lines)-2)
	}
	for i, line := range lines[2:] {
		raw, err := base64.StdEncoding.Strict().DecodeString(line)
		if err != nil || len(raw) != tlog.HashSize {
			return p, fmt.Errorf("line %d %q is not a base64 SHA-256 hash", i+4, cut(line))
		}
		p.Hashes = append(p.Hashes, tlog.Hash(raw))
	}
	return p, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// cut shortens s for an error message.
func cut(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
