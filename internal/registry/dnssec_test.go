package registry

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testKey is a DNSKEY with a fixed public key (any 64 bytes hash the same
// way a P-256 key does), so DS digests are the same in every run.
func testKey(seed byte) *dns.DNSKEY {
	pub := make([]byte, 64)
	for i := range pub {
		pub[i] = seed + byte(i)
	}
	return &dns.DNSKEY{Hdr: dns.RR_Header{Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET}, Flags: 257, Protocol: 3,
		Algorithm: dns.ECDSAP256SHA256, PublicKey: base64.StdEncoding.EncodeToString(pub)}
}

// dsOf is key's DS record for zone with that digest type.
func dsOf(key *dns.DNSKEY, zone string, digest uint8) *dns.DS {
	k := *key
	k.Hdr.Name = dns.Fqdn(zone)
	return k.ToDS(digest)
}

func TestClassifyDS(t *testing.T) {
	ours, theirs := testKey(1), testKey(99)
	z := "seized.example"
	ourDS := []*dns.DS{dsOf(ours, z, dns.SHA256)}
	otherAlg := dsOf(theirs, z, dns.SHA256)
	otherAlg.Algorithm = dns.RSAMD5
	unknownDigest := dsOf(theirs, z, dns.SHA256)
	unknownDigest.DigestType = 99
	sameTagOtherDigest := dsOf(ours, z, dns.SHA256)
	sameTagOtherDigest.Digest = strings.Repeat("AB", 32)
	lower := dsOf(ours, z, dns.SHA256)
	lower.Digest = strings.ToLower(lower.Digest)
	for _, tc := range []struct {
		name        string
		found, ours []*dns.DS
		want        DSState
	}{
		{"none found, we do not sign", nil, nil, DSUnsigned},
		{"none found, we sign", nil, ourDS, DSUnsigned},
		{"theirs, we do not sign", []*dns.DS{dsOf(theirs, z, dns.SHA256)}, nil, DSStale},
		{"theirs, we sign", []*dns.DS{dsOf(theirs, z, dns.SHA256)}, ourDS, DSStale},
		{"ours", []*dns.DS{dsOf(ours, z, dns.SHA256)}, ourDS, DSSigned},
		{"ours in lower case", []*dns.DS{lower}, ourDS, DSSigned},
		{"ours beside theirs", []*dns.DS{dsOf(theirs, z, dns.SHA256), dsOf(ours, z, dns.SHA256)}, ourDS, DSSigned},
		{"ours as SHA-384", []*dns.DS{dsOf(ours, z, dns.SHA384)}, ourDS, DSSigned},
		{"ours for another zone", []*dns.DS{dsOf(ours, "other.example", dns.SHA256)}, ourDS, DSStale},
		{"our tag, another digest", []*dns.DS{sameTagOtherDigest}, ourDS, DSStale},
		{"only an algorithm no resolver uses", []*dns.DS{otherAlg}, nil, DSUnsigned},
		{"only a digest no resolver knows", []*dns.DS{unknownDigest}, ourDS, DSUnsigned},
		{"an unusable one beside a stale one", []*dns.DS{otherAlg, dsOf(theirs, z, dns.SHA1)}, nil, DSStale},
	} {
		if got := ClassifyDS(tc.found, tc.ours); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestParseDS(t *testing.T) {
	ds := dsOf(testKey(1), "a.example", dns.SHA256)
	text := FormatDS(ds)
	got, err := ParseDS(strings.ToLower(text[:20]) + " " + text[20:])
	if err != nil || FormatDS(got) != text {
		t.Fatalf("ParseDS(FormatDS) = %v, %v; want %s", got, err, text)
	}
	for _, tc := range []struct{ in, want string }{
		{"", `DS record "": want key-tag, algorithm, digest type and digest`},
		{"1 13 2", `DS record "1 13 2": want key-tag, algorithm, digest type and digest`},
		{"65536 13 2 AB", `DS record "65536 13 2 AB": key tag "65536" is not a number from 0 to 65535`},
		{"1 x 2 AB", `DS record "1 x 2 AB": algorithm "x" is not a number from 0 to 255`},
		{"1 13 -2 AB", `DS record "1 13 -2 AB": digest type "-2" is not a number from 0 to 255`},
		{"1 13 2 XY", `DS record "1 13 2 XY": digest is not 1 to 64 bytes of hex`},
		{"1 13 2 ABCD", `DS record "1 13 2 ABCD": a digest of type 2 has 32 bytes, not 2`},
	} {
		_, err := ParseDS(tc.in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseDS(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// FuzzClassifyDS reads DS records as a client sends them to the registry
// and classifies the set: whatever the records, the state is one of
// unsigned, signed and stale; ours always make it signed; a record that
// parses formats to text that parses to the same record.
func FuzzClassifyDS(f *testing.F) {
	ours := dsOf(testKey(1), "a.example", dns.SHA256)
	f.Add(FormatDS(ours), "")
	f.Add(FormatDS(dsOf(testKey(2), "a.example", dns.SHA1)), FormatDS(ours))
	f.Add("1 1 2 "+strings.Repeat("00", 32), "65535 255 255 ff")
	f.Add("1 13 2 AB", "x y z")
	f.Fuzz(func(t *testing.T, a, b string) {
		var found []*dns.DS
		for _, s := range []string{a, b} {
			ds, err := ParseDS(s)
			if err != nil {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
					t.Fatalf("ParseDS(%q): %v (not ErrInvalid quoting the input)", s, err)
				}
				continue
			}
			again, err := ParseDS(FormatDS(ds))
			if err != nil || *again != *ds {
				t.Fatalf("ParseDS(FormatDS(%q)) = %v, %v", s, again, err)
			}
			found = append(found, ds)
		}
		st := ClassifyDS(found, []*dns.DS{ours})
		if !slices.Contains([]DSState{DSUnsigned, DSSigned, DSStale}, st) {
			t.Fatalf("state %q", st)
		}
		if len(found) == 0 && st != DSUnsigned {
			t.Fatalf("nothing found: %s", st)
		}
		if ClassifyDS(append(found, ours), []*dns.DS{ours}) != DSSigned {
			t.Fatal("ours beside others is not signed")
		}
		if st == DSSigned && ClassifyDS(found, nil) == DSSigned {
			t.Fatal("signed without keys of ours")
		}
	})
}

// TestRecordDelegationDS: the registry decides signed or stale with our
// keys, keeps the DS records found, shows the state in lists, and tells
// the registries what to do in the packages.
func TestRecordDelegationDS(t *testing.T) {
	ours := testKey(1)
	r, _, _ := newTestRegistry(t)
	r.ourDS = func(zone string) []*dns.DS {
		if strings.HasPrefix(zone, "signing-") {
			return []*dns.DS{dsOf(ours, zone, dns.SHA256)}
		}
		return nil
	}
	mustCase(t, r)
	names := "stale.example\nsigning-stale.example\nsigning-ours.example\nunsigned.example\nfailed.example\nold.example\n"
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "l", []byte(names), alice); err != nil {
		t.Fatal(err)
	}
	theirs := FormatDS(dsOf(testKey(50), "stale.example", dns.SHA256))
	theirs2 := FormatDS(dsOf(testKey(60), "signing-stale.example", dns.SHA256))
	ourText := FormatDS(dsOf(ours, "signing-ours.example", dns.SHA256))
	check := func(name string, st DSState, ds []string, problem string) DelegationCheck {
		return DelegationCheck{Domain: name, CheckedAt: t0, Verified: true, NS: []string{"ns1.sinkhole.example"},
			DSState: st, DS: ds, DSProblem: problem}
	}
	// A bad DS record refuses the batch, naming domain and record.
	err := r.RecordDelegation(ctxBack, []DelegationCheck{check("stale.example", DSStale, []string{"1 13 2 zz"}, "")}, alice)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "stale.example") || !strings.Contains(err.Error(), `"1 13 2 zz"`) {
		t.Fatalf("bad DS: %v", err)
	}
	err = r.RecordDelegation(ctxBack, []DelegationCheck{
		check("stale.example", DSStale, []string{strings.ToLower(theirs)}, ""),
		check("signing-stale.example", DSUnsigned, []string{theirs2}, ""), // the caller's state is not trusted
		check("signing-ours.example", DSStale, []string{ourText}, ""),
		check("unsigned.example", DSUnsigned, nil, ""),
		check("failed.example", DSError, nil, "SERVFAIL"),
		check("old.example", "", nil, ""), // a client that did not look
	}, alice)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]DSState{"stale.example": DSStale, "signing-stale.example": DSStale, "signing-ours.example": DSSigned,
		"unsigned.example": DSUnsigned, "failed.example": DSError, "old.example": ""}
	ds, err := r.ListDomains(ctxBack, DomainFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.DSState != want[d.Name] {
			t.Errorf("list: %s is %q, want %q", d.Name, d.DSState, want[d.Name])
		}
	}
	preg := prometheus.NewRegistry()
	if err := r.RegisterMetrics(preg); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(preg, strings.NewReader(`# HELP takedown_registry_domains_ds Seized domains (not released) by the DS records their parent publishes, as the last delegation check found them: unsigned, signed (our key), stale (validating resolvers SERVFAIL), error (not read), unchecked.
# TYPE takedown_registry_domains_ds gauge
takedown_registry_domains_ds{state="error"} 1
takedown_registry_domains_ds{state="signed"} 1
takedown_registry_domains_ds{state="stale"} 2
takedown_registry_domains_ds{state="unchecked"} 1
takedown_registry_domains_ds{state="unsigned"} 1
`)); err != nil {
		t.Error(err)
	}
	d, err := r.GetDomain(ctxBack, "stale.example")
	if err != nil || d.DSState != DSStale || d.Delegation.DSState != DSStale || !slices.Equal(d.Delegation.DS, []string{theirs}) {
		t.Errorf("show stale.example: %+v %+v, %v", d, d.Delegation, err)
	}
	if got, checked, err := r.ParentDS(ctxBack, "Stale.Example."); err != nil || !checked || len(got) != 1 || FormatDS(got[0]) != theirs ||
		got[0].Hdr.Name != "stale.example." {
		t.Errorf("ParentDS(stale.example) = %v, %v, %v", got, checked, err)
	}
	for _, n := range []string{"failed.example", "old.example"} {
		if got, checked, err := r.ParentDS(ctxBack, n); err != nil || checked || got != nil {
			t.Errorf("ParentDS(%s) = %v, %v, %v; want not checked", n, got, checked, err)
		}
	}
	if _, checked, err := r.ParentDS(ctxBack, "unsigned.example"); err != nil || !checked {
		t.Errorf("ParentDS(unsigned.example): checked %v, %v", checked, err)
	}
	d, _ = r.GetDomain(ctxBack, "failed.example")
	if d.Delegation.DSProblem != "SERVFAIL" || d.Delegation.DSState != DSError {
		t.Errorf("show failed.example: %+v", d.Delegation)
	}

	ps, err := r.Packages(ctxBack, waledac.Name)
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0] // the unknown registrar's: every domain
	wantInstr := []DSInstruction{
		{Domain: "signing-stale.example", Action: DSActionReplace, Remove: []string{theirs2},
			Add: []string{FormatDS(dsOf(ours, "signing-stale.example", dns.SHA256))}},
		{Domain: "stale.example", Action: DSActionRemove, Remove: []string{theirs}},
	}
	if fmt.Sprint(p.DNSSEC) != fmt.Sprint(wantInstr) {
		t.Errorf("instructions:\n%+v\nwant\n%+v", p.DNSSEC, wantInstr)
	}
	var text, csvOut bytes.Buffer
	if err := p.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	wantText := fmt.Sprintf(`
DNSSEC: the parent zone still publishes DS records for 2 domain names that
match no key of the name servers it now points to. Resolvers that validate
DNSSEC answer SERVFAIL for these names until the DS records change:

  signing-stale.example
    Replace the DS records with ours. Remove:
      signing-stale.example. IN DS %s
    Publish:
      signing-stale.example. IN DS %s

  stale.example
    Remove all DS records (do not add any):
      stale.example. IN DS %s
`, theirs2, wantInstr[0].Add[0], theirs)
	if !strings.HasSuffix(text.String(), wantText) {
		t.Errorf("cover letter:\n%s\nwant it to end in:\n%s", text.String(), wantText)
	}
	if err := p.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"stale.example,example,,,listed,waledac-2010,\"U.S. District Court, E.D. Virginia\",1:10-cv-00156,tro,Dkt. 12,2010-02-22,remove," + theirs + ",\n",
		"signing-stale.example,example,,,listed,waledac-2010,\"U.S. District Court, E.D. Virginia\",1:10-cv-00156,tro,Dkt. 12,2010-02-22,replace," + theirs2 + "," + wantInstr[0].Add[0] + "\n",
		"unsigned.example,example,,,listed,waledac-2010,\"U.S. District Court, E.D. Virginia\",1:10-cv-00156,tro,Dkt. 12,2010-02-22,,,\n",
	} {
		if !strings.Contains(csvOut.String(), line) {
			t.Errorf("CSV lacks %q:\n%s", line, csvOut.String())
		}
	}

	// The stale DS is removed at the parent: the next check says unsigned,
	// and the package says nothing more.
	if err := r.RecordDelegation(ctxBack, []DelegationCheck{check("stale.example", DSUnsigned, nil, "")}, alice); err != nil {
		t.Fatal(err)
	}
	ps, _ = r.Packages(ctxBack, waledac.Name)
	if len(ps[0].DNSSEC) != 1 || ps[0].DNSSEC[0].Domain != "signing-stale.example" {
		t.Errorf("after the fix: %+v", ps[0].DNSSEC)
	}
}
