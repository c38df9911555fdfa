package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/registry"
)

// The evidence log in serve (config.Evidence, internal/evidence). The
// single and the central role
//
//   - open the log in the database file at start, verify it whole
//     (Log.Verify: every stored hash and every checkpoint) and check the
//     published checkpoint against it: a truncated log or a checkpoint
//     swapped for one of another tree refuses the start, naming the leaf,
//     the checkpoint or the file;
//   - give the pipeline and the collector the event store wrapped in
//     evidence.Store, which appends each batch's leaf before the batch is
//     stored (write-ahead);
//   - follow the audit log and sign a checkpoint at start, every
//     evidence.interval and once at shutdown, after the pipeline's last
//     batch (the component starts before the pipeline, so it stops
//     after it), and publish each to evidence.publish_dir;
//   - serve the checkpoints and the verifier key on the API, without a
//     token (GET /api/v1/evidence/checkpoint, /checkpoints/SIZE, /key);
//   - prune the leaf data of the events that retention deletes.

// holdInCheckpointEnv names a file: when set at start, the first
// checkpoint signed after the start-up one creates the file after
// signing and then blocks (for holdAfterInsertFor at most) before the
// checkpoint is stored, so that a test can kill -9 the process in the
// middle of a checkpoint. Test-only.
const holdInCheckpointEnv = "TAKEDOWN_TEST_HOLD_IN_CHECKPOINT"

// evidenceLog is the log of a serve and what it publishes.
type evidenceLog struct {
	cfg    config.Evidence
	log    *evidence.Log
	reg    *registry.Registry
	vkey   string // the note verifier key
	verify note.Verifier
	logger *slog.Logger
	// started is when serve opened the log: the age of a log without a
	// checkpoint yet.
	started time.Time
	hold    *holdSigner

	mu      sync.Mutex // one checkpoint at a time
	last    atomic.Pointer[evidence.Checkpoint]
	lastErr atomic.Pointer[string]
}

// openEvidence opens, verifies and checkpoints the log, when the role
// keeps one, and starts checkpointing every interval. Its stop signs the
// last checkpoint: it starts before the pipeline so that it stops after
// the pipeline's last batch.
func (s *server) openEvidence(ctx context.Context) (func() error, error) {
	if !s.cfg.Evidence.On(s.cfg.Role) {
		return nil, nil
	}
	t0 := time.Now()
	ev, err := openEvidenceLog(ctx, s.cfg, s.local, s.log)
	if err != nil {
		return nil, err
	}
	s.evid = ev
	ev.tick(ctx)
	ev.logger.Info("evidence log checked and checkpointed", "origin", ev.cfg.Origin, "size", ev.size(ctx), "key", ev.vkey,
		"took", time.Since(t0).Round(time.Microsecond))
	if ev.hold != nil {
		ev.hold.armed.Store(true)
	}
	stopLoop, _ := loop(func(ctx context.Context) {
		t := time.NewTicker(ev.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				ev.tick(ctx)
			}
		}
	})(ctx)
	return func() error {
		stopLoop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ev.tick(ctx)
		if e := ev.lastErr.Load(); e != nil {
			return fmt.Errorf("evidence: the last checkpoint: %s", *e)
		}
		if c := ev.last.Load(); c != nil {
			s.log.Info("evidence checkpoint signed at shutdown", "size", c.Size)
		}
		return nil
	}, nil
}

