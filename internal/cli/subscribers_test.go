package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/registry"
)

// subscriberScenario manages subscribers through whichever backend the CLI
// picks and returns what it observed, with times and key IDs masked.
func subscriberScenario(t *testing.T, cfg string) map[string]string {
	obs := map[string]string{}
	mustRun(t, cfg, "subscribers", "add", "isp-a", "--org", "ISP A Abuse Desk", "--contact", "abuse@ISP-A.example", "--contact", "noc@isp-a.example",
		"--asn", "AS64512,AS64513", "--cidr", "192.0.2.0/24", "--country", "DE", "--format", "csv,json", "--send-at", "6:00", "--tlp", "amber", "--reason", "signed up")
	mustRun(t, cfg, "subscribers", "add", "cert-de", "--org", "CERT DE", "--contact", "reports@cert.example", "--country", "de", "--format", "stix")
	var cidrs []string
	for i := range 1024 {
		cidrs = append(cidrs, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	mustRun(t, cfg, "subscribers", "add", "big", "--org", "Big Hoster", "--contact", "abuse@big.example", "--cidr", strings.Join(cidrs, ","))

	// The exit codes of README's table, the same locally and remotely.
	wantCode := map[string]int{"bad-add": 1, "both": 2, "dup": 4, "empty-scope": 2, "missing": 3, "no-flags": 2, "not-there": 1, "revoke-none": 3}
	for name, args := range map[string][]string{
		"bad-add": {"subscribers", "add", "isp-b", "--org", "B", "--contact", "x@", "--asn", "AS0", "--cidr", "192.0.2.1/24", "--country", "ZZ",
			"--format", "pdf", "--tlp", "purple", "--send-at", "25:00"},
		"empty-scope": {"subscribers", "add", "isp-b", "--org", "B", "--contact", "a@b.example"},
		"dup":         {"subscribers", "add", "cert-de", "--org", "x", "--contact", "a@b.example", "--country", "FR"},
		"both":        {"subscribers", "update", "isp-a", "--asn", "AS1", "--add-asn", "AS2"},
		"not-there":   {"subscribers", "update", "isp-a", "--remove-asn", "AS64999"},
		"no-flags":    {"subscribers", "update", "isp-a"},
		"missing":     {"subscribers", "show", "nobody"},
		"revoke-none": {"subscribers", "key", "revoke", "isp-a", "nokey"},
	} {
		r := run(t, cfg, args...)
		if r.code != wantCode[name] || r.stdout != "" {
			t.Errorf("%s: exit %d (want %d), stdout %q", name, r.code, wantCode[name], r.stdout)
		}
		obs["err:"+name] = r.stderr
	}

	key := run(t, cfg, "subscribers", "key", "add", "isp-a", "--reason", "onboarding")
	if key.code != 0 || !regexp.MustCompile(`^tdk_[a-z2-7]{64}\n$`).MatchString(key.stdout) || !strings.Contains(key.stderr, "cannot be shown again") {
		t.Fatalf("key add: %+v", key)
	}
	id := key.stdout[4:12]
	mustRun(t, cfg, "subscribers", "update", "isp-a", "--add-cidr", "198.51.100.0/24", "--remove-asn", "AS64513", "--tlp", "RED")
	obs["list"] = mustRun(t, cfg, "subscribers", "list")
	obs["show"] = mustRun(t, cfg, "subscribers", "show", "isp-a")
	var s registry.Subscriber
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "subscribers", "show", "isp-a", "--json")), &s); err != nil || len(s.Keys) != 1 || s.Keys[0].ID != id {
		t.Errorf("show --json: %+v, %v", s, err)
	}
	obs["revoke"] = mustRun(t, cfg, "subscribers", "key", "revoke", "isp-a", id)
	obs["remove"] = mustRun(t, cfg, "subscribers", "remove", "cert-de", "--json")
	var ss []registry.Subscriber
	json.Unmarshal([]byte(mustRun(t, cfg, "subscribers", "list", "--json")), &ss)
	obs["names"] = fmt.Sprint(len(ss), " ", ss[0].Name, " ", ss[1].Name, " ", ss[1].Scope, " ", ss[1].Keys[0].Active())

	audit := mustRun(t, cfg, "audit", "list", "--json")
	if strings.Contains(audit, key.stdout[12:68]) {
		t.Error("the audit log holds the key")
	}
	var es []registry.AuditEntry
	json.Unmarshal([]byte(audit), &es)
	var acts []string
	for _, e := range es {
		acts = append(acts, e.Action+" "+e.Object+" by "+e.Actor+" "+e.Reason)
	}
	obs["audit"] = strings.Join(acts, "\n")
	obs["verify"] = hexHash.ReplaceAllString(mustRun(t, cfg, "audit", "verify"), "HASH")

	mask := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ|` + id)
	for k, v := range obs {
		obs[k] = mask.ReplaceAllString(v, "X")
	}
	return obs
}

// TestSubscribersLocalAndRemote runs the same subscriber commands on the
// database file and through a running server, and compares.
func TestSubscribersLocalAndRemote(t *testing.T) {
	cfgLocal, _, _ := setup(t)
	local := subscriberScenario(t, cfgLocal)
	cfgRemote, _, addr := setup(t)
	startServer(t, cfgRemote, addr)
	remote := subscriberScenario(t, cfgRemote)

	lj, _ := json.MarshalIndent(local, "", "  ")
	rj, _ := json.MarshalIndent(remote, "", "  ")
	if !bytes.Equal(lj, rj) {
		t.Errorf("local and remote runs differ\nlocal:  %s\nremote: %s", lj, rj)
	}
	for k, want := range map[string][]string{
		"err:bad-add":     {`contact "x@"`, `ASN "AS0"`, `did you mean 192.0.2.0/24`, `country "ZZ"`, `format "pdf"`, `TLP "purple"`, `send time "25:00"`},
		"err:empty-scope": {"missing --asn, --cidr or --country (the scope)"},
		"err:dup":         {"subscriber cert-de: already exists"},
		"err:both":        {"--asn replaces the list, --add-asn and --remove-asn edit it: give one or the other"},
		"err:not-there":   {"cannot remove ASN AS64999"},
		"err:no-flags":    {"no flag says what to change"},
		"err:missing":     {`subscriber "nobody": not found`},
		"err:revoke-none": {`no API key "nokey"`},
		"list": {"big Big Hoster 1,024 CIDRs abuse@big.example csv 06:00 AMBER 0", "isp-a ISP A Abuse Desk 1 ASN, 2 CIDRs, 1 country abuse@isp-a.example (+1) csv,json 06:00 RED 1",
			"cert-de CERT DE 1 country reports@cert.example stix 06:00 AMBER 0"},
		"show":   {"ASNs: AS64512\n", "CIDRs: 192.0.2.0/24 198.51.100.0/24\n", "reports: csv, json daily at 06:00 UTC, TLP:RED", "KEY ID CREATED REVOKED\nX X -"},
		"revoke": {"revoked API key X of subscriber isp-a"},
		"remove": {`"removed": "cert-de"`},
		"names":  {"2 big isp-a AS64512 192.0.2.0/24 198.51.100.0/24 DE false"},
		"audit": {"subscriber.add subscriber:isp-a by tester signed up", "subscriber.key.add subscriber:isp-a by tester onboarding",
			"subscriber.update subscriber:isp-a by tester", "subscriber.key.revoke subscriber:isp-a by tester", "subscriber.remove subscriber:cert-de by tester"},
		"verify": {"7 entries"},
	} {
		got := regexp.MustCompile(` +`).ReplaceAllString(local[k], " ") // columns aligned with any number of spaces
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", k, w, local[k])
			}
		}
	}
}
