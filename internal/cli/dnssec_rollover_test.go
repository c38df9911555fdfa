package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/dnssectest"
)

// TestRolloverThroughUnbound rolls a case's key while `takedown serve`
// signs its zone behind a signed parent (example.com., served by the test) and a
// validating Unbound: the answer stays secure (AD) at every step as the
// parent's DS set moves from the old key, to both, to the new one. Once
// the old key is gone, a parent still holding only its DS is bogus
// (SERVFAIL): what `rollover finish` waits for.
func TestRolloverThroughUnbound(t *testing.T) {
	cfg, _, addr := setup(t)
	raw, _ := os.ReadFile(cfg)
	var dnsAddr string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.Contains(l, "listen: [") && dnsAddr == "" {
			dnsAddr = strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "listen:")), `[]"`)
		}
	}
	os.WriteFile(cfg, []byte(strings.Replace(string(raw), "  rrl: {responses_per_second: -1}\n",
		"  rrl: {responses_per_second: -1}\n  dnssec: {cases: [c1]}\n", 1)), 0o600)
	const zone = "seized.example.com"
	list := filepath.Join(t.TempDir(), "l.txt")
	os.WriteFile(list, []byte(zone+"\n"), 0o600)
	mustRun(t, cfg, "cases", "add", "c1", "--court", "E.D. Va.", "--docket", "1:10-cv-00156")
	mustRun(t, cfg, "domains", "import", "--case", "c1", list)
	mustRun(t, cfg, "domains", "set-state", "--state", "restrained", zone)
	startServer(t, cfg, addr)

	// dsOf returns the DS records `dnssec ds` gives for the zone, by tag.
	dsOf := func() map[uint16]*dns.DS {
		var rs []struct {
			KeyTag uint16 `json:"key_tag"`
			Record string `json:"record"`
		}
		if err := json.Unmarshal([]byte(mustRun(t, cfg, "dnssec", "ds", "--zone", zone, "--json")), &rs); err != nil {
			t.Fatal(err)
		}
		out := map[uint16]*dns.DS{}
		for _, r := range rs {
			rr, err := dns.NewRR(r.Record)
			if err != nil {
				t.Fatalf("%q: %v", r.Record, err)
			}
			out[r.KeyTag] = rr.(*dns.DS)
		}
		return out
	}
	// waitKeys waits until the sinkhole's DNSKEY set holds the keys of
	// these tags, and no other.
	waitKeys := func(tags ...uint16) {
		t.Helper()
		var got []uint16
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			m := new(dns.Msg)
			m.SetQuestion(zone+".", dns.TypeDNSKEY)
			m.SetEdns0(1232, true)
			r, err := dns.Exchange(m, dnsAddr)
			if err != nil {
				continue
			}
			got = got[:0]
			for _, rr := range r.Answer {
				if k, ok := rr.(*dns.DNSKEY); ok {
					got = append(got, k.KeyTag())
				}
			}
			if sameTags(got, tags) {
				return
			}
		}
		t.Fatalf("the sinkhole's DNSKEY set has the keys %v, want %v", got, tags)
	}
	var old uint16
	for deadline := time.Now().Add(10 * time.Second); old == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("serve made no key for case c1")
		}
		for tag := range dsOf() {
			old = tag
		}
	}
	waitKeys(old)
	ds := dsOf()

	parent := dnssectest.StartParent(t, "example.com.")
	parent.Delegate(t, zone+".", dnsAddr, []string{"ns1.sinkhole.invalid."}, ds[old])
	u := dnssectest.StartUnbound(t, parent)
	secure := func(step string, wantAD bool) {
		t.Helper()
		u.Flush(t, zone)
		r := u.Query(t, "bot-17."+zone+".", dns.TypeA)
		switch {
		case wantAD && (r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData || len(r.Answer) == 0):
			t.Fatalf("%s: %s, AD %v, want a secure answer:\n%s", step, dns.RcodeToString[r.Rcode], r.AuthenticatedData, r)
		case !wantAD && r.Rcode != dns.RcodeServerFailure:
			t.Fatalf("%s: %s, want SERVFAIL (bogus):\n%s", step, dns.RcodeToString[r.Rcode], r)
		}
	}
	secure("the old key, the parent with its DS", true)

	mustRun(t, cfg, "dnssec", "rollover", "start", "--case", "c1")
	ds = dsOf()
	var next uint16
	for tag := range ds {
		if tag != old {
			next = tag
		}
	}
	if len(ds) != 2 || next == 0 {
		t.Fatalf("after start: DS of %v", ds)
	}
	waitKeys(old, next)
	secure("rollover started, the parent with the old DS", true)
	// The parent without the new DS, as domains verify saw it: finish
	// refuses, naming the zone.
	mustRun(t, cfg, "domains", "verify", "--case", "c1", "--resolver", parent.Addr)
	if r := run(t, cfg, "dnssec", "rollover", "finish", "--case", "c1"); r.code != 4 || !strings.Contains(r.stderr, "the parents of "+zone+" hold no DS of the new key") {
		t.Fatalf("finish with the parent's DS old: exit %d %s", r.code, r.stderr)
	}
	parent.SetDS(t, zone, ds[old], ds[next])
	secure("rollover started, the parent with both DS", true)
	mustRun(t, cfg, "domains", "verify", "--case", "c1", "--resolver", parent.Addr)
	if r := run(t, cfg, "dnssec", "rollover", "finish", "--case", "c1"); r.code != 4 || !strings.Contains(r.stderr, "caches may hold the old DS") {
		t.Fatalf("finish before the DS TTL: exit %d %s", r.code, r.stderr)
	}

	mustRun(t, cfg, "dnssec", "rollover", "finish", "--case", "c1", "--force")
	waitKeys(next)
	secure("rollover finished, the parent with both DS", true)
	parent.SetDS(t, zone, ds[next])
	secure("rollover finished, the parent with the new DS", true)
	parent.SetDS(t, zone, ds[old])
	secure("the old key gone, a parent with its DS only", false)

	var keys []dnssec.Info
	json.Unmarshal([]byte(mustRun(t, cfg, "dnssec", "keys", "--json")), &keys)
	if len(keys) != 2 || keys[0].Tag != old || keys[0].State != dnssec.StateRemoved || keys[1].Tag != next || keys[1].State != dnssec.StateActive {
		t.Errorf("keys after the rollover: %+v", keys)
	}
}

func sameTags(got, want []uint16) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}
