package exhibit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
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

// manifestNoteHeader heads the text of MANIFEST.sha256.note.
const manifestNoteHeader = "takedown-exhibit/manifest/v1\n"

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
	if !strings.HasSuffix(rest, "\n") {
		return m, errors.New("the text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(rest, "\n"), "\n")
	if len(lines) != 3 {
		return m, fmt.Errorf("the text has %d lines after the header; want 3 (case, %s, %s)", len(lines), FileManifest, FileSummary)
	}
	c, ok := strings.CutPrefix(lines[0], "case ")
	if !ok || c == "" || strings.ContainsAny(c, " \t\r") {
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
