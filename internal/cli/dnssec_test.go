package cli_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssectest"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestStaleDSThroughUnbound: a seized domain whose registrant's DS record
// is still in the parent zone is SERVFAIL through a validating Unbound, and
// domains verify says stale with the record; once the registry removes it
// the name resolves to the sinkhole (insecure) and verify says unsigned.
// Of a case that signs (dns.dnssec), the package asks to replace the stale
// DS with ours; once replaced, the name resolves with the AD bit and verify
// says signed. The parent is an example. zone the test signs; the sinkhole is
// takedown serve.
func TestStaleDSThroughUnbound(t *testing.T) {
	cfg, _, addr := setup(t)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`dns:\n  listen: \["([0-9.:]+)"\]`).FindSubmatch(text)
	if m == nil {
		t.Fatalf("no dns.listen in the test config:\n%s", text)
	}
	sinkhole := string(m[1])
	text = []byte(strings.Replace(string(text), "dns:\n", "dns:\n  dnssec: {cases: [c2]}\n", 1))
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}

	parent := dnssectest.StartParent(t, "example.")
	stale := dnssectest.StaleDS(t, "seized.example")
	stale2 := dnssectest.StaleDS(t, "signing.example")
	parent.Delegate(t, "seized.example", sinkhole, []string{"ns1.sinkhole.invalid."}, stale)
	parent.Delegate(t, "clean.example", sinkhole, []string{"ns1.sinkhole.invalid."})
	parent.Delegate(t, "signing.example", sinkhole, []string{"ns1.sinkhole.invalid."}, stale2)

	dir := t.TempDir()
	for c, names := range map[string]string{"c1": "seized.example\nclean.example\n", "c2": "signing.example\n"} {
		list := filepath.Join(dir, c+".txt")
		if err := os.WriteFile(list, []byte(names), 0o600); err != nil {
			t.Fatal(err)
		}
		mustRun(t, cfg, "cases", "add", c, "--court", "E.D. Va.", "--docket", "1")
		mustRun(t, cfg, "domains", "import", "--case", c, list)
		mustRun(t, cfg, "domains", "set-state", "--state", "restrained", "--case", c)
	}
	startServer(t, cfg, addr)
	u := dnssectest.StartUnbound(t, parent)

	resolves := func(name string, ad bool) error {
		r := u.Query(t, name, dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || r.AuthenticatedData != ad {
			return fmt.Errorf("%s: %s, AD %v, want NOERROR with AD %v", name, dns.RcodeToString[r.Rcode], r.AuthenticatedData, ad)
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.Equal(net.IPv4(127, 0, 0, 2)) {
				return nil
			}
		}
		return fmt.Errorf("%s: no A 127.0.0.2 in %v", name, r.Answer)
	}
	testnet.WaitFor(t, "the sinkhole to answer through Unbound", func() bool { return resolves("www.clean.example", false) == nil })
	for _, name := range []string{"www.seized.example", "www.signing.example"} {
		if r := u.Query(t, name, dns.TypeA); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("stale DS: %s through Unbound, want SERVFAIL:\n%v", dns.RcodeToString[r.Rcode], r)
		}
	}

	verify := func() map[string]registry.DelegationCheck {
		t.Helper()
		var checks []registry.DelegationCheck
		out := mustRun(t, cfg, "domains", "verify", "--resolver", parent.Addr, "--json")
		if err := json.Unmarshal([]byte(out), &checks); err != nil {
			t.Fatalf("verify --json: %v\n%s", err, out)
		}
		byName := map[string]registry.DelegationCheck{}
		for _, c := range checks {
			byName[c.Domain] = c
		}
		return byName
	}
	got := verify()
	if c := got["seized.example"]; c.DSState != registry.DSStale || len(c.DS) != 1 || c.DS[0] != registry.FormatDS(stale) || !c.Verified {
		t.Errorf("verify seized.example: %+v, want stale with %s", c, registry.FormatDS(stale))
	}
	if c := got["clean.example"]; c.DSState != registry.DSUnsigned || len(c.DS) != 0 {
		t.Errorf("verify clean.example: %+v, want unsigned", c)
	}
	if c := got["signing.example"]; c.DSState != registry.DSStale || len(c.DS) != 1 || c.DS[0] != registry.FormatDS(stale2) {
		t.Errorf("verify signing.example: %+v, want stale with %s", c, registry.FormatDS(stale2))
	}
	// Ours, as takedown dnssec ds gives them.
	var dsj []struct{ Record string }
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "dnssec", "ds", "--zone", "signing.example", "--json")), &dsj); err != nil || len(dsj) != 1 {
		t.Fatalf("dnssec ds: %v %v", dsj, err)
	}
	rr, err := dns.NewRR(dsj[0].Record)
	if err != nil {
		t.Fatal(err)
	}
	ours := rr.(*dns.DS)
	pkgs := filepath.Join(dir, "packages")
	mustRun(t, cfg, "registrars", "package", "--case", "c1", "--out", pkgs)
	mustRun(t, cfg, "registrars", "package", "--case", "c2", "--out", pkgs)
	for file, want := range map[string][]string{
		"c1_registry_registry-of-example.txt": {"  seized.example\n    Remove all DS records (do not add any):\n      seized.example. IN DS " + registry.FormatDS(stale) + "\n"},
		"c2_registry_registry-of-example.txt": {"  signing.example\n    Replace the DS records with ours. Remove:\n      signing.example. IN DS " + registry.FormatDS(stale2) +
			"\n    Publish:\n      signing.example. IN DS " + registry.FormatDS(ours) + "\n"},
		"c2_registry_registry-of-example.csv": {",replace," + registry.FormatDS(stale2) + "," + registry.FormatDS(ours) + "\n"},
	} {
		b, err := os.ReadFile(filepath.Join(pkgs, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q:\n%s", file, w, b)
			}
		}
	}
	out := mustRun(t, cfg, "domains", "verify", "--case", "c1", "--resolver", parent.Addr)
	if !strings.Contains(out, "stale DS at the parent: 1") || !regexp.MustCompile(`seized\.example\s+verified\s+stale`).MatchString(out) {
		t.Errorf("verify:\n%s", out)
	}
	if out := mustRun(t, cfg, "domains", "list"); !regexp.MustCompile(`seized\.example\s+c1\s+restrained\s+\S+ \S+\s+stale`).MatchString(out) {
		t.Errorf("list lacks the DS state:\n%s", out)
	}
	if out := mustRun(t, cfg, "domains", "show", "seized.example"); !strings.Contains(out, "dnssec:     STALE DS") ||
		!strings.Contains(out, "DS "+registry.FormatDS(stale)) {
		t.Errorf("show:\n%s", out)
	}
	if out := mustRun(t, cfg, "deadlines"); !strings.Contains(out, "warning: 2 domain(s) with stale DS records") || !strings.Contains(out, "  seized.example (c1)") {
		t.Errorf("deadlines:\n%s", out)
	}

	// The registries remove the one DS record, and replace the other with
	// ours.
	parent.SetDS(t, "seized.example")
	parent.SetDS(t, "signing.example", ours)
	u.Flush(t, "seized.example")
	u.Flush(t, "signing.example")
	if err := resolves("www.seized.example", false); err != nil {
		t.Error(err)
	}
	if err := resolves("www.signing.example", true); err != nil {
		t.Error(err)
	}
	got = verify()
	if c := got["seized.example"]; c.DSState != registry.DSUnsigned || len(c.DS) != 0 {
		t.Errorf("verify after the fix: %+v, want unsigned", c)
	}
	if c := got["signing.example"]; c.DSState != registry.DSSigned || len(c.DS) != 1 || c.DS[0] != registry.FormatDS(ours) {
		t.Errorf("verify after the fix: %+v, want signed with %s", c, registry.FormatDS(ours))
	}
	if out := mustRun(t, cfg, "deadlines"); strings.Contains(out, "stale DS") {
		t.Errorf("deadlines still warn:\n%s", out)
	}
}
