package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/progress"
)

// evidenceLogCommands are the commands of the log itself. Except keygen
// and cosign (a witness's, on its own machine), they read the database
// file, so they run while serve does not; serve publishes its checkpoints
// meanwhile (GET /api/v1/evidence/checkpoint, evidence.publish_dir).
func (e *env) evidenceLogCommands() []*cobra.Command {
	return []*cobra.Command{e.evidenceKeygen(), e.evidenceCheckpoint(), e.evidenceProve(), e.evidenceCheck(), e.evidenceCosign()}
}

// evidenceLog is the log opened from the database file, to read.
type evidenceLog struct {
	cfg   config.Config
	local *app.Local
	log   *evidence.Log
	vkey  string
}

// withEvidence opens the database file and its evidence log, runs fn and
// closes them.
func (e *env) withEvidence(cmd *cobra.Command, fn func(ctx context.Context, l *evidenceLog) error) error {
	ctx := cmd.Context()
	cfg, err := e.config()
	if err != nil {
		return err
	}
	local, err := app.Open(ctx, cfg)
	if errors.Is(err, dbfile.ErrLocked) {
		return fmt.Errorf("%w\nthe evidence commands read the log in the database file: stop serve first (it publishes its checkpoints meanwhile at GET /api/v1/evidence/checkpoint and in %s)", err, cfg.Evidence.PublishDir)
	}
	if err != nil {
		return err
	}
	defer local.Close()
	lg, vkey, err := app.OpenEvidence(ctx, cfg, local)
	if err != nil {
		return err
	}
	return fn(ctx, &evidenceLog{cfg: cfg, local: local, log: lg, vkey: vkey})
}

// latest returns the log's last checkpoint.
func (l *evidenceLog) latest(ctx context.Context) (evidence.Checkpoint, error) {
	cps, err := l.log.Checkpoints(ctx)
	if err != nil {
		return evidence.Checkpoint{}, err
	}
	if len(cps) == 0 {
		return evidence.Checkpoint{}, errors.New("the evidence log has no checkpoint yet: serve signs one at start and every evidence.interval")
	}
	return cps[len(cps)-1], nil
}

func (e *env) evidenceKeygen() *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "keygen --name NAME --out FILE",
		Short: "Make a note signing key (for the log, or a witness's) and print its verifier key",
		Long: `Make an Ed25519 note signing key named NAME in FILE (mode 0600; an existing
file is not overwritten) and print its verifier key (NAME+HASH+BASE64), which
those who check the checkpoints need. When FILE ends in .key, the verifier
key is also written beside it, in .pub. The log's own key is made by serve at
its first start (evidence.key_file); keygen makes one ahead of time, or a
witness's for evidence cosign.`,
		Example: `  takedown evidence keygen --name takedown/central-1 --out /var/lib/takedown/evidence.key
  takedown evidence keygen --name witness.example.org --out witness.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" || out == "" {
				return errors.New("give --name and --out")
			}
			vkey, err := app.MakeEvidenceKey(out, name)
			if err != nil {
				return fmt.Errorf("--out %s: %w", out, err)
			}
			if e.jsonOut {
				return writeJSON(e.stdout, map[string]string{"name": name, "file": out, "verifier_key": vkey})
			}
			fmt.Fprintln(e.stdout, vkey)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the key's name, e.g. the log's origin (no spaces, no +)")
	cmd.Flags().StringVar(&out, "out", "", "the file of the signing key, made with mode 0600")
	e.jsonFlag(cmd)
	return cmd
}

// checkpointJSON is a checkpoint in --json output.
type checkpointJSON struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   string    `json:"root"`
	Time   time.Time `json:"time"`
	Note   string    `json:"note"`
}

func toCheckpointJSON(c evidence.Checkpoint) checkpointJSON {
	return checkpointJSON{Origin: c.Origin, Size: c.Size, Root: base64.StdEncoding.EncodeToString(c.Root[:]), Time: c.Time, Note: string(c.Note)}
}

func (e *env) evidenceCheckpoint() *cobra.Command {
	var list bool
	cmd := &cobra.Command{
		Use:   "checkpoint [--list]",
		Short: "Print the log's latest signed checkpoint, or list them all",
		Long: `Print the log's latest signed checkpoint as it is signed and published (a
