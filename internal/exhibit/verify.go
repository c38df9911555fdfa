package exhibit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
)

// Finding is one thing wrong with an exhibit.
type Finding struct {
	// File is the file's path in the exhibit, '/' between folders.
	File string `json:"file"`
	// Line is the line of File, from 1; 0 when the finding is about the
	// whole file.
	Line int `json:"line,omitempty"`
	// Leaf is the log's leaf index the finding is about; -1 none.
	Leaf int64 `json:"leaf"`
	// Checkpoint is the size of the checkpoint the finding is about; -1
	// none.
	Checkpoint int64 `json:"checkpoint"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
}

// String is "FILE:LINE (leaf N, checkpoint S): REASON".
func (f Finding) String() string {
	s := f.File
	if f.Line > 0 {
		s += ":" + strconv.Itoa(f.Line)
	}
	var what []string
	if f.Leaf >= 0 {
		what = append(what, "leaf "+strconv.FormatInt(f.Leaf, 10))
	}
	if f.Checkpoint >= 0 {
		what = append(what, "checkpoint "+strconv.FormatInt(f.Checkpoint, 10))
	}
	if len(what) > 0 {
		s += " (" + strings.Join(what, ", ") + ")"
	}
	return s + ": " + f.Reason
}

// Report is what Verify found.
type Report struct {
	Dir  string `json:"dir"`
	Case string `json:"case,omitempty"`
	// Files is the number of files the manifest lists.
	Files int `json:"files"`
	// Events is the number of lines of events.jsonl.
	Events int64 `json:"events"`
	// Sample is true when events.jsonl holds a sample (then counts.csv is
	// not recomputed from it).
	Sample bool `json:"sample"`
	// Leaves and AuditLeaves count the leaves proven included.
	Leaves      int `json:"leaves"`
	AuditLeaves int `json:"audit_leaves"`
	// Checkpoint is the checkpoint the proofs are against.
	Checkpoint CheckpointInfo `json:"checkpoint"`
	// Earlier is the number of earlier checkpoints proven consistent with
	// it.
	Earlier int `json:"earlier_checkpoints"`
	// Key is the verifier key the signatures were checked with.
	Key      string    `json:"key,omitempty"`
	Findings []Finding `json:"findings"`
}

// CheckpointInfo describes a signed checkpoint.
type CheckpointInfo struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   string    `json:"root"` // base64, as in the note
	Time   time.Time `json:"time"`
}

// OK reports whether nothing was found wrong.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

// Summary is the one line that says what verified.
func (r *Report) Summary() string {
	if !r.OK() {
		return fmt.Sprintf("%s: %d finding(s); the exhibit does not verify", r.Dir, len(r.Findings))
	}
	sample := ""
	if r.Sample {
		sample = " (a sample)"
	}
	return fmt.Sprintf("verified: %s: case %s, %d files, %d events%s in %d leaves, %d audit leaves, all included in checkpoint %d (root %s, %s) of %s, %d earlier checkpoint(s) consistent with it",
		r.Dir, r.Case, r.Files, r.Events, sample, r.Leaves, r.AuditLeaves, r.Checkpoint.Size, r.Checkpoint.Root,
		r.Checkpoint.Time.Format(time.RFC3339), r.Checkpoint.Origin, r.Earlier)
}

// VerifyOptions are the options of Verify.
type VerifyOptions struct {
	// Key is the log's verifier key as the verifier knows it from
	// elsewhere (a published copy); the signatures are checked with it and
	// key.pub must equal it. Empty: the exhibit's key.pub is trusted.
	Key string
}

// verifier is one run of Verify.
type verifier struct {
	dir      string
	r        *Report
	files    map[string][]byte // the files read, by path
	verifier note.Verifier
	caseFile *CaseFile
	counts   *Counts
	// the bundle's checkpoint, when one verified (proven)
	proven bool
	size   int64
	root   tlog.Hash
	// hashes of every leaf's events
	eventHashes map[[32]byte]struct{}
}

func (v *verifier) find(file string, line int, leaf, checkpoint int64, format string, args ...any) {
	v.r.Findings = append(v.r.Findings, Finding{File: file, Line: line, Leaf: leaf, Checkpoint: checkpoint, Reason: fmt.Sprintf(format, args...)})
}

// findf is a finding about a whole file.
func (v *verifier) findf(file string, format string, args ...any) {
	v.find(file, 0, -1, -1, format, args...)
}

// maxFile bounds the size of a file Verify reads whole.
const maxFile = 8 << 30

// Verify checks the exhibit in dir from its files alone and reports every
// problem found. The error is for a dir that cannot be read at all.
func Verify(dir string, o VerifyOptions) (*Report, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	v := &verifier{dir: dir, r: &Report{Dir: dir, Findings: []Finding{}}, files: map[string][]byte{}, eventHashes: map[[32]byte]struct{}{}}
	if err := v.readAll(); err != nil {
		return nil, err
	}
	v.key(o.Key)
	v.manifest()
	v.caseAndCounts()
	v.checkpoints()
	v.leaves()
	v.audit()
	v.events()
	return v.r, nil
}

// readAll reads every file of the folder.
func (v *verifier) readAll() error {
	return filepath.WalkDir(v.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(v.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			v.findf(rel, "not a regular file (%s): an exhibit holds only files and folders", d.Type())
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > maxFile {
			v.findf(rel, "%d bytes: larger than any file of an exhibit may be", fi.Size())
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		v.files[rel] = b
		return nil
	})
}

// key reads key.pub and checks it against the expected key.
func (v *verifier) key(expect string) {
	raw, ok := v.files[FileKey]
	k := strings.TrimSuffix(string(raw), "\n")
	if !ok {
		v.findf(FileKey, "missing: the log's verifier key")
	}
	if expect = strings.TrimSpace(expect); expect != "" {
		if ok && k != expect {
			v.findf(FileKey, "the key %q is not the expected key %q: the exhibit was signed by another log", cut(k), cut(expect))
		}
		k = expect
	} else if !ok {
		return
	}
	nv, err := note.NewVerifier(k)
	if err != nil {
		file := FileKey
		if expect != "" {
			file = "--key"
		}
		v.findf(file, "%q is not a note verifier key (NAME+HASH+BASE64): %v", cut(k), err)
		return
	}
	v.verifier = nv
	v.r.Key = k
}

// exempt are the files the manifest does not list: itself, its signed
// note, and summary.html, whose hash the note names.
func exempt(p string) bool {
	return p == FileManifest || p == FileManifestNote || p == FileSummary
}

func (v *verifier) manifest() {
	raw, ok := v.files[FileManifest]
	if !ok {
		v.findf(FileManifest, "missing: no file's hash can be checked")
	} else if entries, err := ParseManifest(raw); err != nil {
		v.findf(FileManifest, "%v", err)
	} else {
		listed := map[string]bool{}
		for i, e := range entries {
			listed[e.Path] = true
			b, ok := v.files[e.Path]
			switch {
			case exempt(e.Path):
				v.find(FileManifest, i+1, -1, -1, "lists %s, which the manifest does not list", e.Path)
			case !ok:
				v.findf(e.Path, "missing: the manifest lists it (line %d)", i+1)
			case sha256.Sum256(b) != e.Hash:
				v.findf(e.Path, "SHA-256 %x differs from the manifest's %x (line %d): the file was changed", sha256.Sum256(b), e.Hash, i+1)
			}
		}
		v.r.Files = len(entries)
		for _, p := range sortedKeys(v.files) {
			if !listed[p] && !exempt(p) {
				v.findf(p, "not in the manifest: added after the exhibit was made")
			}
		}
	}
	nb, ok := v.files[FileManifestNote]
	if !ok {
		v.findf(FileManifestNote, "missing: the manifest is not signed")
		return
	}
	if v.verifier == nil {
		return
	}
	n, err := note.Open(nb, note.VerifierList(v.verifier))
	if err != nil {
		v.findf(FileManifestNote, "the signature does not verify with %s: %v", v.verifier.Name(), noteError(err))
		return
	}
	m, err := parseManifestNoteText(n.Text)
	if err != nil {
		v.findf(FileManifestNote, "%v", err)
		return
	}
	v.r.Case = m.Case
	for _, f := range []struct {
		name string
		want [32]byte
	}{{FileManifest, m.Manifest}, {FileSummary, m.Summary}} {
		b, ok := v.files[f.name]
		if !ok {
			if f.name == FileSummary {
				v.findf(f.name, "missing")
			}
			continue
		}
		if got := sha256.Sum256(b); got != f.want {
			v.findf(f.name, "SHA-256 %x differs from the signed note's %x: the file was changed", got, f.want)
		}
	}
}

// noteError says what note.Open found in words.
func noteError(err error) string {
	var u *note.UnverifiedNoteError
	if errors.As(err, &u) {
		return "no signature of this key (signed by another key, or the key was replaced)"
	}
	var inv *note.InvalidSignatureError
	if errors.As(err, &inv) {
		return "the signature is wrong: the text was changed after signing"
	}
	return err.Error()
}

func (v *verifier) caseAndCounts() {
	raw, ok := v.files[FileCase]
	if !ok {
		v.findf(FileCase, "missing")
	} else {
		var c CaseFile
		if err := json.Unmarshal(raw, &c); err != nil {
			v.findf(FileCase, "not the case's JSON: %v", err)
		} else {
			v.caseFile = &c
			if v.r.Case != "" && c.Case.Name != v.r.Case {
				v.findf(FileCase, "case %q is not the case %q that the signed manifest note names", c.Case.Name, v.r.Case)
			}
		}
	}
	raw, ok = v.files[FileCountsJSON]
	if !ok {
		v.findf(FileCountsJSON, "missing")
		return
	}
	var c Counts
	if err := json.Unmarshal(raw, &c); err != nil {
		v.findf(FileCountsJSON, "not the counts' JSON: %v", err)
		return
	}
	v.counts = &c
	v.r.Sample = c.Sample != nil
	if csv, ok := v.files[FileCountsCSV]; !ok {
		v.findf(FileCountsCSV, "missing")
	} else if want := countsCSV(&c); !bytes.Equal(csv, want) {
		line := firstDiffLine(csv, want)
		v.find(FileCountsCSV, line, -1, -1, "differs from counts.json from this line on")
	}
}

// firstDiffLine returns the first line (from 1) where a and b differ.
func firstDiffLine(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return bytes.Count(a[:i], []byte("\n")) + 1
}

// checkpointFile is a parsed checkpoints/SIZE.note.
type checkpointFile struct {
	path string
	info CheckpointInfo
	root tlog.Hash
}

func (v *verifier) checkpoints() {
	var cps []checkpointFile
	for p, size := range v.numberedFiles(DirCheckpoints, ".note", "SIZE.note") {
		if v.verifier == nil {
			continue
		}
		cp, err := evidence.ParseCheckpoint(v.files[p], note.VerifierList(v.verifier))
		if err != nil {
			v.find(p, 0, -1, size, "%v", noteError(err))
			continue
		}
		if cp.Size != size {
			v.find(p, 0, -1, size, "the note's tree size is %d, not the %d of the file's name", cp.Size, size)
			continue
		}
		cps = append(cps, checkpointFile{path: p, root: cp.Root, info: CheckpointInfo{
			Origin: cp.Origin, Size: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Root[:]), Time: cp.Time}})
	}
	if len(cps) == 0 {
		if v.verifier != nil {
			v.findf(DirCheckpoints, "no valid checkpoint: nothing to prove the leaves against")
		}
		return
	}
	slices.SortFunc(cps, func(a, b checkpointFile) int { return int(a.info.Size - b.info.Size) })
	last := cps[len(cps)-1]
	v.proven, v.size, v.root, v.r.Checkpoint = true, last.info.Size, last.root, last.info
	proofs := map[string]bool{}
	for _, cp := range cps[:len(cps)-1] {
		if cp.info.Origin != last.info.Origin {
			v.find(cp.path, 0, -1, cp.info.Size, "origin %q is not the origin %q of checkpoint %d", cp.info.Origin, last.info.Origin, last.info.Size)
		}
		p := fmt.Sprintf("%s/%d-%d.consistency", DirProofs, cp.info.Size, last.info.Size)
		proofs[p] = true
		raw, ok := v.files[p]
		if !ok {
			v.find(p, 0, -1, cp.info.Size, "missing: no proof that checkpoint %d is consistent with checkpoint %d", cp.info.Size, last.info.Size)
			continue
		}
		old, size, pr, err := evidence.ReadConsistency(bytes.NewReader(raw))
		if err != nil {
			v.find(p, 0, -1, cp.info.Size, "%v", err)
			continue
		}
		if old != cp.info.Size || size != last.info.Size {
			v.find(p, 0, -1, cp.info.Size, "proves %d to %d, not %d to %d", old, size, cp.info.Size, last.info.Size)
			continue
		}
		if err := tlog.CheckTree(pr, last.info.Size, last.root, cp.info.Size, cp.root); err != nil {
			v.find(p, 0, -1, cp.info.Size, "checkpoint %d is not consistent with checkpoint %d: the log was forked or rewritten between them (%v)", cp.info.Size, last.info.Size, err)
			continue
		}
		v.r.Earlier++
	}
	for _, p := range sortedKeys(v.files) {
		if strings.HasPrefix(p, DirProofs+"/") && strings.HasSuffix(p, ".consistency") && !proofs[p] {
			v.findf(p, "proves no checkpoint of the exhibit consistent with checkpoint %d", last.info.Size)
		}
	}
}

// numberedFiles yields the files of folder dir, in path order, whose names
// are a number and suffix, with the number; any other file of dir is a
// finding that names the form (e.g. "SIZE.note").
func (v *verifier) numberedFiles(dir, suffix, form string) iter.Seq2[string, int64] {
	return func(yield func(string, int64) bool) {
		for _, p := range sortedKeys(v.files) {
			name, ok := strings.CutPrefix(p, dir+"/")
			if !ok {
				continue
			}
			n, ok := numbered(name, suffix)
			if !ok {
				v.findf(p, "not named as the files of %s/ are: %s", dir, form)
				continue
			}
			if !yield(p, n) {
				return
			}
		}
	}
}

// numbered reads NUMBER+suffix.
func numbered(name, suffix string) (int64, bool) {
	s, ok := strings.CutSuffix(name, suffix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0 && strconv.FormatInt(n, 10) == s
}

// included checks that data, at index idx, is in the bundle's checkpoint by
// the proof in proofPath; it reports a finding against file and returns
// false when not.
func (v *verifier) included(file, proofPath string, idx int64, data []byte) bool {
	raw, ok := v.files[proofPath]
	if !ok {
		v.find(proofPath, 0, idx, v.size, "missing: no inclusion proof for %s", file)
		return false
	}
	pidx, size, p, err := evidence.ReadInclusion(bytes.NewReader(raw))
	if err != nil {
		v.find(proofPath, 0, idx, v.size, "%v", err)
		return false
	}
	if pidx != idx || size != v.size {
		v.find(proofPath, 0, idx, v.size, "proves leaf %d in a tree of %d, not leaf %d in the checkpoint's %d", pidx, size, idx, v.size)
		return false
	}
	if idx >= v.size {
		v.find(file, 0, idx, v.size, "leaf %d is past the checkpoint's tree of %d leaves", idx, v.size)
		return false
	}
	if err := tlog.CheckRecord(p, v.size, v.root, idx, tlog.RecordHash(data)); err != nil {
		v.find(file, 0, idx, v.size, "not included in the checkpoint: the leaf's data, the proof %s or the checkpoint was changed (%v)", proofPath, err)
		return false
	}
	return true
}

func (v *verifier) leaves() {
	proven := map[string]bool{}
	for p, idx := range v.numberedFiles(DirLeaves, ".txt", "INDEX.txt") {
		proof := fmt.Sprintf("%s/%d.inclusion", DirProofs, idx)
		proven[proof] = true
		leaf, err := evidence.ParseLeaf(v.files[p])
		if err == nil && leaf.Kind != evidence.KindBatch {
			err = errors.New("an audit leaf among the batch leaves")
		}
		if err != nil {
			v.find(p, 0, idx, -1, "not a batch leaf: %v", err)
			continue
		}
		if v.proven && !v.included(p, proof, idx, v.files[p]) {
			continue
		}
		for _, h := range leaf.Events {
			v.eventHashes[h] = struct{}{}
		}
		v.r.Leaves++
	}
	for _, p := range sortedKeys(v.files) {
		if strings.HasPrefix(p, DirProofs+"/") && strings.HasSuffix(p, ".inclusion") && !proven[p] {
			v.findf(p, "proves no leaf of the exhibit")
		}
	}
}

func (v *verifier) audit() {
	entries := map[int64]int{}
	if v.caseFile != nil {
		for i, e := range v.caseFile.Audit {
			entries[e.Seq] = i
		}
	}
	seen := map[int64]bool{}
	for _, p := range sortedKeys(v.files) {
		name, ok := strings.CutPrefix(p, DirAudit+"/")
		if !ok {
			continue
		}
		if strings.HasSuffix(name, ".inclusion") {
			if _, ok := v.files[strings.TrimSuffix(p, ".inclusion")+".txt"]; !ok {
				v.findf(p, "proves no audit leaf of the exhibit")
			}
			continue
		}
		seq, ok := numbered(name, ".txt")
		if !ok {
			v.findf(p, "not an audit leaf's name: SEQ.txt or SEQ.inclusion")
			continue
		}
		seen[seq] = true
		proof := fmt.Sprintf("%s/%d.inclusion", DirAudit, seq)
		leaf, err := evidence.ParseLeaf(v.files[p])
		if err == nil && leaf.Kind != evidence.KindAudit {
			err = errors.New("a batch leaf among the audit leaves")
		}
		if err != nil {
			v.findf(p, "not an audit leaf: %v", err)
			continue
		}
		f, _ := leaf.AuditFields()
		fields, chain := [8]string(f), leaf.AuditHash()
		if fields[1] != strconv.FormatInt(seq, 10) {
			v.findf(p, "holds audit entry %q, not %d", cut(fields[1]), seq)
			continue
		}
		if v.caseFile != nil {
			i, ok := entries[seq]
			if !ok {
				v.findf(p, "audit entry %d is not among case.json's audit entries", seq)
			} else if e := v.caseFile.Audit[i]; e.Hash != chain {
				v.findf(p, "chain hash %s differs from case.json's audit entry %d, %s: the entry or the leaf was changed", chain, seq, e.Hash)
			} else if want := [8]string{"", fields[1], e.At.UTC().Format("2006-01-02T15:04:05.000000Z"), e.Actor, e.Action, e.Object, e.Detail, e.Reason}; !sameFields(want, fields) {
				v.findf(p, "its fields differ from case.json's audit entry %d", seq)
			}
		}
		raw, ok := v.files[proof]
		if !ok {
			v.findf(proof, "missing: no inclusion proof for %s", p)
			continue
		}
		idx, _, _, err := evidence.ReadInclusion(bytes.NewReader(raw))
		if err != nil {
			v.findf(proof, "%v", err)
			continue
		}
		if v.proven && v.included(p, proof, idx, v.files[p]) {
			v.r.AuditLeaves++
		}
	}
	if v.caseFile != nil {
		for _, e := range v.caseFile.Audit {
			if !seen[e.Seq] {
				v.findf(fmt.Sprintf("%s/%d.txt", DirAudit, e.Seq), "missing: case.json lists audit entry %d", e.Seq)
			}
		}
	}
}

// sameFields compares an audit leaf's fields but prev, which case.json
// does not hold (it is the previous entry's hash, of any case).
func sameFields(want, got [8]string) bool {
	return slices.Equal(want[1:], got[1:])
}

func (v *verifier) events() {
	raw, ok := v.files[FileEvents]
	if !ok {
		v.findf(FileEvents, "missing")
		return
	}
	var from, to time.Time
	caseName, family := "", ""
	if v.caseFile != nil {
		from, _ = time.Parse(time.RFC3339, v.caseFile.Period.From)
		to, _ = time.Parse(time.RFC3339, v.caseFile.Period.To)
		caseName, family = v.caseFile.Case.Name, v.caseFile.Case.Family
	}
	c := newCounter()
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		v.findf(FileEvents, "the last line does not end in a newline: the file was cut")
	}
	n := 0
	for line := range bytes.Lines(raw) {
		n++
		line = bytes.TrimSuffix(line, []byte("\n"))
		e, err := readEventLine(line)
		if err != nil {
			v.find(FileEvents, n, -1, -1, "%v", err)
			continue
		}
		if _, ok := v.eventHashes[sha256.Sum256(line)]; !ok {
			v.find(FileEvents, n, -1, -1, "event hash %x is in no leaf of the exhibit: the event was changed, or added", sha256.Sum256(line))
		}
		if v.caseFile != nil {
			if e.Time.Before(from) || !e.Time.Before(to) {
				v.find(FileEvents, n, -1, -1, "the event's time %s is outside the period %s to %s", e.Time.Format(time.RFC3339Nano), v.caseFile.Period.From, v.caseFile.Period.To)
			}
			if e.Case != caseName && (family == "" || e.Family != family) {
				v.find(FileEvents, n, -1, -1, "the event is not of case %s (its case is %q, its family %q)", caseName, e.Case, e.Family)
			}
		}
		c.add(&e)
	}
	v.r.Events = int64(n)
	if v.counts == nil {
		return
	}
	if v.counts.Sample != nil {
		if v.counts.Sample.Size != int64(n) {
			v.findf(FileEvents, "%d events; counts.json says the sample holds %d", n, v.counts.Sample.Size)
		}
		return
	}
	if v.counts.Events != int64(n) {
		v.findf(FileEvents, "%d events; counts.json counted %d and says events.jsonl holds them all", n, v.counts.Events)
	}
	again := *v.counts
	again.Days = c.result()
	want := countsCSV(&again)
	if got := v.files[FileCountsCSV]; got != nil && !bytes.Equal(got, want) {
		v.find(FileCountsCSV, firstDiffLine(got, want), -1, -1, "differs from the counts of events.jsonl from this line on")
	}
}

// readEventLine reads one line of events.jsonl: an event's JSON object as
// the log hashed it.
func readEventLine(line []byte) (event.Event, error) {
	if len(line) == 0 {
		return event.Event{}, errors.New("empty line")
	}
	e, err := event.DecodeJSON(line)
	if err != nil {
		return e, err
	}
	if e.Time.IsZero() || !e.SrcIP.IsValid() {
		return e, errors.New("the event has no time or no source address")
	}
	return e, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
