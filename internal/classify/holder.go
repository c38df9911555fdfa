package classify

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPollInterval is how often a Holder looks at its rules file.
const DefaultPollInterval = 2 * time.Second

// Config configures a Holder. The zero value serves the shipped rules.
type Config struct {
	// Path of the rules file. Empty: the shipped rules (Default).
	Path string
	// PollInterval is how often Run checks the file for a change (size,
	// modification time, then content). Default DefaultPollInterval; a
	// negative value turns the check off, leaving Reload.
	PollInterval time.Duration
	// Logger receives reload results. Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: none registered.
	Registerer prometheus.Registerer
}

// Holder holds the current Rules and replaces them when the file changes
// or on Reload. Classify and Rules take no lock: a reload swaps an atomic
// pointer, and requests in flight keep the rules they loaded. A file that
// fails to load leaves the rules in force as they are.
type Holder struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	cur atomic.Pointer[Rules]

	mu       sync.Mutex // serialises loads; guards the fields below
	stamp    stamp      // of the file in force
	badStamp stamp      // of the last file that failed, to log it once
	lastErr  string     // last stat error, to log it once
}

// stamp identifies a version of the rules file.
type stamp struct {
	size  int64
	mtime time.Time
	sum   [sha256.Size]byte
}

// New loads the rules and returns a Holder serving them; an error in the
// file is returned, since there are no older rules to keep.
func New(cfg Config) (*Holder, error) {
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	h := &Holder{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "classify")
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	h.m = m
	if err := h.Reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// Rules returns the rules in force.
func (h *Holder) Rules() *Rules { return h.cur.Load() }

// Classify classifies r with the rules in force.
func (h *Holder) Classify(r *Request) Result { return h.cur.Load().Classify(r) }

// Reload reads and compiles the rules file now, as on SIGHUP. On error the
// rules in force stay, the error is logged and counted, and returned.
func (h *Holder) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.load()
}

// SetPath switches to another rules file (empty: the shipped rules) and
// loads it now, as a SIGHUP after a change of classify.rules does. If it
// fails to load, the file and the rules in force stay as they were, and
// the error is returned.
func (h *Holder) SetPath(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if path == h.cfg.Path {
		return h.load()
	}
	oldPath, oldStamp, oldBad := h.cfg.Path, h.stamp, h.badStamp
	h.cfg.Path = path
	if err := h.load(); err != nil {
		h.cfg.Path, h.stamp, h.badStamp = oldPath, oldStamp, oldBad
		return err
	}
	h.lastErr = ""
	return nil
}

// Path returns the rules file in force; empty for the shipped rules.
func (h *Holder) Path() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg.Path
}

// load reads and compiles the rules file. Called with mu.
func (h *Holder) load() error {
	if h.cfg.Path == "" {
		rs, err := Default()
		return h.done(rs, err, stamp{})
	}
	data, st, err := readStamped(h.cfg.Path)
	if err != nil {
		return h.done(nil, err, stamp{})
	}
	rs, err := Parse(h.cfg.Path, data)
	return h.done(rs, err, st)
}

func (h *Holder) done(rs *Rules, err error, st stamp) error {
	if err != nil {
		h.badStamp = st
		h.m.reloads.WithLabelValues("failure").Inc()
		h.m.lastOK.Set(0)
		if h.cur.Load() != nil {
			h.log.Error("rules not reloaded; the rules in force stay", "err", err)
		}
		return err
	}
	h.stamp, h.badStamp, h.lastErr = st, stamp{}, ""
	h.cur.Store(rs)
	h.m.reloads.WithLabelValues("success").Inc()
	h.m.lastOK.Set(1)
	h.m.lastOKTime.SetToCurrentTime()
	h.m.rules.Set(float64(rs.Len()))
	h.log.Info("rules loaded", "file", rs.Name(), "rules", rs.Len())
	return nil
}

// readStamped reads the file and its stamp; the stamp is taken before the
// read, so a write during the read shows as a change at the next check.
func readStamped(path string) ([]byte, stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, stamp{}, fmt.Errorf("reading rules: %w", err)
	}
	if fi.Size() > 64<<20 {
		return nil, stamp{}, fmt.Errorf("reading rules: %s is %d bytes; at most 64 MiB", path, fi.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, stamp{}, fmt.Errorf("reading rules: %w", err)
	}
	return data, stamp{size: fi.Size(), mtime: fi.ModTime(), sum: sha256.Sum256(data)}, nil
}

// Run checks the rules file for changes every PollInterval until ctx ends.
// With polling off it only waits for ctx.
func (h *Holder) Run(ctx context.Context) error {
	if h.cfg.PollInterval < 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(h.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.check()
		}
	}
}

// check reloads the file if it differs from the one in force and from the
// last one that failed.
func (h *Holder) check() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.Path == "" {
		return // the shipped rules do not change
	}
	fi, err := os.Stat(h.cfg.Path)
	if err != nil {
		// A rename-over by an editor can show a gap; say it once.
		if msg := err.Error(); msg != h.lastErr {
			h.lastErr = msg
			h.log.Warn("rules file not readable; the rules in force stay", "err", err)
		}
		return
	}
	h.lastErr = ""
	same := func(s stamp) bool { return s.size == fi.Size() && s.mtime.Equal(fi.ModTime()) }
	if same(h.stamp) || same(h.badStamp) {
		return
	}
	data, st, err := readStamped(h.cfg.Path)
	if err != nil {
		_ = h.done(nil, err, stamp{}) // logged and counted
		return
	}
	if st.sum == h.stamp.sum {
		h.stamp = st // touched, not changed
		return
	}
	if st.sum == h.badStamp.sum {
		h.badStamp = st
		return
	}
	rs, err := Parse(h.cfg.Path, data)
	_ = h.done(rs, err, st)
}

type metrics struct {
	reloads    *prometheus.CounterVec
	lastOK     prometheus.Gauge
	lastOKTime prometheus.Gauge
	rules      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "takedown", "classify"
	m := &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "reloads_total",
			Help: "Loads of the classification rules, by result (success, failure).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_reload_successful",
			Help: "1 if the last load of the rules succeeded, 0 if the rules in force are older than the file.",
		}),
		lastOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_reload_success_timestamp_seconds",
			Help: "When the rules in force were loaded.",
		}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "rules",
			Help: "Rules in force.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reloads, m.lastOK, m.lastOKTime, m.rules} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("classify: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}
