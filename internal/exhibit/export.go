package exhibit

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/worldmap"
)

// Registry is what Export reads of the registry.
type Registry interface {
	GetCase(ctx context.Context, name string) (registry.Case, error)
	ListDomains(ctx context.Context, f registry.DomainFilter) ([]registry.Domain, error)
	// Histories and LastDelegations give what GetDomain adds to
	// ListDomains' domains, for all the case's domains at once.
	Histories(ctx context.Context, names []string) (map[string][]registry.Transition, error)
	LastDelegations(ctx context.Context, names []string) (map[string]registry.DelegationCheck, error)
	Audit(ctx context.Context, f registry.AuditFilter) ([]registry.AuditEntry, error)
}

// Events is what Export reads of the event engine.
type Events interface {
	Scan(ctx context.Context, q eventstore.ScanQuery, fn func(*event.Event) error) error
	UniqueHosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error)
}

// Config is what Export exports and from where.
type Config struct {
	// Case names the case; From and To bound the period, [From, To).
	Case     string
	From, To time.Time
	// Out is the folder to write; it must not exist or be empty.
	Out string
	// Sample, if positive, keeps in events.jsonl only the Sample events of
	// the lowest event hashes (the counts stay over all events).
	Sample int

	Registry Registry
	Events   Events
	// Log is the evidence log, opened with its verifier.
	Log *evidence.Log
	// Signer is the log's key, which signs the manifest; VerifierKey is
	// its verifier key (NAME+HASH+BASE64), written to key.pub.
	Signer      note.Signer
	VerifierKey string

	// MapSource names who saw the hosts on the maps (sensor, operator);
	// Demo marks the maps as the demo world's.
	MapSource []string
	Demo      bool
	// Progress, if a terminal, shows the work with an ETA; nil: none.
	Progress io.Writer
	// Now is the clock; zero: time.Now.
	Now func() time.Time
}

// Result says what Export wrote.
type Result struct {
	Dir        string
	Events     int64 // the case's events in the period
	Written    int64 // lines of events.jsonl
	Leaves     int
	Audit      int
	Checkpoint evidence.Checkpoint
	Earlier    int
	Days       int
	// Manifest is the hex SHA-256 of MANIFEST.sha256.
	Manifest string
}

// sampleMethod says how a sample is chosen.
const sampleMethod = "the %d events of the period with the lowest event hashes (SHA-256 of the event line, compared as bytes), " +
	"in time order: a uniform pseudo-random sample that anyone holding all the events can draw again"

// Export writes the exhibit of c.Case in [c.From, c.To) to c.Out: under a
// temporary name beside it, renamed at the end, so that c.Out is a whole
// exhibit or nothing.
func Export(ctx context.Context, c Config) (*Result, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Registry == nil || c.Events == nil || c.Log == nil || c.Signer == nil:
		return nil, errors.New("exhibit: the registry, the events, the log and its signer are all needed")
	case !matchesSigner(c.VerifierKey, c.Signer):
		return nil, fmt.Errorf("exhibit: verifier key %q is not the signer's (%s+%08x)", c.VerifierKey, c.Signer.Name(), c.Signer.KeyHash())
	case !c.From.Before(c.To):
		return nil, fmt.Errorf("exhibit: the period %s to %s is empty", c.From.Format(time.RFC3339), c.To.Format(time.RFC3339))
	case c.Sample < 0:
		return nil, fmt.Errorf("exhibit: sample %d is negative", c.Sample)
	}
	if ents, err := os.ReadDir(c.Out); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("exhibit: %s exists and is not empty; give a new folder", c.Out)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("exhibit: %w", err)
	}
	parent := filepath.Dir(filepath.Clean(c.Out))
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return nil, fmt.Errorf("exhibit: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(c.Out)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("exhibit: %w", err)
	}
	x := &exporter{c: c, dir: tmp, res: &Result{Dir: c.Out}}
	if err := x.run(ctx); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	os.Remove(c.Out) // an empty folder of that name
	if err := os.Rename(tmp, c.Out); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("exhibit: %w", err)
	}
	return x.res, nil
}