C2SP signed note: origin, tree size, root hash, time, signatures), or with
--list a table of every checkpoint. While serve runs (it holds the database
file), the latest is read from its API.`,
		Example: `  takedown evidence checkpoint > checkpoint.note
  takedown evidence checkpoint --list
  takedown evidence checkpoint --list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := e.withEvidence(cmd, func(ctx context.Context, l *evidenceLog) error {
				var cps []evidence.Checkpoint
				if list {
					var err error
					if cps, err = l.log.Checkpoints(ctx); err != nil {
						return err
					}
				} else {
					c, err := l.latest(ctx)
					if err != nil {
						return err
					}
					cps = []evidence.Checkpoint{c}
				}
				return e.printCheckpoints(cps, list)
			})
			if errors.Is(err, dbfile.ErrLocked) && !list {
				return e.remoteCheckpoint(cmd.Context())
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list every checkpoint, oldest first")
	e.jsonFlag(cmd)
	return cmd
}

func (e *env) printCheckpoints(cps []evidence.Checkpoint, list bool) error {
	if e.jsonOut {
		out := make([]checkpointJSON, len(cps))
		for i, c := range cps {
			out[i] = toCheckpointJSON(c)
		}
		if !list {
			return writeJSON(e.stdout, out[0])
		}
		return writeJSON(e.stdout, out)
	}
	if !list {
		_, err := e.stdout.Write(cps[0].Note)
		return err
	}
	t := newTable(e.stdout, "SIZE", "SIGNED", "ROOT")
	for _, c := range cps {
		t.row(strconv.FormatInt(c.Size, 10), c.Time.Format(time.RFC3339), base64.StdEncoding.EncodeToString(c.Root[:]))
	}
	return t.flush()
}

// remoteCheckpoint prints the latest checkpoint that the running serve
// publishes on its API, checked with its verifier key.
func (e *env) remoteCheckpoint(ctx context.Context) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	hc := app.APIHTTPClient(cfg, 0)
	get := func(path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, app.APIBase(cfg)+"/api/v1/evidence/"+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /api/v1/evidence/%s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
		}
		return b, err
	}
	vkey, err := app.EvidenceKey(cfg)
	if err != nil {
		return err
	}
	b, err := get("checkpoint")
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	c, err := evidence.ParseCheckpoint(b, note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("the checkpoint serve publishes: %w", err)
	}
	return e.printCheckpoints([]evidence.Checkpoint{c}, false)
}