// openEvidenceLog opens the log of cfg in local's database file with its
// signer (making the key file at the first start), verifies it and the
// published checkpoint, and publishes the stored checkpoints that the
// publish directory lacks. log is serve's: the log's messages name their
// component.
func openEvidenceLog(ctx context.Context, cfg config.Config, local *Local, log *slog.Logger) (*evidenceLog, error) {
	ec := cfg.Evidence
	logger := log.With("component", "evidence")
	signer, verifier, vkey, err := evidenceSigner(ec, logger)
	if err != nil {
		return nil, err
	}
	ev := &evidenceLog{cfg: ec, reg: local.Registry, vkey: vkey, verify: verifier, logger: logger, started: time.Now()}
	if path := os.Getenv(holdInCheckpointEnv); path != "" {
		ev.hold = &holdSigner{Signer: signer, path: path, log: logger}
		signer = ev.hold
	}
	ev.log, err = evidence.Open(ctx, evidence.Config{DB: local.DB, Origin: ec.Origin, Signer: signer, Verifier: verifier, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("evidence log: %w", err)
	}
	cps, err := ev.log.Checkpoints(ctx)
	if err == nil {
		err = ev.checkCheckpoints(ctx, cps)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence log does not verify, serve refuses to extend it (`takedown evidence check` says more): %w", err)
	}
	if len(cps) > 0 {
		ev.last.Store(&cps[len(cps)-1])
	}
	if err := ev.checkPublished(ctx, cps); err != nil {
		return nil, err
	}
	if err := ev.republish(cps); err != nil {
		return nil, err
	}
	return ev, nil
}

// tick follows the audit log, signs a checkpoint when the tree grew and
// publishes it. Failures are logged and kept for status and readyz.
func (ev *evidenceLog) tick(ctx context.Context) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	err := ev.checkpoint(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		ev.logger.Error("evidence checkpoint", "err", err)
		msg := err.Error()
		ev.lastErr.Store(&msg)
		return
	}
	ev.lastErr.Store(nil)
}

func (ev *evidenceLog) checkpoint(ctx context.Context) error {
	if _, err := ev.log.FollowAudit(ctx, ev.reg); err != nil {
		return fmt.Errorf("following the audit log: %w", err)
	}
	c, err := ev.log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if prev := ev.last.Load(); prev != nil && prev.Size == c.Size && bytes.Equal(prev.Note, c.Note) {
		ev.last.Store(&c) // nothing new to publish
		return nil
	}
	if err := ev.publish(c, true); err != nil {
		return err
	}
	ev.last.Store(&c)
	return nil
}

// size is the log's size, -1 when it cannot be read.
func (ev *evidenceLog) size(ctx context.Context) int64 {
	n, err := ev.log.Size(ctx)
	if err != nil {
		return -1
	}
	return n
}

// publishedLatest is the file of the latest checkpoint in the publish
// directory; checkpointFile is that of each.
func (ev *evidenceLog) publishedLatest() string {
	return filepath.Join(ev.cfg.PublishDir, "checkpoint")
}

func (ev *evidenceLog) checkpointFile(size int64) string {
	return filepath.Join(ev.cfg.PublishDir, "checkpoints", strconv.FormatInt(size, 10)+".note")
}

// publish writes c to checkpoints/SIZE.note and, if latest, to
// checkpoint, each whole (writeFileAtomic).
func (ev *evidenceLog) publish(c evidence.Checkpoint, latest bool) error {
	for _, dir := range []string{ev.cfg.PublishDir, filepath.Dir(ev.checkpointFile(0))} {
		if err := publicDir(dir); err != nil {
			return fmt.Errorf("evidence.publish_dir: %w", err)
		}
	}
	if err := writeFileAtomic(ev.checkpointFile(c.Size), c.Note); err != nil {
		return fmt.Errorf("publishing checkpoint %d: %w", c.Size, err)
	}
	if latest {
		if err := writeFileAtomic(ev.publishedLatest(), c.Note); err != nil {
			return fmt.Errorf("publishing checkpoint %d: %w", c.Size, err)
		}
	}
	return nil
}

// republish publishes the stored checkpoints that the publish directory
// lacks (a crash between storing a checkpoint and publishing it), and the
// latest.
func (ev *evidenceLog) republish(cps []evidence.Checkpoint) error {
	for i, c := range cps {
		latest := i == len(cps)-1
		if _, err := os.Stat(ev.checkpointFile(c.Size)); err == nil && !latest {
			continue
		}
		if err := ev.publish(c, latest); err != nil {
			return err
		}
	}
	return nil
}

// startChecked bounds how many of the latest checkpoints serve checks at
// start (a tree hash each, about a millisecond): a year of them at the
// default interval would take minutes. `takedown evidence check` checks
// them all.
const startChecked = 10_000

