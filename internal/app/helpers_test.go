package app

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/registry"
)

// seize opens cfg's database and adds a case of the family with the
// domains, restrained, so that serve answers for them.
func seize(t *testing.T, cfg config.Config, caseName, family string, domains ...string) {
	t.Helper()
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ch := registry.Change{Actor: "test"}
	if _, err := local.Registry.AddCase(ctx, registry.NewCase{Name: caseName, Court: "E.D. Va.", Docket: "1:10-cv-00156", Family: family}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.ImportDomains(ctx, caseName, "t", []byte(strings.Join(domains, "\n")), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.SetState(ctx, domains, registry.StateRestrained, ch); err != nil {
		t.Fatal(err)
	}
}

// serveInProcess runs Serve with cfg until the returned stop is called,
// which reports Serve's error. It returns once serve is ready.
func serveInProcess(t *testing.T, cfg config.Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() { served <- Serve(ctx, cfg, slog.New(slog.DiscardHandler), func(string) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		cancel()
		t.Fatal(err)
	}
	return func() error { cancel(); return <-served }
}

// storedAfterStop waits until serve's store holds n events, stops serve
// and returns every stored event, in time order.
func storedAfterStop(t *testing.T, cfg config.Config, n int64, stop func() error) []event.Event {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, _ := ReadToken(cfg.API.TokenFile)
		st, err := apiStatus(ctx, cfg, tok)
		if err == nil && st.Store.Events >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events not stored: %+v %v", n, st.Store, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	var got []event.Event
	if err := local.Store.Scan(ctx, eventstore.ScanQuery{}, func(e *event.Event) error { got = append(got, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}
