package classify

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown-project/takedown/internal/event"
)

const rulesV1 = `
rules:
  - {name: v1, family: one, match: {protocol: http, path: '^/'}}
`
const rulesV2 = `
rules:
  - {name: v2, family: two, match: {protocol: http, path: '^/'}}
`

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, text string, mtime time.Time) {
	t.Helper()
	// Write then rename, as editors and config management do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestHolderReloadsOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	t0 := time.Now().Add(-time.Hour)
	writeFile(t, path, rulesV1, t0)
	reg := prometheus.NewPedanticRegistry()
	h, err := New(Config{Path: path, PollInterval: 10 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{Protocol: event.ProtoHTTP, Path: "/x"}
	family := func() string { return h.Classify(req).Family }
	if family() != "one" || h.Rules().Len() != 1 {
		t.Fatalf("family %q", family())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = h.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	// Readers keep classifying while the file changes under them.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if f := family(); f != "one" && f != "two" {
					t.Errorf("family %q during reload", f)
					return
				}
			}
		})
	}

	writeFile(t, path, rulesV2, t0.Add(time.Minute))
	eventually(t, "the new rules", func() bool { return family() == "two" })

	// A broken file keeps the rules in force and counts a failure, once.
	writeFile(t, path, "rules: [\n", t0.Add(2*time.Minute))
	eventually(t, "the failure to be counted", func() bool {
		return value(t, h.m.reloads.WithLabelValues("failure")) == 1
	})
	for range 3 { // more polls: the same bad file is not retried
		h.check()
	}
	if n := value(t, h.m.reloads.WithLabelValues("failure")); n != 1 || family() != "two" || value(t, h.m.lastOK) != 0 {
		t.Fatalf("failures %v, family %q", n, family())
	}
	if err := h.Reload(); err == nil {
		t.Fatal("Reload of a broken file: no error")
	}

	// Fixed again: picked up.
	writeFile(t, path, rulesV1, t0.Add(3*time.Minute))
	eventually(t, "the fixed rules", func() bool { return family() == "one" })
	close(stop)
	readers.Wait()
	if value(t, h.m.lastOK) != 1 || value(t, h.m.rules) != 1 {
		t.Error("gauges not updated")
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 4 {
		t.Errorf("%d metric families, %v", len(mfs), err)
	}
}

func TestHolderReloadExplicit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rulesV1, time.Now())
	h, err := New(Config{Path: path, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, rulesV2, time.Now())
	req := &Request{Protocol: event.ProtoHTTP, Path: "/"}
	if h.Classify(req).Family != "one" {
		t.Fatal("changed without Reload")
	}
	if err := h.Reload(); err != nil || h.Classify(req).Family != "two" {
		t.Fatalf("Reload: %v, family %q", err, h.Classify(req).Family)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil || h.Classify(req).Family != "two" {
		t.Fatalf("Reload of a missing file: %v", err)
	}
}

func TestHolderDefaultAndErrors(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Rules().Name() != DefaultFile || h.Rules().Len() == 0 {
		t.Fatalf("default rules: %s, %d", h.Rules().Name(), h.Rules().Len())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Run(ctx); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, "rules: [{name: x}]\n", time.Now())
	if _, err := New(Config{Path: bad}); err == nil {
		t.Fatal("New with a broken file: no error")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Registerer: reg}); err == nil {
		t.Fatal("second registration: no error")
	}
}

// TestHolderSetPath: SetPath switches files and the watcher follows the
// new one; a file that does not load leaves the old file and rules.
func TestHolderSetPath(t *testing.T) {
	dir := t.TempDir()
	p1, p2, bad := filepath.Join(dir, "one.yaml"), filepath.Join(dir, "two.yaml"), filepath.Join(dir, "bad.yaml")
	t0 := time.Now().Add(-time.Hour)
	writeFile(t, p1, rulesV1, t0)
	writeFile(t, p2, rulesV2, t0)
	writeFile(t, bad, "rules: [{name: x, match: {protocol: gopher}}]\n", t0)
	h, err := New(Config{PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	req := &Request{Protocol: event.ProtoHTTP, Path: "/x"}
	if err := h.SetPath(p1); err != nil {
		t.Fatal(err)
	}
	if f := h.Classify(req).Family; f != "one" || h.Path() != p1 {
		t.Fatalf("after SetPath(one): family %q, path %q", f, h.Path())
	}
	if err := h.SetPath(bad); err == nil {
		t.Fatal("a bad rules file was accepted")
	}
	if f := h.Classify(req).Family; f != "one" || h.Path() != p1 {
		t.Fatalf("after SetPath(bad): family %q, path %q", f, h.Path())
	}
	if err := h.SetPath(p2); err != nil {
		t.Fatal(err)
	}
	// The watcher now follows p2 (and no longer p1).
	writeFile(t, p1, rulesV2, t0.Add(time.Minute))
	writeFile(t, p2, rulesV1, t0.Add(time.Minute))
	eventually(t, "the watcher to follow the new file", func() bool { return h.Classify(req).Family == "one" })
	if err := h.SetPath(""); err != nil || h.Rules().Name() == p2 {
		t.Fatalf("back to the shipped rules: %v, %s", err, h.Rules().Name())
	}
}
