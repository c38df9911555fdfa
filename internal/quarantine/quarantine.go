// Package quarantine keeps the events that the store can never take, so that
// one bad record does not stop every record behind it.
//
// The pipeline stores events in the order the sinks recorded them, and moves
// its spool position only past what is stored. A record that cannot be
// stored as it is — undecodable bytes left by an older version or a damaged
// disk, an event outside the range of the store's columns, an event the
// store refuses whenever it is sent alone — would hold that position for
// ever: the writer would retry it, every later event (the sinkhole's own
// included) would wait behind it, and readiness would never come. The
// pipeline instead writes such a record here, with the reason, before it
// moves its position past it.
//
// Nothing is lost: an entry keeps the record's bytes exactly as they were in
// the spool (takedown's binary event form), where it was, when and why it
// was set aside, and the event as IntelMQ JSON when it decodes, for people.
// After a fix (a new version of takedown, a store with a wider range) Replay
// hands every entry back to the pipeline; an entry that is still refused
// comes back here.
//
// # On-disk format
//
// One file, quarantine.jsonl, in the directory given to Open (mode 0600),
// one JSON object a line:
//
//	{"quarantined":"2026-12-07T10:00:00Z","kind":"invalid","reason":"event: time …",
//	 "source":"spool 4f…e1 0000000000000003:1234","record":"<base64>","event":{…}}
//
// kind is one of the Kind constants; source names the spool (its identity)
// and the position after the record, so that an entry written again after a
// crash (set aside, then the process died before the pipeline moved past
// it) is recognised and kept once. Each Add is written and fsynced before it
// returns. A line torn by a crash is skipped when the file is read, and
// counted.
package quarantine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// Kinds of entries: why a record was set aside.
const (
	// KindUndecodable: the bytes are not an event of the binary form.
	KindUndecodable = "undecodable"
	// KindInvalid: the event decodes but fails event.Validate.
	KindInvalid = "invalid"
	// KindRefused: the store refused the event, alone, while it took other
	// writes.
	KindRefused = "refused"
)

// FileName is the name of the quarantine file in its directory.
const FileName = "quarantine.jsonl"

// maxLine bounds one line: a record is at most a few KiB (an event's
// payload head is 512 bytes), base64 and JSON included.
const maxLine = 4 << 20

// Entry is one record set aside.
type Entry struct {
	Time   time.Time       `json:"quarantined"`
	Kind   string          `json:"kind"`
	Reason string          `json:"reason"`
	Source string          `json:"source,omitempty"`
	Record []byte          `json:"record"`
	Event  json.RawMessage `json:"event,omitempty"`
}

// NewEntry makes the entry of record rec, set aside for kind and reason.
// The event's JSON is added when rec decodes.
func NewEntry(kind, reason, source string, rec []byte, now time.Time) Entry {
	en := Entry{Time: now.UTC(), Kind: kind, Reason: reason, Source: source, Record: slices.Clone(rec)}
	var d event.Decoder
	var e event.Event
	if d.Decode(rec, &e) == nil {
		en.Event = event.AppendJSON(nil, &e)
	}
	return en
}

// Summary counts the entries.
type Summary struct {
	Path    string `json:"path"`
	Entries int    `json:"entries"`
	// Kinds counts the entries of each kind, most first.
	Kinds  []KindCount `json:"kinds"`
	Oldest time.Time   `json:"oldest,omitzero"`
	Newest time.Time   `json:"newest,omitzero"`
	// Damaged counts lines that could not be read (torn by a crash).
	Damaged int `json:"damaged,omitempty"`
}

// KindCount is a kind of entry, how many there are, and the reason of the
// newest of them (reasons name the value, so they seldom repeat).
type KindCount struct {
	Kind    string `json:"kind"`
	Entries int    `json:"entries"`
	Example string `json:"example"`
}

// Quarantine is the quarantine file of one takedown. It is safe for
// concurrent use; one process at a time may use a directory.
type Quarantine struct {
	path string

	mu      sync.Mutex
	sources map[string]struct{} // of the entries in the file
	sum     Summary
	kinds   map[string]*KindCount
}

