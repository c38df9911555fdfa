package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/testnet"
)

const (
	tsigName   = "takedown-xfr."
	tsigSecret = "dGFrZWRvd24tdGVzdC1zZWNyZXQtMzItYnl0ZXMtbG9uZyE="
)

func ask(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// TestNSDSecondaryOfSinkhole runs `serve` with the sinkhole and the transfer
// server, lets NSD 4.6 pull the seized zones by AXFR with TSIG, and checks
// that NSD answers exactly as the sinkhole does for a sample of names and
// types — what anycast nodes running NSD as secondaries would serve.
func TestNSDSecondaryOfSinkhole(t *testing.T) {
	nsd, err := exec.LookPath("nsd")
	if err != nil {
		t.Fatal("nsd not found: install it with `apt-get install nsd`")
	}
	dir := t.TempDir()
	dnsPort, xfrPort, nsdPort, apiPort := testnet.FreePort(t), testnet.FreePort(t), testnet.FreePort(t), testnet.FreePort(t)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
operator: Test CERT
api: {listen: "127.0.0.1:%d"}
dns:
  listen: ["127.0.0.1:%d"]
  nameservers: [{name: ns1.sinkhole.example, addrs: [192.0.2.53]}, {name: ns2.sinkhole.example, addrs: [192.0.2.54]}]
  a: [192.0.2.1]
  aaaa: ["2001:db8::1"]
  rrl: {responses_per_second: -1}
transfer:
  listen: ["127.0.0.1:%d"]
  tsig_keys: [{name: %s, secret: %s}]
listen: {http: [], https: [], smtp: []}
`, filepath.Join(dir, "data"), apiPort, dnsPort, xfrPort, tsigName, tsigSecret)))
	if err != nil {
		t.Fatal(err)
	}
	zones := []string{"waledac-cc1.example.com", "waledac-cc2.example.net"}
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := registry.Change{Actor: "test"}
	if _, err := local.Registry.AddCase(ctx, registry.NewCase{Name: "waledac-2010", Court: "E.D. Va.", Docket: "1:10-cv-00156"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.ImportDomains(ctx, "waledac-2010", "t", []byte(strings.Join(zones, "\n")), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Registry.Advance(ctx, zones, []registry.State{registry.StateRestrained, registry.StateSinkholed}, ch); err != nil {
		t.Fatal(err)
	}
	local.Close()

	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	ready := make(chan struct{})
	var logs testnet.Buffer
	go func() {
		served <- Serve(sctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("serve: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start\n%s", logs.String())
	}
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	os.MkdirAll(filepath.Join(dir, "nsd", "xfr"), 0o755)
	var zc strings.Builder
	for _, z := range zones {
		fmt.Fprintf(&zc, "zone:\n\tname: %q\n\trequest-xfr: AXFR 127.0.0.1@%d %s\n", z, xfrPort, tsigName)
	}
	conf := filepath.Join(dir, "nsd", "nsd.conf")
	os.WriteFile(conf, []byte(testnet.NSDConfig(filepath.Join(dir, "nsd"), nsdPort, tsigName, tsigSecret, zc.String())), 0o600)
	var nsdLog testnet.Buffer
	cmd := exec.Command(nsd, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = &nsdLog, &nsdLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	ours := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	theirs := fmt.Sprintf("127.0.0.1:%d", nsdPort)
	for _, z := range zones {
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := ask(theirs, z, dns.TypeSOA)
			if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("NSD did not load %s: %v %v\nnsd: %s\nserve: %s", z, r, err, nsdLog.String(), logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	compared := 0
	for _, z := range zones {
		for _, name := range []string{z, "www." + z, "a.b.c." + z, "mx." + z} {
			for _, qt := range []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeSRV} {
				a, err1 := ask(ours, name, qt)
				b, err2 := ask(theirs, name, qt)
				if err1 != nil || err2 != nil {
					t.Fatalf("%s %s: ours %v, nsd %v", name, dns.TypeToString[qt], err1, err2)
				}
				if a.Rcode != b.Rcode || !a.Authoritative || !b.Authoritative {
					t.Errorf("%s %s: rcode/aa ours %s/%v, nsd %s/%v", name, dns.TypeToString[qt], dns.RcodeToString[a.Rcode], a.Authoritative, dns.RcodeToString[b.Rcode], b.Authoritative)
				}
				if x, y := rrStrings(a.Answer), rrStrings(b.Answer); !slices.Equal(x, y) {
					t.Errorf("%s %s answers differ\nours: %q\nnsd:  %q", name, dns.TypeToString[qt], x, y)
				}
				compared++
			}
		}
	}
	if compared != 56 {
		t.Errorf("compared %d answers, want 56", compared)
	}
	// The secondary really holds our records, not something of its own.
	r, _ := ask(theirs, "www."+zones[0], dns.TypeTXT)
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "sinkholed by order of E.D. Va. 1:10-cv-00156") {
		t.Errorf("NSD's TXT for www.%s: %v", zones[0], r.Answer)
	}
}