type exporter struct {
	c   Config
	dir string
	res *Result

	caseFile CaseFile
	counts   Counts
	// wanted are the hashes of the events in events.jsonl.
	wanted map[[32]byte]bool
	// first is an event of events.jsonl of each hash, to name it when no
	// leaf holds it.
	first map[[32]byte]string
	// leaves are the indexes of the batch leaves written; audit the
	// audit leaves', by seq.
	leaves []int64
	audit  map[int64]int64
	maxIdx int64
}

func (x *exporter) run(ctx context.Context) error {
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"reading the case", x.caseJSON},
		{"reading the events", x.events},
		{"writing the counts and maps", x.countsAndMaps},
		{"finding the leaves", x.findLeaves},
		{"finding the audit leaves", x.auditLeaves},
		{"writing the proofs", x.proofs},
		{"writing the readme", x.readme},
		{"signing the manifest", x.seal},
	}
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("exhibit of %s: %s: %w", x.c.Case, s.what, err)
		}
	}
	return nil
}

// write writes a file of the exhibit.
func (x *exporter) write(rel string, data []byte) error {
	p := filepath.Join(x.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o640)
}

func (x *exporter) caseJSON(ctx context.Context) error {
	c, err := x.c.Registry.GetCase(ctx, x.c.Case)
	if err != nil {
		return err
	}
	ds, err := x.c.Registry.ListDomains(ctx, registry.DomainFilter{Case: c.Name})
	if err != nil {
		return err
	}
	objects := map[string]bool{"case:" + c.Name: true}
	for _, o := range c.Orders {
		objects["order:"+strconv.FormatInt(o.ID, 10)] = true
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
		objects["domain:"+d.Name] = true
	}
	hist, err := x.c.Registry.Histories(ctx, names)
	if err != nil {
		return err
	}
	dels, err := x.c.Registry.LastDelegations(ctx, names)
	if err != nil {
		return err
	}
	domains := make([]registry.Domain, len(ds))
	for i, d := range ds {
		d.History = hist[d.Name]
		if c, ok := dels[d.Name]; ok {
			d.Delegation = &c
		}
		domains[i] = d
	}
	all, err := x.c.Registry.Audit(ctx, registry.AuditFilter{})
	if err != nil {
		return err
	}
	var audit []registry.AuditEntry
	for _, e := range all {
		if objects[e.Object] {
			audit = append(audit, e)
		}
	}
	x.caseFile = CaseFile{
		Case:     c,
		Period:   Period{From: x.c.From.UTC().Format(time.RFC3339), To: x.c.To.UTC().Format(time.RFC3339)},
		Exported: x.c.Now().UTC().Format(time.RFC3339),
		Domains:  domains,
		Audit:    audit,
	}
	b, err := json.MarshalIndent(x.caseFile, "", "  ")
	if err != nil {
		return err
	}
	return x.write(FileCase, append(b, '\n'))
}

// ofCase reports whether e is one of the case's events.
func (x *exporter) ofCase(e *event.Event) bool {
	c := x.caseFile.Case
	return e.Case == c.Name || c.Family != "" && e.Family == c.Family
}

// sampled is an event kept for the sample.
type sampled struct {
	hash [32]byte
	n    int64 // place in time order
	line []byte
	csv  []byte
}

// sampleHeap is a max-heap by hash: the root is the highest hash kept.
type sampleHeap []sampled