// Open opens (creating the directory if needed) the quarantine in dir and
// reads what it holds.
func Open(dir string) (*Quarantine, error) {
	if dir == "" {
		return nil, errors.New("quarantine: no directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	q := &Quarantine{path: filepath.Join(dir, FileName)}
	entries, damaged, err := q.read()
	if err != nil {
		return nil, err
	}
	q.reset(entries, damaged)
	return q, nil
}

// Path returns the quarantine file's path.
func (q *Quarantine) Path() string { return q.path }

// reset recounts from entries; q.mu is held or q is new.
func (q *Quarantine) reset(entries []Entry, damaged int) {
	q.sources = make(map[string]struct{}, len(entries))
	q.kinds = make(map[string]*KindCount)
	q.sum = Summary{Path: q.path, Damaged: damaged}
	for i := range entries {
		q.count(&entries[i])
	}
}

// count adds en to the summary; q.mu is held.
func (q *Quarantine) count(en *Entry) {
	if en.Source != "" {
		q.sources[en.Source] = struct{}{}
	}
	q.sum.Entries++
	k := q.kinds[en.Kind]
	if k == nil {
		k = &KindCount{Kind: en.Kind}
		q.kinds[en.Kind] = k
	}
	k.Entries++
	k.Example = en.Reason
	if q.sum.Oldest.IsZero() || en.Time.Before(q.sum.Oldest) {
		q.sum.Oldest = en.Time
	}
	if !en.Time.Before(q.sum.Newest) {
		q.sum.Newest = en.Time
	}
}

// read reads every entry of the file, skipping (and counting) lines that
// do not parse.
func (q *Quarantine) read() ([]Entry, int, error) {
	f, err := os.Open(q.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("quarantine: %w", err)
	}
	defer f.Close()
	var out []Entry
	damaged := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var en Entry
		if json.Unmarshal(line, &en) != nil || en.Record == nil {
			damaged++
			continue
		}
		out = append(out, en)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("quarantine: reading %s: %w", q.path, err)
	}
	return out, damaged, nil
}

// Add writes entries to the file and fsyncs it. An entry whose Source is
// already in the file is not written again.
func (q *Quarantine) Add(entries ...Entry) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var buf []byte
	var added []*Entry
	for i := range entries {
		en := &entries[i]
		if _, dup := q.sources[en.Source]; dup && en.Source != "" {
			continue
		}
		line, err := json.Marshal(en)
		if err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
		buf = append(append(buf, line...), '\n')
		added = append(added, en)
	}
	if len(buf) == 0 {
		return nil
	}
	f, err := os.OpenFile(q.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	// A line torn by a crash is ended first, so that the new one stays
	// whole (the torn one is counted as damaged when read).
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], fi.Size()-1); err == nil && last[0] != '\n' {
			buf = append([]byte{'\n'}, buf...)
		}
	}
	_, err = f.Write(buf)
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("quarantine: writing %s: %w", q.path, err)
	}
	for _, en := range added {
		q.count(en)
	}
	return nil
}

// Summary returns the counts.
func (q *Quarantine) Summary() Summary {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.sum
	s.Kinds = make([]KindCount, 0, len(q.kinds))
	for _, k := range q.kinds {
		s.Kinds = append(s.Kinds, *k)
	}
	slices.SortFunc(s.Kinds, func(a, b KindCount) int {
		if a.Entries != b.Entries {
			return b.Entries - a.Entries
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return s
}

// Entries returns up to limit entries (all when limit ≤ 0), oldest first.
func (q *Quarantine) Entries(limit int) ([]Entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out, _, err := q.read()
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// Replay hands every entry to requeue, oldest first, and keeps in the file
// only those it refused (an error: the record is still not acceptable).
// Each entry that requeue took is gone from the file once Replay returns
// without error; the caller makes what it took durable before it returns
// (the pipeline appends it to its spool and syncs it), so that a crash
// loses nothing, at worst replays an entry twice. It returns how many
// entries were taken and how many kept.
func (q *Quarantine) Replay(requeue func(Entry) error, commit func() error) (taken, kept int, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	entries, damaged, err := q.read()
	if err != nil {
		return 0, 0, err
	}
	var keep []Entry
	for _, en := range entries {
		if rerr := requeue(en); rerr != nil {
			keep = append(keep, en)
			continue
		}
		taken++
	}
	if taken == 0 {
		return 0, len(keep), nil
	}
	if commit != nil {
		if err := commit(); err != nil {
			return 0, len(entries), fmt.Errorf("quarantine: replayed records not made durable, the file is kept: %w", err)
		}
	}
	if err := q.rewrite(keep); err != nil {
		return taken, len(keep), err
	}
	q.reset(keep, damaged)
	return taken, len(keep), nil
}

// rewrite replaces the file with entries: written to a temporary file,
// fsynced, renamed over the old one. q.mu is held.
func (q *Quarantine) rewrite(entries []Entry) error {
	tmp := q.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range entries {
		if err = enc.Encode(&entries[i]); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Flush()
	}
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, q.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(q.path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("quarantine: rewriting %s: %w", q.path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// ReadSummary summarises the quarantine in dir without opening it for
// writing (for a status of files no serve runs on).
func ReadSummary(dir string) (Summary, error) {
	q := &Quarantine{path: filepath.Join(dir, FileName)}
	entries, damaged, err := q.read()
	if err != nil {
		return Summary{Path: q.path}, err
	}
	q.reset(entries, damaged)
	return q.Summary(), nil
}
