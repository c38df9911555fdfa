// Package apptest runs `takedown serve` inside a test's process, for the
// tests outside package app that drive the whole system: end to end
// against the simulator, and the dashboard in a browser.
package apptest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/registry"
)

// Serve runs serve with cfg until the test ends and returns once it is
// ready, with a client of its API acting as actor.
func Serve(t testing.TB, cfg config.Config, actor string) *api.Client {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() { served <- app.Serve(ctx, cfg, slog.New(slog.DiscardHandler), func(string) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	token, err := app.ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(cfg.API.Listen, token, actor)
}

// Seize adds a case of the family with the names, restrained, to cfg's
// database (before Serve).
func Seize(t testing.TB, cfg config.Config, caseName, family string, names []string) {
	t.Helper()
	ctx := context.Background()
	local, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ch := registry.Change{Actor: "test"}
	if _, err := local.Registry.AddCase(ctx, registry.NewCase{Name: caseName, Court: "E.D. Va.", Docket: "1", Family: family}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.ImportDomains(ctx, caseName, "t", []byte(strings.Join(names, "\n")), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.SetState(ctx, names, registry.StateRestrained, ch); err != nil {
		t.Fatal(err)
	}
}

// Dedupe returns names without repeats, in their first order (DGA lists
// of several days may repeat a name).
func Dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool {
		if seen[n] {
			return true
		}
		seen[n] = true
		return false
	})
}