func (h sampleHeap) Len() int           { return len(h) }
func (h sampleHeap) Less(i, j int) bool { return bytes.Compare(h[i].hash[:], h[j].hash[:]) > 0 }
func (h sampleHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sampleHeap) Push(v any)        { *h = append(*h, v.(sampled)) }
func (h *sampleHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// events scans the period's events, keeps the case's, counts them and
// writes events.jsonl and events.csv (all, or the sample).
func (x *exporter) events(ctx context.Context) error {
	var total int64
	if rows, err := x.c.Events.UniqueHosts(ctx, eventstore.HostQuery{From: x.c.From, To: x.c.To}); err == nil && len(rows) == 1 {
		total = rows[0].Events
	}
	bar := progressBar(x.c.Progress, "exhibit: reading events", "events", total)
	jf, err := os.Create(filepath.Join(x.dir, FileEvents))
	if err != nil {
		return err
	}
	defer jf.Close()
	cf, err := os.Create(filepath.Join(x.dir, FileEventsCSV))
	if err != nil {
		return err
	}
	defer cf.Close()
	jw, cw := bufio.NewWriterSize(jf, 1<<20), bufio.NewWriterSize(cf, 1<<20)
	cw.WriteString(eventsCSVHeader)
	x.wanted, x.first = map[[32]byte]bool{}, map[[32]byte]string{}
	counter := newCounter()
	var (
		line, row []byte
		n, seen   int64
		kept      sampleHeap
	)
	err = x.c.Events.Scan(ctx, eventstore.ScanQuery{From: x.c.From, To: x.c.To}, func(e *event.Event) error {
		if seen++; seen%4096 == 0 {
			bar.Add(4096)
		}
		if !x.ofCase(e) {
			return nil
		}
		line = evidence.EventLine(line[:0], e)
		h := sha256.Sum256(line)
		c := *e
		evidence.Canonical(&c)
		counter.add(&c)
		n++
		if x.c.Sample > 0 {
			if len(kept) == x.c.Sample && bytes.Compare(h[:], kept[0].hash[:]) >= 0 {
				return nil
			}
			s := sampled{hash: h, n: n, line: bytes.Clone(line), csv: appendEventCSV(nil, &c)}
			if len(kept) == x.c.Sample {
				kept[0] = s
				heap.Fix(&kept, 0)
			} else {
				heap.Push(&kept, s)
			}
			return nil
		}
		x.keep(h, &c)
		jw.Write(line)
		jw.WriteByte('\n')
		row = appendEventCSV(row[:0], &c)
		cw.Write(row)
		return nil
	})
	if err != nil {
		return err
	}
	bar.Add(seen % 4096)
	bar.Done()
	if x.c.Sample > 0 {
		slices.SortFunc(kept, func(a, b sampled) int { return cmp.Compare(a.n, b.n) })
		for _, s := range kept {
			e, err := event.DecodeJSON(s.line)
			if err != nil {
				return err
			}
			x.keep(s.hash, &e)
			jw.Write(s.line)
			jw.WriteByte('\n')
			cw.Write(s.csv)
		}
	}
	for _, w := range []*bufio.Writer{jw, cw} {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	for _, f := range []*os.File{jf, cf} {
		if err := f.Close(); err != nil {
			return err
		}
	}
	c := x.caseFile.Case
	x.counts = Counts{
		Counted: countedText(c.Name, c.Family), Case: c.Name, Family: c.Family,
		From: x.caseFile.Period.From, To: x.caseFile.Period.To, Events: n, Days: counter.result(),
	}
	x.res.Events, x.res.Written = n, n
	if x.c.Sample > 0 && n > int64(x.c.Sample) {
		x.counts.Sample = &Sample{Size: int64(len(kept)), Method: fmt.Sprintf(sampleMethod, len(kept))}
		x.res.Written = int64(len(kept))
	}
	return nil
}

// keep marks the event of hash h as one of events.jsonl.
func (x *exporter) keep(h [32]byte, e *event.Event) {
	x.wanted[h] = false
	if _, ok := x.first[h]; !ok && len(x.first) < 1_000_000 {
		x.first[h] = fmt.Sprintf("%s from %s", e.Time.Format(time.RFC3339Nano), e.SrcIP)
	}
}

func (x *exporter) countsAndMaps(ctx context.Context) error {
	if err := x.write(FileCountsCSV, countsCSV(&x.counts)); err != nil {
		return err
	}
	b, err := countsJSON(&x.counts)
	if err != nil {
		return err
	}
	if err := x.write(FileCountsJSON, b); err != nil {
		return err
	}
	bar := progressBar(x.c.Progress, "exhibit: drawing maps", "days", int64(len(x.counts.Days)))
	defer bar.Done()
	for _, d := range x.counts.Days {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := x.dayMap(d)
		if err != nil {
			return err
		}
		var svg, png bytes.Buffer
		if err := m.WriteSVG(&svg); err != nil {
			return err
		}
		if err := m.WritePNG(&png); err != nil {
			return err
		}
		if err := x.write(DirMaps+"/"+d.Day+".svg", svg.Bytes()); err != nil {
			return err
		}
		if err := x.write(DirMaps+"/"+d.Day+".png", png.Bytes()); err != nil {
			return err
		}
		bar.Add(1)
	}
	x.res.Days = len(x.counts.Days)
	return nil
}

// dayMap is the world map of a day's counts, as `takedown map` draws it.
func (x *exporter) dayMap(d DayCounts) (*worldmap.Map, error) {
	day, err := time.Parse(time.DateOnly, d.Day)
	if err != nil {
		return nil, err
	}
	hosts := map[string]int64{}
	for _, k := range d.Countries {
		hosts[k.Key] += k.Hosts
	}
	dm := worldmap.Day{Day: day, Family: x.caseFile.Case.Family, Hosts: hosts, Source: x.c.MapSource, Demo: x.c.Demo}
	o := dm.Options()
	if o.Subtitle != "" {
		o.Subtitle += " · "
	}
	o.Subtitle += "case " + x.caseFile.Case.Name
	return worldmap.New(o)
}

// findLeaves writes the batch leaves that name the events of
// events.jsonl.
func (x *exporter) findLeaves(ctx context.Context) error {
	bar := progressBar(x.c.Progress, "exhibit: finding leaves", "events", int64(len(x.wanted)))
	defer bar.Done()
	x.maxIdx = -1
	missing := len(x.wanted)
	err := x.c.Log.Leaves(ctx, x.c.From.UnixNano(), x.c.To.UnixNano(), func(idx int64, data []byte) error {
		if data == nil || missing == 0 {
			return nil
		}
		l, err := evidence.ParseLeaf(data)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", idx, err)
		}
		hit := false
		for _, h := range l.Events {
			found, ok := x.wanted[h]
			if !ok {
				continue
			}
			hit = true
			if !found {
				x.wanted[h] = true
				missing--
				bar.Add(1)
			}
		}
		if !hit {
			return nil
		}
		x.leaves = append(x.leaves, idx)
		x.maxIdx = max(x.maxIdx, idx)
		return x.write(fmt.Sprintf("%s/%d.txt", DirLeaves, idx), data)
	})
	if err != nil {
		return err
	}
	if missing > 0 {
		var first []string
		for h, found := range x.wanted {
			if !found && len(first) < 3 {
				first = append(first, fmt.Sprintf("%s (hash %s)", x.first[h], hex.EncodeToString(h[:])))
			}
		}
		slices.Sort(first)
		return fmt.Errorf("%d of the case's events are in no leaf of the evidence log, e.g. %s: they were stored while the log was off, or their leaves were pruned; choose a period the log covers",
			missing, strings.Join(first, "; "))
	}
	x.res.Leaves = len(x.leaves)
	return nil
}

// auditLeaves writes the audit leaves of the case's audit entries.
func (x *exporter) auditLeaves(ctx context.Context) error {
	want := map[int64]bool{}
	for _, e := range x.caseFile.Audit {
		want[e.Seq] = true
	}
	x.audit = map[int64]int64{}
	err := x.c.Log.AuditLeaves(ctx, func(idx, seq int64, data []byte) error {
		if _, dup := x.audit[seq]; dup || !want[seq] {
			return nil
		}
		x.audit[seq] = idx
		x.maxIdx = max(x.maxIdx, idx)
		return x.write(fmt.Sprintf("%s/%d.txt", DirAudit, seq), data)
	})
	if err != nil {
		return err
	}
	for _, e := range x.caseFile.Audit {
		if _, ok := x.audit[e.Seq]; !ok {
			return fmt.Errorf("audit entry %d (%s %s) is not in the evidence log yet: serve logs the audit log at each checkpoint; export after the next one", e.Seq, e.Action, e.Object)
		}
	}
	x.res.Audit = len(x.audit)
	return nil
}

// proofs picks the checkpoint, writes it, the earlier ones of the period
// with their consistency proofs, and the leaves' inclusion proofs.
func (x *exporter) proofs(ctx context.Context) error {
	cps, err := x.c.Log.Checkpoints(ctx)
	if err != nil {
		return err
	}
	if len(cps) == 0 {
		return errors.New("the evidence log has no checkpoint yet: serve signs one every interval and at shutdown")
	}
	last := cps[len(cps)-1]
	if last.Size <= x.maxIdx {
		return fmt.Errorf("the last checkpoint (size %d, %s) does not cover leaf %d yet: export after the next checkpoint",
			last.Size, last.Time.Format(time.RFC3339), x.maxIdx)
	}
	x.res.Checkpoint = last
	if err := x.write(fmt.Sprintf("%s/%d.note", DirCheckpoints, last.Size), last.Note); err != nil {
		return err
	}
	done := map[int64]bool{last.Size: true}
	for _, cp := range cps[:len(cps)-1] {
		if done[cp.Size] || cp.Size == 0 || cp.Time.Before(x.c.From) || !cp.Time.Before(x.c.To) {
			continue
		}
		done[cp.Size] = true
		p, err := x.c.Log.ProveConsistency(ctx, cp.Size, last.Size)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := evidence.WriteConsistency(&b, cp.Size, last.Size, p); err != nil {
			return err
		}
		if err := x.write(fmt.Sprintf("%s/%d-%d.consistency", DirProofs, cp.Size, last.Size), b.Bytes()); err != nil {
			return err
		}
		if err := x.write(fmt.Sprintf("%s/%d.note", DirCheckpoints, cp.Size), cp.Note); err != nil {
			return err
		}
		x.res.Earlier++
	}
	bar := progressBar(x.c.Progress, "exhibit: proving leaves", "leaves", int64(len(x.leaves)+len(x.audit)))
	defer bar.Done()
	prove := func(ctx context.Context, idx int64, rel string) error {
		p, err := x.c.Log.ProveInclusion(ctx, idx, last.Size)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := evidence.WriteInclusion(&b, idx, last.Size, p); err != nil {
			return err
		}
		bar.Add(1)
		return x.write(rel, b.Bytes())
	}
	type job struct {
		idx  int64
		file string
	}
	jobs := make([]job, 0, len(x.leaves)+len(x.audit))
	for _, idx := range x.leaves {
		jobs = append(jobs, job{idx, fmt.Sprintf("%s/%d.inclusion", DirProofs, idx)})
	}
	for seq, idx := range x.audit {
		jobs = append(jobs, job{idx, fmt.Sprintf("%s/%d.inclusion", DirAudit, seq)})
	}
	if err := parallel(ctx, len(jobs), func(ctx context.Context, i int) error { return prove(ctx, jobs[i].idx, jobs[i].file) }); err != nil {
		return err
	}
	return x.write(FileKey, []byte(x.c.VerifierKey+"\n"))
}

// matchesSigner reports whether vkey is a verifier key of s's name and
// key hash.
func matchesSigner(vkey string, s note.Signer) bool {
	v, err := note.NewVerifier(vkey)
	return err == nil && s != nil && v.Name() == s.Name() && v.KeyHash() == s.KeyHash()
}

// workers is how many proofs are read at once: DuckDB
// answers small queries from several connections faster than from one.
const workers = 4

// parallel runs fn for 0 ≤ i < n on a few goroutines and returns the
// first error, after which the rest stop.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