// checkCheckpoints checks that the latest stored checkpoints (whose
// signatures Checkpoints checked) are of this log and have the root of the
// tree of their size: a checkpoint swapped for one of another tree, signed
// by the same key, is refused. Open checked the last one, and the leaves'
// count; the leaves' data is checked by `takedown evidence check`
// (Log.Verify), which reads all of it.
func (ev *evidenceLog) checkCheckpoints(ctx context.Context, cps []evidence.Checkpoint) error {
	if len(cps) > startChecked {
		ev.logger.Info("checking the latest checkpoints at start; `takedown evidence check` checks the older ones",
			"checked", startChecked, "stored", len(cps))
		cps = cps[len(cps)-startChecked:]
	}
	for _, c := range cps {
		if c.Origin != ev.cfg.Origin {
			return &evidence.TamperError{Leaf: -1, Checkpoint: c.Size,
				Reason: fmt.Sprintf("stored checkpoint is of log %q, evidence.origin is %q", c.Origin, ev.cfg.Origin)}
		}
		root, err := ev.log.TreeHash(ctx, c.Size)
		if err != nil {
			return err
		}
		if root != c.Root {
			return &evidence.TamperError{Leaf: -1, Checkpoint: c.Size,
				Reason: fmt.Sprintf("stored checkpoint has root %s, the tree of its size %s: it was swapped for a checkpoint of another tree", c.Root, root)}
		}
	}
	return nil
}

// checkPublished checks the published latest checkpoint against the log:
// the log must hold a tree of its size with its root. A log with fewer
// leaves was truncated, one with another root forked; both refuse the
// start, naming the file.
func (ev *evidenceLog) checkPublished(ctx context.Context, cps []evidence.Checkpoint) error {
	path := ev.publishedLatest()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evidence: reading the published checkpoint: %w", err)
	}
	pub, err := evidence.ParseCheckpoint(b, note.VerifierList(ev.verify))
	if err != nil {
		return fmt.Errorf("evidence: the published checkpoint %s: %w", path, err)
	}
	tamper := func(reason string) error {
		return fmt.Errorf("evidence log does not verify, serve refuses to extend it: %w",
			&evidence.TamperError{Leaf: -1, Checkpoint: pub.Size, File: path, Reason: reason})
	}
	if pub.Origin != ev.cfg.Origin {
		return fmt.Errorf("evidence: the published checkpoint %s is of log %q, evidence.origin is %q: publish_dir belongs to another log", path, pub.Origin, ev.cfg.Origin)
	}
	var latest *evidence.Checkpoint
	if len(cps) > 0 {
		latest = &cps[len(cps)-1]
	}
	if latest == nil || latest.Size < pub.Size {
		have := int64(0)
		if latest != nil {
			have = latest.Size
		}
		return tamper(fmt.Sprintf("published with %d leaves, but the log's checkpoints reach only %d: the log was truncated", pub.Size, have))
	}
	if latest.Size == pub.Size {
		if latest.Root != pub.Root {
			return tamper("the log's checkpoint of this size has another root: the log forked")
		}
		return nil
	}
	proof, err := ev.log.ProveConsistency(ctx, pub.Size, latest.Size)
	if err != nil {
		return fmt.Errorf("evidence: proving the published checkpoint %d consistent with %d: %w", pub.Size, latest.Size, err)
	}
	if err := tlog.CheckTree(proof, latest.Size, latest.Root, pub.Size, pub.Root); err != nil {
		return tamper(fmt.Sprintf("not a prefix of the log's tree of %d leaves: the log forked (%v)", latest.Size, err))
	}
	return nil
}

// status is the log's part of GET /v1/status.
func (ev *evidenceLog) status(ctx context.Context, now time.Time) *api.EvidenceStatus {
	st := &api.EvidenceStatus{Origin: ev.cfg.Origin, Key: ev.vkey, Size: ev.size(ctx)}
	if c := ev.last.Load(); c != nil {
		st.CheckpointSize, st.CheckpointAt = c.Size, c.Time
		st.CheckpointAge = now.Sub(c.Time).Seconds()
	}
	if e := ev.lastErr.Load(); e != nil {
		st.Error = *e
	}
	return st
}

// overdue is readyz's check: a problem once the last checkpoint (or the
// start, before any) is more than three intervals old.
func (ev *evidenceLog) overdue(now time.Time) string {
	at := ev.started
	c := ev.last.Load()
	if c != nil && c.Time.After(at) {
		at = c.Time
	}
	limit := 3 * ev.cfg.Interval
	if age := now.Sub(at); age > limit {
		what := "no checkpoint signed since the start"
		if c != nil {
			what = fmt.Sprintf("the last checkpoint (size %d) was signed %s ago", c.Size, age.Round(time.Second))
		}
		msg := fmt.Sprintf("evidence: %s, more than 3 intervals (evidence.interval %s)", what, ev.cfg.Interval)
		if e := ev.lastErr.Load(); e != nil {
			msg += ": " + *e
		}
		return msg
	}
	return ""
}

