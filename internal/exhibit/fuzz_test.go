package exhibit

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseManifest: whatever MANIFEST.sha256 holds, the parser does not
// panic, and what it accepts writes back to the same bytes.
func FuzzParseManifest(f *testing.F) {
	h := strings.Repeat("ab", 32)
	for _, s := range []string{
		h + "  README.txt\n" + h + "  leaves/0.txt\n",
		h + "  b\n" + h + "  a\n",
		h + "  ../etc/passwd\n",
		h + " README.txt\n",
		h + "  a b\n",
		h + "  README.txt",
		"",
		strings.ToUpper(h) + "  x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseManifest(data)
		if err != nil {
			return
		}
		if back := WriteManifest(entries); !bytes.Equal(back, data) {
			t.Fatalf("accepted %q but writes back %q", data, back)
		}
	})
}

// FuzzManifestNoteText: the signed note's text parses or fails cleanly,
// and what parses is what manifestNoteText writes.
func FuzzManifestNoteText(f *testing.F) {
	f.Add(manifestNoteText("waledac-2010", [32]byte{1}, [32]byte{2}))
	f.Add(manifestNoteHeader + "case x\n")
	f.Add("takedown-exhibit/manifest/v2\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseManifestNoteText(text)
		if err != nil {
			return
		}
		if back := manifestNoteText(m.Case, m.Manifest, m.Summary); back != text {
			t.Fatalf("accepted %q but writes back %q", text, back)
		}
	})
}

// FuzzReadEventLine: a line of events.jsonl as verify reads it.
func FuzzReadEventLine(f *testing.F) {
	for _, s := range []string{
		`{"time.source":"2026-12-05T00:00:00Z","feed.name":"takedown","classification.taxonomy":"malicious-code","classification.type":"infected-system","source.ip":"10.0.0.1","source.port":1024}`,
		`{"time.source":"2026-12-05T00:00:00Z"}`,
		`{}`, ``, `[]`, `{"source.ip":"::1"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := readEventLine(line)
		if err == nil && (e.Time.IsZero() || !e.SrcIP.IsValid()) {
			t.Fatalf("accepted %q without a time or an address", line)
		}
	})
}