func (e *env) evidenceProve() *cobra.Command {
	var leaf, size, from, to int64
	var eventHash, eventLine, out, leafOut string
	cmd := &cobra.Command{
		Use:   "prove (--leaf N | --event HASH | --event-line FILE) [--size S] | --from A --to B",
		Short: "Write an inclusion proof of a leaf or an event, or a consistency proof of two tree sizes",
		Long: `Write a proof in the text format of README.md, "Evidence":

  --leaf N               the inclusion proof of leaf N in the tree of --size
                         leaves (default: the latest checkpoint's size);
  --event HASH           the same for the batch leaf that holds the event
  --event-line FILE      whose hash is HASH (hex SHA-256 of its event line), or
                         whose event line is FILE's first line; --leaf-out
                         writes that leaf's data, which lists the event's hash;
  --from A --to B        the consistency proof of the tree of A leaves with the
                         tree of B leaves (two checkpoints' sizes).

Checked against a checkpoint of that size, the proof shows that the leaf (and
so the event) is in the log, or that the log of B leaves extends that of A.`,
		Example: `  takedown evidence prove --leaf 1234 --out 1234.inclusion
  takedown evidence prove --event-line event.json --leaf-out leaf.txt --out event.inclusion
  takedown evidence prove --from 1000 --to 2000 --out 1000-2000.consistency`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			modes := 0
			for _, f := range []string{"leaf", "event", "event-line", "from"} {
				if fs.Changed(f) {
					modes++
				}
			}
			if modes != 1 || fs.Changed("from") != fs.Changed("to") {
				return errors.New("give one of --leaf N, --event HASH, --event-line FILE, or --from A with --to B")
			}
			var want [32]byte
			var wantTime time.Time
			switch {
			case fs.Changed("event"):
				b, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(eventHash)))
				if err != nil || len(b) != 32 {
					return usage(fmt.Errorf("--event %q: not the hex SHA-256 of an event line (64 hex digits)", eventHash))
				}
				copy(want[:], b)
			case fs.Changed("event-line"):
				line, err := readEventLine(eventLine)
				if err != nil {
					return fmt.Errorf("--event-line %s: %w", eventLine, err)
				}
				want = sha256.Sum256(line)
				wantTime = eventLineTime(line)
			}
			return e.withEvidence(cmd, func(ctx context.Context, l *evidenceLog) error {
				if fs.Changed("from") {
					p, err := l.log.ProveConsistency(ctx, from, to)
					if err != nil {
						return err
					}
					return writeOut(out, e.stdout, func(w io.Writer) error { return evidence.WriteConsistency(w, from, to, p) })
				}
				if !fs.Changed("size") {
					c, err := l.latest(ctx)
					if err != nil {
						return err
					}
					size = c.Size
				}
				if !fs.Changed("leaf") {
					idx, data, err := findEventLeaf(ctx, l.log, want, wantTime)
					if err != nil {
						return err
					}
					leaf = idx
					fmt.Fprintf(e.stderr, "event %x is in leaf %d\n", want, leaf)
					if leafOut != "" {
						if err := writeOut(leafOut, nil, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
							return err
						}
					}
				}
				if leaf >= size {
					return fmt.Errorf("leaf %d is not in the tree of %d leaves (the latest checkpoint's, unless --size): wait for the next checkpoint", leaf, size)
				}
				p, err := l.log.ProveInclusion(ctx, leaf, size)
				if err != nil {
					return err
				}
				return writeOut(out, e.stdout, func(w io.Writer) error { return evidence.WriteInclusion(w, leaf, size, p) })
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&leaf, "leaf", 0, "the leaf's index")
	f.StringVar(&eventHash, "event", "", "the event's hash: hex SHA-256 of its event line")
	f.StringVar(&eventLine, "event-line", "", "a file whose first line is the event's line (as in an exhibit's events.jsonl)")
	f.Int64Var(&size, "size", 0, "the tree size to prove against (default: the latest checkpoint's)")
	f.Int64Var(&from, "from", 0, "the older tree size (consistency)")
	f.Int64Var(&to, "to", 0, "the newer tree size (consistency)")
	f.StringVar(&out, "out", "", "write the proof to this file (default: standard output)")
	f.StringVar(&leafOut, "leaf-out", "", "with --event or --event-line: write the data of the leaf that holds it to this file")
	return cmd
}

// readEventLine returns the first line of path without its line end.
func readEventLine(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, errors.New("the first line is empty")
	}
	return line, nil
}

// eventLineTime is the time of an event line (its time.source), zero
// when it has none that parses: then every leaf is searched.
func eventLineTime(line []byte) time.Time {
	var v struct {
		T time.Time `json:"time.source"`
	}
	if json.Unmarshal(line, &v) != nil {
		return time.Time{}
	}
	return v.T
}

// findEventLeaf returns the first batch leaf that lists hash, looking
// only at the leaves whose events' time range holds at (all when at is
// zero).
func findEventLeaf(ctx context.Context, lg *evidence.Log, hash [32]byte, at time.Time) (int64, []byte, error) {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !at.IsZero() {
		from, to = at.UnixNano(), at.UnixNano()+1
	}
	found := errors.New("found")
	idx, pruned := int64(-1), 0
	var data []byte
	want := hex.EncodeToString(hash[:])
	err := lg.Leaves(ctx, from, to, func(i int64, d []byte) error {
		if d == nil {
			pruned++
			return nil
		}
		if bytes.Contains(d, []byte("\n"+want+"\n")) {
			lf, err := evidence.ParseLeaf(d)
			if err != nil {
				return fmt.Errorf("leaf %d: %w", i, err)
			}
			if slices.Contains(lf.Events, hash) {
				idx, data = i, d
				return found
			}
		}
		return nil
	})
	if err != nil && err != found {
		return 0, nil, err
	}
	if idx < 0 {
		msg := fmt.Sprintf("no batch leaf of the log lists event %s", want)
		if pruned > 0 {
			msg += fmt.Sprintf(" (%d leaves of its time were pruned by retention, with their events)", pruned)
		}
		return 0, nil, errors.New(msg)
	}
	return idx, data, nil
}

