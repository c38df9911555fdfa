package exhibit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/progress"
)

// seal writes the manifest of every file written so far, then the summary
// that quotes the manifest's hash, then the note the log key signs over
// both hashes.
func (x *exporter) seal(ctx context.Context) error {
	var entries []ManifestEntry
	err := filepath.WalkDir(x.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(x.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if exempt(rel) {
			return nil
		}
		h, err := hashFile(p)
		if err != nil {
			return err
		}
		entries = append(entries, ManifestEntry{Hash: h, Path: rel})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b ManifestEntry) int { return strings.Compare(a.Path, b.Path) })
	manifest := WriteManifest(entries)
	if err := x.write(FileManifest, manifest); err != nil {
		return err
	}
	mh := sha256.Sum256(manifest)
	x.res.Manifest = hex.EncodeToString(mh[:])
	summary, err := x.summary(len(entries))
	if err != nil {
		return err
	}
	if err := x.write(FileSummary, summary); err != nil {
		return err
	}
	signed, err := note.Sign(&note.Note{Text: manifestNoteText(x.caseFile.Case.Name, mh, sha256.Sum256(summary))}, x.c.Signer)
	if err != nil {
		return err
	}
	return x.write(FileManifestNote, signed)
}

func hashFile(p string) ([32]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

// rootB64 is a checkpoint's root as its note writes it.
func rootB64(root [32]byte) string { return base64.StdEncoding.EncodeToString(root[:]) }

// progressBar is a progress bar on w, which draws only on a terminal.
func progressBar(w io.Writer, label, unit string, total int64) *progress.Bar {
	if w == nil {
		w = io.Discard
	}
	return progress.New(w, label, unit, total)
}

// stripXMLDecl drops an SVG file's XML declaration, to inline it in HTML.
func stripXMLDecl(svg []byte) []byte {
	if bytes.HasPrefix(svg, []byte("<?xml")) {
		if i := bytes.Index(svg, []byte("?>")); i >= 0 {
			return bytes.TrimLeft(svg[i+2:], "\r\n")
		}
	}
	return svg
}