// prune drops the leaf data of the batches older than cutoff.
func (ev *evidenceLog) prune(ctx context.Context, cutoff time.Time) (int64, error) {
	return ev.log.Prune(ctx, cutoff.UnixNano())
}

// handler serves the checkpoints and the verifier key, read-only and
// without a token: the published files, as mirrors fetch them.
func (ev *evidenceLog) handler() http.Handler {
	mux := http.NewServeMux()
	text := func(w http.ResponseWriter, b []byte, cache string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", cache)
		w.Write(b) //nolint:errcheck // the client went away
	}
	mux.HandleFunc("GET /api/v1/evidence/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		c := ev.last.Load()
		if c == nil {
			http.Error(w, "no checkpoint signed yet", http.StatusNotFound)
			return
		}
		text(w, c.Note, "no-cache")
	})
	mux.HandleFunc("GET /api/v1/evidence/checkpoints/{size}", func(w http.ResponseWriter, r *http.Request) {
		size, err := parseTreeSize(r.PathValue("size"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := os.ReadFile(ev.checkpointFile(size))
		if err != nil {
			http.Error(w, fmt.Sprintf("no checkpoint of size %d", size), http.StatusNotFound)
			return
		}
		text(w, b, "public, max-age=31536000, immutable")
	})
	mux.HandleFunc("GET /api/v1/evidence/key", func(w http.ResponseWriter, r *http.Request) {
		text(w, []byte(ev.vkey+"\n"), "no-cache")
	})
	return mux
}

// parseTreeSize parses the SIZE of /api/v1/evidence/checkpoints/SIZE (or
// SIZE.note, as the published file is named): a decimal number without
// sign or leading zeros.
func parseTreeSize(s string) (int64, error) {
	name := strings.TrimSuffix(s, ".note")
	size, err := strconv.ParseInt(name, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != name {
		return 0, fmt.Errorf("%q is not a tree size (a decimal number)", s)
	}
	return size, nil
}

// evidenceSigner returns the log's signer, its verifier and verifier key:
// the command's, or the key file's, made at the first start (mode 0600,
// named after the origin) with its verifier key beside it in a .pub file.
func evidenceSigner(ec config.Evidence, log *slog.Logger) (note.Signer, note.Verifier, string, error) {
	if len(ec.SignerCommand) > 0 {
		s, v, err := evidence.LoadSigner(evidence.SignerConfig{Command: ec.SignerCommand, VerifierKey: ec.PublicKey})
		if err != nil {
			return nil, nil, "", fmt.Errorf("evidence.signer_command: %w", err)
		}
		return s, v, ec.PublicKey, nil
	}
	if _, err := os.Stat(ec.KeyFile); errors.Is(err, os.ErrNotExist) {
		vkey, err := MakeEvidenceKey(ec.KeyFile, ec.Origin)
		if err != nil {
			return nil, nil, "", fmt.Errorf("evidence.key_file: %w", err)
		}
		log.Info("evidence key made: give its verifier key to those who check the checkpoints", "file", ec.KeyFile, "key", vkey)
	}
	s, v, err := evidence.LoadSigner(evidence.SignerConfig{KeyFile: ec.KeyFile})
	if err != nil {
		return nil, nil, "", fmt.Errorf("evidence.key_file: %w", err)
	}
	b, err := os.ReadFile(ec.KeyFile)
	if err != nil {
		return nil, nil, "", fmt.Errorf("evidence.key_file: %w", err)
	}
	vkey, err := VerifierKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, nil, "", fmt.Errorf("evidence.key_file %s: %w", ec.KeyFile, err)
	}
	pub := pubFile(ec.KeyFile)
	if old, err := os.ReadFile(pub); err != nil || strings.TrimSpace(string(old)) != vkey {
		if err := writeFileAtomic(pub, []byte(vkey+"\n")); err != nil {
			return nil, nil, "", fmt.Errorf("evidence: writing the verifier key: %w", err)
		}
	}
	return s, v, vkey, nil
}

// pubFile is where the verifier key of the key file keyFile is written:
// beside it, .key replaced by .pub.
func pubFile(keyFile string) string {
	return strings.TrimSuffix(keyFile, ".key") + ".pub"
}

// MakeEvidenceKey writes a new note signer key named name to path (mode
// 0600; an existing file is an error) and its verifier key beside it
// (.pub), and returns the verifier key.
func MakeEvidenceKey(path, name string) (string, error) {
	skey, vkey, err := evidence.GenerateKey(name)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if strings.HasSuffix(path, ".key") {
		if err := writeFileAtomic(pubFile(path), []byte(vkey+"\n")); err != nil {
			return "", err
		}
	}
	return vkey, nil
}

// VerifierKey is evidence.VerifierKey: the verifier key of a signer key.
func VerifierKey(skey string) (string, error) { return evidence.VerifierKey(skey) }

// publicDir makes dir, when missing, readable by all (0755, whatever the
// umask: serve's keeps everything else private): what it holds is meant to
// be mirrored. An existing directory keeps its mode.
func publicDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// writeFileAtomic writes b to path whole or not at all: a temporary file
// in its directory, fsynced, renamed over path, and the directory fsynced.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() //nolint:errcheck // the rename is done; a directory fsync can only fail on odd filesystems
		d.Close()
	}
	return nil
}