// writeOut writes with fill to the file path (whole, or not at all) or,
// when path is "", to w.
func writeOut(path string, w io.Writer, fill func(io.Writer) error) error {
	if path == "" {
		return fill(w)
	}
	return writeFile(path, fill)
}

// finding is one thing `evidence check` found wrong.
type finding struct {
	// Kind is "log" (the log itself does not verify), "unlogged" (a
	// stored event no leaf lists: changed or added after it was logged)
	// or "missing" (a leaf lists an event the store does not hold:
	// deleted, or changed).
	Kind string `json:"kind"`
	// Leaf is the leaf at fault or that lists the missing event; -1 none.
	Leaf int64 `json:"leaf"`
	// Hash is the event's hash (hex SHA-256 of its event line).
	Hash string `json:"hash,omitempty"`
	// Time and Source are the stored event's (unlogged), or the time
	// range of the leaf's events (missing).
	Time     time.Time `json:"time,omitzero"`
	TimeTo   time.Time `json:"time_to,omitzero"`
	Source   string    `json:"source,omitempty"`
	Sensor   string    `json:"sensor,omitempty"`
	Message  string    `json:"message"`
	Checkpnt int64     `json:"checkpoint,omitempty"`
}

// checkResult is `evidence check --json`.
type checkResult struct {
	OK       bool      `json:"ok"`
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	Leaves   int       `json:"leaves"`
	Events   int64     `json:"events"`
	Findings []finding `json:"findings"`
}

