package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestRPZFollowsRegistryByIXFR changes one domain of a served feed and
// checks that an IXFR from the old serial carries that change alone.
func TestRPZFollowsRegistryByIXFR(t *testing.T) {
	dir := t.TempDir()
	xfrPort := testnet.FreePort(t)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: []}
listen: {http: [], https: [], smtp: []}
transfer:
  listen: ["127.0.0.1:%d"]
  tsig_keys: [{name: %s, secret: %s}]
rpz: {cases: {c2: redirect}}
`, filepath.Join(dir, "data"), testnet.FreePort(t), xfrPort, tsigName, tsigSecret)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := registry.Change{Actor: "test"}
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("seized-%03d.example.com", i))
	}
	local.Registry.AddCase(ctx, registry.NewCase{Name: "c1", Court: "E.D. Va.", Docket: "1"}, ch)
	local.Registry.AddCase(ctx, registry.NewCase{Name: "c2", Court: "E.D. Va.", Docket: "2"}, ch)
	if _, err := local.Registry.ImportDomains(ctx, "c1", "t", []byte(strings.Join(names, "\n")), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.ImportDomains(ctx, "c2", "t", []byte("redirected.example.net\n"), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.SetState(ctx, names, registry.StateRestrained, ch); err != nil {
		t.Fatal(err)
	}
	local.Close()

	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		served <- Serve(sctx, cfg, slog.New(slog.DiscardHandler), func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-served:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})

	addr := fmt.Sprintf("127.0.0.1:%d", xfrPort)
	soa := func() uint32 {
		m := new(dns.Msg)
		m.SetQuestion("rpz.takedown.local.", dns.TypeSOA)
		m.SetTsig(tsigName, dns.HmacSHA256, 300, time.Now().Unix())
		c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{tsigName: tsigSecret}}
		r, _, err := c.Exchange(m, addr)
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("SOA of the feed: %v %v", r, err)
		}
		return r.Answer[0].(*dns.SOA).Serial
	}
	before := soa()

	// One domain more, through the API as the CLI does: the redirect case's
	// domain is restrained.
	token, err := ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	reg := api.NewClient(cfg.API.Listen, token, "test")
	if _, err := reg.SetState(ctx, []string{"redirected.example.net"}, registry.StateRestrained, ch); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for soa() == before {
		if time.Now().After(deadline) {
			t.Fatal("the feed's serial did not move after the registry changed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	m := new(dns.Msg)
	m.SetIxfr("rpz.takedown.local.", before, "localhost.", "hostmaster.rpz.takedown.local.")
	m.SetTsig(tsigName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{tsigName: tsigSecret}}
	env, err := tr.In(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		rrs = append(rrs, e.RR...)
	}
	// SOA(new), SOA(old), SOA(new), the redirect's A and AAAA for the name
	// and *.name, SOA(new) — not the 400 records of the other entries.
	var got []string
	for _, rr := range rrs {
		got = append(got, rr.String())
	}
	if len(rrs) != 8 || rrs[1].(*dns.SOA).Serial != before {
		t.Fatalf("IXFR from %d is not the one-domain change:\n%s", before, strings.Join(got, "\n"))
	}
	for _, rr := range rrs[3:7] {
		ok := strings.HasSuffix(rr.Header().Name, "redirected.example.net.rpz.takedown.local.")
		switch r := rr.(type) {
		case *dns.A:
			ok = ok && r.A.String() == "127.0.0.1"
		case *dns.AAAA:
			ok = ok && r.AAAA.String() == "::1"
		default:
			ok = false
		}
		if !ok {
			t.Errorf("added record %s is not the redirect of redirected.example.net", rr)
		}
	}
}