// holdSigner is the signer of a test that kills serve in the middle of a
// checkpoint (holdInCheckpointEnv): once armed, its first signature
// creates the file path and blocks before the checkpoint is stored.
type holdSigner struct {
	note.Signer
	path  string
	log   *slog.Logger
	armed atomic.Bool
	once  sync.Once
}

func (h *holdSigner) Sign(msg []byte) ([]byte, error) {
	sig, err := h.Signer.Sign(msg)
	if err != nil || !h.armed.Load() {
		return sig, err
	}
	h.once.Do(func() {
		h.log.Warn("holding in the checkpoint after signing it (test)", "file", h.path)
		if f, err := os.Create(h.path); err == nil {
			f.Write(msg) //nolint:errcheck // test-only
			f.Close()
		}
		time.Sleep(holdAfterInsertFor)
	})
	return sig, nil
}

// eventWriter is the event store as the pipeline and the collector write
// to it: wrapped in the evidence log when it is on.
func (s *server) eventWriter() eventWriter {
	if s.evid == nil {
		return s.local.Store
	}
	return evidence.NewStore(s.local.Store, s.evid.log)
}

// eventWriter is what the pipeline and the collector store through.
type eventWriter interface {
	pipeline.Store
	collect.Store
}

// evidencePruner is retention's pruning of the evidence log; nil when it
// is off.
func (s *server) evidencePruner() func(context.Context, time.Time) (int64, error) {
	if s.evid == nil {
		return nil
	}
	return s.evid.prune
}

// EvidenceKey returns the note verifier key of cfg's evidence log:
// evidence.public_key with a signer command, else the .pub file beside
// the key file, else the one derived from the key file itself.
func EvidenceKey(cfg config.Config) (string, error) {
	ec := cfg.Evidence
	if len(ec.SignerCommand) > 0 {
		return ec.PublicKey, nil
	}
	if b, err := os.ReadFile(pubFile(ec.KeyFile)); err == nil && strings.HasSuffix(ec.KeyFile, ".key") {
		vkey := strings.TrimSpace(string(b))
		if _, err := note.NewVerifier(vkey); err != nil {
			return "", fmt.Errorf("evidence: %s: %w", pubFile(ec.KeyFile), err)
		}
		return vkey, nil
	}
	b, err := os.ReadFile(ec.KeyFile)
	if err != nil {
		return "", fmt.Errorf("evidence: the log's verifier key: %w (no %s beside it)", err, pubFile(ec.KeyFile))
	}
	return VerifierKey(strings.TrimSpace(string(b)))
}

// OpenEvidence opens the evidence log in local's database file to read
// and verify it (it cannot sign), with the verifier key of cfg, which it
// returns too.
func OpenEvidence(ctx context.Context, cfg config.Config, local *Local) (*evidence.Log, string, error) {
	vkey, err := EvidenceKey(cfg)
	if err != nil {
		return nil, "", err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("evidence: verifier key %q: %w", vkey, err)
	}
	l, err := evidence.Open(ctx, evidence.Config{DB: local.DB, Origin: cfg.Evidence.Origin, Verifier: v,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, "", fmt.Errorf("evidence log: %w", err)
	}
	return l, vkey, nil
}
