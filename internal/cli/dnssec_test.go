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
// The parent is a com. zone the test signs; the sinkhole is takedown serve.
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

	parent := dnssectest.StartParent(t, "com.")
	stale := dnssectest.StaleDS(t, "seized-example.com")
	parent.Delegate(t, "seized-example.com", sinkhole, []string{"ns1.sinkhole.invalid."}, stale)
	parent.Delegate(t, "clean-example.com", sinkhole, []string{"ns1.sinkhole.invalid."})

	list := filepath.Join(t.TempDir(), "l.txt")
	if err := os.WriteFile(list, []byte("seized-example.com\nclean-example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1")
	mustRun(t, cfg, "domains", "import", "--case", "c1", list)
	mustRun(t, cfg, "domains", "set-state", "--state", "restrained", "--case", "c1")
	startServer(t, cfg, addr)
	u := dnssectest.StartUnbound(t, parent)

	resolves := func(name string) error {
		r := u.Query(t, name, dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || r.AuthenticatedData {
			return fmt.Errorf("%s: %s, AD %v, want NOERROR without AD", name, dns.RcodeToString[r.Rcode], r.AuthenticatedData)
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.Equal(net.IPv4(127, 0, 0, 2)) {
				return nil
			}
		}
		return fmt.Errorf("%s: no A 127.0.0.2 in %v", name, r.Answer)
	}
	testnet.WaitFor(t, "the sinkhole to answer through Unbound", func() bool { return resolves("www.clean-example.com") == nil })
	if r := u.Query(t, "www.seized-example.com", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("stale DS: %s through Unbound, want SERVFAIL:\n%v", dns.RcodeToString[r.Rcode], r)
	}

	verify := func() map[string]registry.DelegationCheck {
		t.Helper()
		var checks []registry.DelegationCheck
		out := mustRun(t, cfg, "domains", "verify", "--case", "c1", "--resolver", parent.Addr, "--json")
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
	if c := got["seized-example.com"]; c.DSState != registry.DSStale || len(c.DS) != 1 || c.DS[0] != registry.FormatDS(stale) || !c.Verified {
		t.Errorf("verify seized-example.com: %+v, want stale with %s", c, registry.FormatDS(stale))
	}
	if c := got["clean-example.com"]; c.DSState != registry.DSUnsigned || len(c.DS) != 0 {
		t.Errorf("verify clean-example.com: %+v, want unsigned", c)
	}
	out := mustRun(t, cfg, "domains", "verify", "--case", "c1", "--resolver", parent.Addr)
	if !strings.Contains(out, "stale DS at the parent: 1") || !regexp.MustCompile(`seized-example\.com\s+verified\s+stale`).MatchString(out) {
		t.Errorf("verify:\n%s", out)
	}
	if out := mustRun(t, cfg, "domains", "list"); !regexp.MustCompile(`seized-example\.com\s+c1\s+restrained\s+\S+ \S+\s+stale`).MatchString(out) {
		t.Errorf("list lacks the DS state:\n%s", out)
	}
	if out := mustRun(t, cfg, "domains", "show", "seized-example.com"); !strings.Contains(out, "dnssec:     STALE DS") ||
		!strings.Contains(out, "DS "+registry.FormatDS(stale)) {
		t.Errorf("show:\n%s", out)
	}
	if out := mustRun(t, cfg, "deadlines"); !strings.Contains(out, "warning: 1 domain(s) with stale DS records") || !strings.Contains(out, "  seized-example.com (c1)") {
		t.Errorf("deadlines:\n%s", out)
	}

	// The registry removes the DS record.
	parent.SetDS(t, "seized-example.com")
	u.Flush(t, "seized-example.com")
	if err := resolves("www.seized-example.com"); err != nil {
		t.Error(err)
	}
	if c := verify()["seized-example.com"]; c.DSState != registry.DSUnsigned || len(c.DS) != 0 {
		t.Errorf("verify after the fix: %+v, want unsigned", c)
	}
	if out := mustRun(t, cfg, "deadlines"); strings.Contains(out, "stale DS") {
		t.Errorf("deadlines still warn:\n%s", out)
	}
}