func (e *env) evidenceCheck() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "check [--from WHEN] [--to WHEN]",
		Short: "Verify the log, then the stored events against it, naming every changed or missing event",
		Long: `Verify the evidence log whole (every leaf's data against its hash, every
stored hash, every checkpoint's root and signature), then the event store
against the log: the hashes of the stored events of the period (all, without
--from and --to) are compared, as sets, with the hashes that the batch leaves
of the period list. A stored event that no leaf lists was changed or added
after it was logged; a hash a leaf lists that no stored event has is an event
deleted or changed. Each is named (time, source address, hash, leaf). Leaves
whose data retention pruned are skipped, with their events.

A leaf may list an event that is stored under another leaf too (a batch
logged, then stored again after a crash): hashes are counted as sets. On a
central, only the events of its own sensors (central.sensors) are checked:
those of collectors are not in its log.

Exits non-zero on any finding. Shows progress with an ETA on a terminal.`,
		Example: `  takedown evidence check
  takedown evidence check --from 2026-11-01 --to 2026-11-30 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res checkResult
			var err error
			if res.From, err = parseWhen("from", from, false); err != nil {
				return err
			}
			if res.To, err = parseWhen("to", to, true); err != nil {
				return err
			}
			res.Findings = []finding{}
			err = e.withEvidence(cmd, func(ctx context.Context, l *evidenceLog) error {
				if err := l.log.Verify(ctx); err != nil {
					var te *evidence.TamperError
					if !errors.As(err, &te) {
						return err
					}
					f := finding{Kind: "log", Leaf: te.Leaf, Message: err.Error()}
					if te.Checkpoint >= 0 {
						f.Checkpnt = te.Checkpoint
					}
					res.Findings = append(res.Findings, f)
				}
				return e.checkStore(ctx, l, &res)
			})
			if err != nil {
				return err
			}
			res.OK = len(res.Findings) == 0
			if e.jsonOut {
				if err := writeJSON(e.stdout, res); err != nil {
					return err
				}
			} else {
				for _, f := range res.Findings {
					fmt.Fprintln(e.stdout, f.Message)
				}
				if res.OK {
					fmt.Fprintf(e.stdout, "evidence log verified; %s stored events all in the log's %s batch leaves\n",
						thousands(res.Events), thousands(int64(res.Leaves)))
				}
			}
			if !res.OK {
				return fmt.Errorf("evidence check: %d finding(s)", len(res.Findings))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the period: YYYY-MM-DD (UTC) or RFC 3339 (default: the first event)")
	cmd.Flags().StringVar(&to, "to", "", "end of the period: YYYY-MM-DD (that UTC day included) or RFC 3339 (excluded) (default: the last event)")
	e.jsonFlag(cmd)
	return cmd
}

// parseWhen parses --from or --to: a UTC day or an RFC 3339 time; a day
// given as the end counts whole. "" is the zero time (open).
func parseWhen(flag, s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usage(fmt.Errorf("--%s %q: not a day (YYYY-MM-DD) or an RFC 3339 time", flag, s))
	}
	return t.UTC(), nil
}

// checkStore compares the stored events of res's period with the hashes
// the batch leaves of the period list, adding a finding for each event
// stored but in no leaf and each hash listed but not stored.
func (e *env) checkStore(ctx context.Context, l *evidenceLog, res *checkResult) error {
	fromNs, toNs := int64(math.MinInt64), int64(math.MaxInt64)
	if !res.From.IsZero() {
		fromNs = res.From.UnixNano()
	}
	if !res.To.IsZero() {
		toNs = res.To.UnixNano()
	}
	// The leaves of the period: the hashes they list, by leaf.
	listed := map[[32]byte]int64{}
	pruned := 0
	err := l.log.Leaves(ctx, fromNs, toNs, func(idx int64, data []byte) error {
		if data == nil {
			pruned++
			return nil
		}
		lf, err := evidence.ParseLeaf(data)
		if err != nil {
			res.Findings = append(res.Findings, finding{Kind: "log", Leaf: idx, Message: fmt.Sprintf("leaf %d: %v", idx, err)})
			return nil
		}
		res.Leaves++
		for _, h := range lf.Events {
			if _, ok := listed[h]; !ok {
				listed[h] = idx
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	spans, err := l.log.LeafSpans(ctx, fromNs, toNs)
	if err != nil {
		return err
	}
	// The store is read over the period and the whole time range of its
	// leaves, so that an event of a leaf that reaches over the period's
	// edge is found where it is.
	q := eventstore.ScanQuery{From: res.From, To: res.To}
	for _, sp := range spans {
		if !q.From.IsZero() && sp.First < q.From.UnixNano() {
			q.From = time.Unix(0, sp.First).UTC()
		}
		if !q.To.IsZero() && sp.Last >= q.To.UnixNano() {
			q.To = time.Unix(0, sp.Last+1).UTC()
		}
	}
	own := map[string]bool{}
	if l.cfg.Role == config.RoleCentral {
		for _, s := range l.cfg.Central.Sensors {
			own[s] = true
		}
	}
	total := int64(0)
	if st, err := l.local.Store.Stats(ctx); err == nil {
		total = st.Events
	}
	bar := progress.New(e.stderr, "checking events", "events", total)
	stored := map[[32]byte]bool{}
	err = l.local.Store.Scan(ctx, q, func(ev *event.Event) error {
		bar.Add(1)
		if len(own) > 0 && !own[ev.Sensor] {
			return nil
		}
		h := evidence.EventHash(ev)
		stored[h] = true
		ns := ev.Time.UnixNano()
		if ns < fromNs || ns >= toNs {
			return nil
		}
		res.Events++
		if _, ok := listed[h]; !ok {
			res.Findings = append(res.Findings, finding{Kind: "unlogged", Leaf: -1, Hash: hex.EncodeToString(h[:]),
				Time: ev.Time.UTC(), Source: ev.SrcIP.String(), Sensor: ev.Sensor,
				Message: fmt.Sprintf("event of %s from %s (sensor %s, hash %x) is in no leaf of the log: changed or added after it was logged",
					ev.Time.UTC().Format(time.RFC3339Nano), ev.SrcIP, ev.Sensor, h)})
		}
		return nil
	})
	bar.Done()
	if err != nil {
		return err
	}
	var missing []finding
	for h, idx := range listed {
		if stored[h] {
			continue
		}
		f := finding{Kind: "missing", Leaf: idx, Hash: hex.EncodeToString(h[:])}
		sp := spans[idx]
		f.Time, f.TimeTo = time.Unix(0, sp.First).UTC(), time.Unix(0, sp.Last).UTC()
		f.Message = fmt.Sprintf("leaf %d lists event %x (its batch's events are of %s to %s), which the store does not hold: deleted or changed",
			idx, h, f.Time.Format(time.RFC3339Nano), f.TimeTo.Format(time.RFC3339Nano))
		missing = append(missing, f)
	}
	slices.SortFunc(missing, func(a, b finding) int {
		if a.Leaf != b.Leaf {
			return int(a.Leaf - b.Leaf)
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	res.Findings = append(res.Findings, missing...)
	if pruned > 0 && !e.jsonOut {
		fmt.Fprintf(e.stderr, "%d leaves of the period were pruned by retention, with their events: not checked\n", pruned)
	}
	return nil
}

func (e *env) evidenceCosign() *cobra.Command {
	var keyFile, state, proofFile, logKey, out string
	cmd := &cobra.Command{
		Use:   "cosign --key WITNESS_KEY --state FILE CHECKPOINT_FILE [--proof CONSISTENCY_FILE]",
		Short: "Cosign a checkpoint as a witness, once it is shown consistent with the last one cosigned",
		Long: `Cosign a checkpoint of the log as a witness: check the log's signature
(--log-key, default the configured log's verifier key), check that the tree
extends the last checkpoint this witness cosigned (kept in --state; --proof
is the consistency proof from its size to the new one, from "takedown
evidence prove --from OLD --to NEW"), then add the witness's signature line
(--key, a signing key from "takedown evidence keygen") and print the
cosigned checkpoint. The state file then holds it. A witness that cosigns
only consistent checkpoints makes a fork of the log visible.`,
		Example: `  takedown evidence cosign --key witness.key --state witness.state --log-key "$(cat evidence.pub)" \
      --proof 1000-2000.consistency checkpoint.note > checkpoint.cosigned`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" || state == "" {
				return errors.New("give --key and --state")
			}
			witness, _, err := evidence.LoadSigner(evidence.SignerConfig{KeyFile: keyFile})
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			if logKey == "" {
				cfg, err := e.config()
				if err != nil {
					return err
				}
				if logKey, err = app.EvidenceKey(cfg); err != nil {
					return fmt.Errorf("--log-key not given, and %w", err)
				}
			} else if b, err := os.ReadFile(logKey); err == nil {
				logKey = strings.TrimSpace(string(b))
			}
			lv, err := note.NewVerifier(strings.TrimSpace(logKey))
			if err != nil {
				return fmt.Errorf("--log-key %q: not a note verifier key: %w", logKey, err)
			}
			signed, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := evidence.ParseCheckpoint(signed, note.VerifierList(lv))
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			var prev *evidence.Checkpoint
			if b, err := os.ReadFile(state); err == nil {
				p, err := evidence.ParseCheckpoint(b, note.VerifierList(lv))
				if err != nil {
					return fmt.Errorf("--state %s: %w", state, err)
				}
				prev = &p
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("--state: %w", err)
			}
			var proof tlog.TreeProof
			if proofFile != "" {
				f, err := os.Open(proofFile)
				if err != nil {
					return fmt.Errorf("--proof: %w", err)
				}
				old, size, p, err := evidence.ReadConsistency(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("--proof %s: %w", proofFile, err)
				}
				if prev != nil && (old != prev.Size || size != c.Size) {
					return fmt.Errorf("--proof %s proves %d → %d, but the last cosigned checkpoint has %d leaves and this one %d", proofFile, old, size, prev.Size, c.Size)
				}
				proof = p
			} else if prev != nil && c.Size > prev.Size {
				return fmt.Errorf("the last checkpoint cosigned has %d leaves, this one %d: give --proof, from `takedown evidence prove --from %d --to %d`", prev.Size, c.Size, prev.Size, c.Size)
			}
			cosigned, err := evidence.Cosign(signed, prev, proof, lv, witness)
			if err != nil {
				return err
			}
			if err := writeFile(state, func(w io.Writer) error { _, err := w.Write(cosigned); return err }); err != nil {
				return fmt.Errorf("--state: %w", err)
			}
			return writeOut(out, e.stdout, func(w io.Writer) error { _, err := w.Write(cosigned); return err })
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "the witness's signing key file (mode 0600)")
	f.StringVar(&state, "state", "", "the witness's state: the last checkpoint it cosigned (made at the first cosign)")
	f.StringVar(&proofFile, "proof", "", "the consistency proof from the state's checkpoint to this one")
	f.StringVar(&logKey, "log-key", "", "the log's verifier key, or a file holding it (default: the configured log's)")
	f.StringVar(&out, "out", "", "write the cosigned checkpoint to this file (default: standard output)")
	return cmd
}
