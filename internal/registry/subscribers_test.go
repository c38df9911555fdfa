package registry

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
)

var ispA = NewSubscriber{
	Name: "isp-a", Org: " ISP A Abuse Desk ", Contacts: []string{"abuse@ISP-A.Example", "noc@isp-a.example", "abuse@isp-a.example"},
	ASNs: []string{"AS64513", "64512"}, CIDRs: []string{"2001:db8::/32", "192.0.2.0/24"},
}

// line writes vs as fmt.Println does, without the newline.
func line(vs ...any) string { return strings.TrimSuffix(fmt.Sprintln(vs...), "\n") }

func str(s string) *string       { return &s }
func strs(s ...string) *[]string { return &s }
func auditOf(t *testing.T, r *Registry, name string) []string {
	t.Helper()
	es, err := r.Audit(ctxBack, AuditFilter{Object: "subscriber:" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Detail)
	}
	return out
}

func TestSubscribersLifecycle(t *testing.T) {
	r, _, clk := newTestRegistry(t)
	s, err := r.AddSubscriber(ctxBack, ispA, alice)
	if err != nil {
		t.Fatal(err)
	}
	if got := line(s.Org, s.Contacts, s.Scope.String(), s.Formats, s.SendAt, s.TLP, len(s.Keys)); got !=
		"ISP A Abuse Desk [abuse@isp-a.example noc@isp-a.example] AS64512 AS64513 192.0.2.0/24 2001:db8::/32 [csv] 06:00 AMBER 0" {
		t.Errorf("added %s", got)
	}
	if _, err := r.AddSubscriber(ctxBack, ispA, alice); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "isp-a") {
		t.Errorf("second add: %v", err)
	}
	// Overlapping scopes are allowed: a national CERT covers the ISP's country.
	cert := NewSubscriber{Name: "cert-de", Org: "CERT DE", Contacts: []string{"reports@cert.example"}, Countries: []string{"de"},
		ASNs: []string{"AS64512"}, Formats: []string{"STIX", "csv", "json"}, SendAt: "5:30", TLP: "tlp:green"}
	c, err := r.AddSubscriber(ctxBack, cert, alice)
	if err != nil || line(c.Formats, c.SendAt, c.TLP) != "[csv json stix] 05:30 GREEN" {
		t.Fatalf("cert-de: %+v, %v", c, err)
	}

	clk.Advance(time.Hour)
	u, err := r.UpdateSubscriber(ctxBack, "isp-a", SubscriberUpdate{
		AddASNs: []string{"AS64514", "as64512"}, RemoveCIDRs: []string{"192.0.2.0/24"}, AddCountries: []string{"nl"},
		RemoveContacts: []string{"noc@isp-a.example"}, Formats: strs("json", "xarf"), TLP: str("RED"), SendAt: str("23:59"),
	}, alice)
	if err != nil {
		t.Fatal(err)
	}
	if got := line(u.Contacts, u.Scope.String(), u.Formats, u.SendAt, u.TLP); got != "[abuse@isp-a.example] AS64512 AS64513 AS64514 2001:db8::/32 NL [json xarf] 23:59 RED" {
		t.Errorf("updated %s", got)
	}
	if !u.Created.Equal(t0) || !u.Updated.Equal(t0.Add(time.Hour)) {
		t.Errorf("created %s updated %s", u.Created, u.Updated)
	}
	// An update to the same values records nothing.
	n0, _ := r.LastSeq(ctxBack)
	if _, err := r.UpdateSubscriber(ctxBack, "isp-a", SubscriberUpdate{TLP: str("red"), ASNs: strs("64512", "AS64513", "AS64514")}, alice); err != nil {
		t.Fatal(err)
	}
	if n1, _ := r.LastSeq(ctxBack); n1 != n0 {
		t.Errorf("a no-op update wrote %d audit entries", n1-n0)
	}
	got, err := r.GetSubscriber(ctxBack, "isp-a")
	if err != nil || got.Scope.String() != u.Scope.String() || !got.Updated.Equal(u.Updated) {
		t.Errorf("GetSubscriber = %+v, %v", got, err)
	}

	if _, _, err := r.AddAPIKey(ctxBack, "isp-a", alice); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveSubscriber(ctxBack, "isp-a", alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetSubscriber(ctxBack, "isp-a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed subscriber: %v", err)
	}
	for _, err := range []error{
		r.RemoveSubscriber(ctxBack, "isp-a", alice),
		func() error {
			_, err := r.UpdateSubscriber(ctxBack, "isp-a", SubscriberUpdate{TLP: str("RED")}, alice)
			return err
		}(),
		func() error { _, _, err := r.AddAPIKey(ctxBack, "isp-a", alice); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("change of a removed subscriber: %v", err)
		}
	}
	ls, err := r.ListSubscribers(ctxBack)
	if err != nil || len(ls) != 1 || ls[0].Name != "cert-de" {
		t.Errorf("ListSubscribers = %+v, %v", ls, err)
	}
	// The name may come back; the old keys do not.
	again, err := r.AddSubscriber(ctxBack, ispA, alice)
	if err != nil || len(again.Keys) != 0 {
		t.Fatalf("re-add: %+v, %v", again, err)
	}
	if got, _ := r.GetSubscriber(ctxBack, "isp-a"); len(got.Keys) != 0 {
		t.Errorf("re-added subscriber has the old keys %+v", got.Keys)
	}
	hist := auditOf(t, r, "isp-a")
	want := []string{"subscriber.add ", "subscriber.update ", "subscriber.key.add ", "subscriber.remove ", "subscriber.add "}
	if len(hist) != len(want) {
		t.Fatalf("audit of isp-a:\n%s", strings.Join(hist, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(hist[i], w) {
			t.Errorf("audit entry %d = %s, want %s…", i, hist[i], w)
		}
	}
	if !strings.Contains(hist[1], `"asns":{"added":["AS64514"]}`) || !strings.Contains(hist[1], `"tlp":{"from":"AMBER","to":"RED"}`) ||
		!strings.Contains(hist[1], `"cidrs":{"removed":["192.0.2.0/24"]}`) {
		t.Errorf("update detail %s", hist[1])
	}
	if !strings.Contains(hist[3], `"keys_revoked":["`) {
		t.Errorf("remove detail %s", hist[3])
	}
	if n, err := r.VerifyAudit(ctxBack); err != nil || n == 0 {
		t.Errorf("VerifyAudit = %d, %v", n, err)
	}
}

func TestSubscriberValidation(t *testing.T) {
	r, db, _ := newTestRegistry(t)
	if _, err := r.AddSubscriber(ctxBack, ispA, alice); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, db)
	ok := func(f func(*NewSubscriber)) NewSubscriber {
		n := NewSubscriber{Name: "isp-b", Org: "ISP B", Contacts: []string{"abuse@isp-b.example"}, ASNs: []string{"AS64600"}}
		f(&n)
		return n
	}
	for _, tc := range []struct {
		in    NewSubscriber
		ch    Change
		frags []string
	}{
		{ok(func(n *NewSubscriber) {
			n.ASNs, n.CIDRs, n.Countries = []string{"AS0", "ASX"}, []string{"192.0.2.1/24", "300.1.2.3/8"}, []string{"ZZ"}
			n.Contacts = []string{"Abuse <abuse@isp-b.example>", "not-an-address", "abuse@localhost"}
			n.Formats, n.SendAt, n.TLP = []string{"csv", "pdf"}, "25:00", "PURPLE"
		}), alice, []string{`ASN "AS0"`, `ASN "ASX"`, `CIDR "192.0.2.1/24" has host bits set; did you mean 192.0.2.0/24`, `CIDR "300.1.2.3/8"`,
			`country "ZZ"`, `contact "Abuse <abuse@isp-b.example>"`, `contact "not-an-address"`, `contact "abuse@localhost"`,
			`format "pdf" is not one of csv, json, xarf, stix, event4_sinkhole, event4_sinkhole_http, event6_sinkhole or event6_sinkhole_http`, `send time "25:00"`, `TLP "PURPLE" is not one of CLEAR, GREEN, AMBER, AMBER+STRICT or RED`}},
		{ok(func(n *NewSubscriber) { n.ASNs = nil }), alice, []string{"scope is empty"}},
		{ok(func(n *NewSubscriber) { n.Contacts = nil }), alice, []string{"no contact"}},
		{ok(func(n *NewSubscriber) { n.Org = " " }), alice, []string{"organisation name is empty"}},
		{ok(func(n *NewSubscriber) { n.Org = "a\x00b" }), alice, []string{"control character"}},
		{ok(func(n *NewSubscriber) { n.Name = "ISP B" }), alice, []string{`subscriber name "ISP B"`}},
		{ok(func(n *NewSubscriber) {}), Change{}, []string{"actor is empty"}},
	} {
		_, err := r.AddSubscriber(ctxBack, tc.in, tc.ch)
		for _, f := range tc.frags {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), f) {
				t.Errorf("AddSubscriber(%+v) = %v; want ErrInvalid naming %s", tc.in, err, f)
			}
		}
	}
	for _, tc := range []struct {
		u    SubscriberUpdate
		frag string
	}{
		{SubscriberUpdate{}, "changes nothing"},
		{SubscriberUpdate{ASNs: strs("AS1"), AddASNs: []string{"AS2"}}, "ASN: give a new list or items to add and remove, not both"},
		{SubscriberUpdate{RemoveASNs: []string{"AS64999"}}, "subscriber isp-a: cannot remove ASN AS64999: not among its ASNs"},
		{SubscriberUpdate{RemoveCountries: []string{"XX"}}, `country "XX"`},
		{SubscriberUpdate{Contacts: strs()}, "no contact"},
		{SubscriberUpdate{RemoveContacts: []string{"abuse@isp-a.example", "noc@isp-a.example"}}, "no contact"},
		{SubscriberUpdate{ASNs: strs(), CIDRs: strs()}, "scope is empty"},
		{SubscriberUpdate{Formats: strs()}, "no format"},
		{SubscriberUpdate{SendAt: str("6pm")}, `send time "6pm"`},
		{SubscriberUpdate{TLP: str("AMBER STRICT")}, `TLP "AMBER STRICT"`},
		{SubscriberUpdate{AddCIDRs: []string{"2001:db8::1/32"}}, "did you mean 2001:db8::/32"},
	} {
		_, err := r.UpdateSubscriber(ctxBack, "isp-a", tc.u, alice)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.frag) {
			t.Errorf("UpdateSubscriber(%+v) = %v; want ErrInvalid naming %s", tc.u, err, tc.frag)
		}
	}
	if _, err := r.UpdateSubscriber(ctxBack, "nosuch", SubscriberUpdate{TLP: str("RED")}, alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of nosuch: %v", err)
	}
	unchanged(t, db, before, "refused subscriber changes")
	var n int
	db.QueryRow(`SELECT count(*) FROM registry_subscribers`).Scan(&n)
	if n != 1 {
		t.Errorf("%d subscriber rows after refused changes, want 1", n)
	}
}

func TestAPIKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.duckdb")
	db, err := dbfile.Open(ctxBack, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := New(ctxBack, Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []NewSubscriber{ispA, {Name: "isp-b", Org: "B", Contacts: []string{"abuse@b.example"}, Countries: []string{"FR"}}} {
		if _, err := r.AddSubscriber(ctxBack, n, alice); err != nil {
			t.Fatal(err)
		}
	}
	key, k, err := r.AddAPIKey(ctxBack, "isp-a", alice)
	if err != nil {
		t.Fatal(err)
	}
	if !wellFormedKey(key) || len(key) != 68 || k.ID != key[4:12] || !k.Active() {
		t.Fatalf("key %q, %+v", key, k)
	}
	keyB, kb, _ := r.AddAPIKey(ctxBack, "isp-b", alice)
	if s, err := r.SubscriberByKey(ctxBack, key); err != nil || s.Name != "isp-a" || len(s.Keys) != 1 {
		t.Errorf("SubscriberByKey = %+v, %v", s, err)
	}
	if s, err := r.SubscriberByKey(ctxBack, keyB); err != nil || s.Name != "isp-b" {
		t.Errorf("SubscriberByKey(b) = %+v, %v", s, err)
	}
	flip := func(s string, i int) string {
		c := byte('a')
		if s[i] == 'a' {
			c = 'b'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for name, bad := range map[string]string{
		"last char": flip(key, len(key)-1), "id": flip(key, 5), "b's id, a's secret": keyB[:12] + key[12:],
		"empty": "", "prefix only": "tdk_", "upper case": strings.ToUpper(key), "longer": key + "a", "hex": "tdk_" + strings.Repeat("0", 64),
	} {
		if _, err := r.SubscriberByKey(ctxBack, bad); err != ErrUnknownKey {
			t.Errorf("%s: %v, want exactly ErrUnknownKey", name, err)
		}
	}

	// A subscriber cannot revoke, or learn of, another's key.
	err = r.RevokeAPIKey(ctxBack, "isp-a", kb.ID, alice)
	if !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "isp-b") {
		t.Errorf("revoking b's key as a: %v", err)
	}
	if err := r.RevokeAPIKey(ctxBack, "isp-a", k.ID, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubscriberByKey(ctxBack, key); err != ErrUnknownKey {
		t.Errorf("revoked key: %v", err)
	}
	if err := r.RevokeAPIKey(ctxBack, "isp-a", k.ID, alice); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "revoked already") {
		t.Errorf("second revoke: %v", err)
	}
	s, _ := r.GetSubscriber(ctxBack, "isp-a")
	if len(s.Keys) != 1 || s.Keys[0].Active() {
		t.Errorf("keys after revoke: %+v", s.Keys)
	}
	// Removing a subscriber revokes its keys.
	if err := r.RemoveSubscriber(ctxBack, "isp-b", alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubscriberByKey(ctxBack, keyB); err != ErrUnknownKey {
		t.Errorf("key of a removed subscriber: %v", err)
	}

	if err := r.RecordAccess(ctxBack, Change{Actor: "subscriber:isp-a key " + k.ID}, "feed.read", "subscriber:isp-a", map[string]int{"rows": 12}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"", "read", "subscriber.add", "case.add", "Feed.Read", "feed..read"} {
		if err := r.RecordAccess(ctxBack, alice, a, "subscriber:isp-a", nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("RecordAccess(%q) = %v", a, err)
		}
	}
	if err := r.RecordAccess(ctxBack, alice, "feed.read", " ", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("RecordAccess without object = %v", err)
	}
	es, _ := r.Audit(ctxBack, AuditFilter{Object: "subscriber:isp-a"})
	if last := es[len(es)-1]; last.Action != "feed.read" || last.Detail != `{"rows":12}` || !strings.HasPrefix(last.Actor, "subscriber:isp-a") {
		t.Errorf("access entry %+v", last)
	}
	if n, err := r.VerifyAudit(ctxBack); err != nil || n != int64(len(es)+3) {
		t.Errorf("VerifyAudit = %d, %v (%d entries of isp-a)", n, err, len(es))
	}

	// Neither key, nor its secret part, is anywhere in the database: not in
	// a table, not in the audit log, not in the file.
	secrets := []string{key, key[12:], keyB, keyB[12:]}
	dump := dumpTables(t, db)
	for _, s := range secrets {
		if strings.Contains(dump, s) {
			t.Errorf("a key is stored in clear: %q", s)
		}
	}
	if !strings.Contains(dump, keyHash(key)) {
		t.Error("the key's hash is not stored")
	}
	if _, err := db.Exec(`CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, f := range []string{path, path + ".wal"} {
		data, _ := os.ReadFile(f)
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds a key in clear", f)
			}
		}
	}
}

// dumpTables returns every row of every table of db as text.
func dumpTables(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if !slices.Contains(tables, "registry_subscriber_keys") || !slices.Contains(tables, "registry_audit") {
		t.Fatalf("tables %v", tables)
	}
	var b strings.Builder
	for _, tb := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		rows.Close()
	}
	return b.String()
}

// BenchmarkSubscriberByKey: the cost of authenticating one feed request.
func BenchmarkSubscriberByKey(b *testing.B) {
	r, _, _ := newTestRegistry(b)
	if _, err := r.AddSubscriber(ctxBack, ispA, alice); err != nil {
		b.Fatal(err)
	}
	key, _, err := r.AddAPIKey(ctxBack, "isp-a", alice)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.SubscriberByKey(ctxBack, key); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSubscriberFields: the parsers of subscriber input (API bodies, CLI
// flags) never panic, and what they accept is stable: parsing it again gives
// it back. A contact never holds a space, as its storage needs.
func FuzzSubscriberFields(f *testing.F) {
	for _, s := range []string{"abuse@ISP-A.Example", "Abuse <abuse@isp-b.example>", "x@", "abuse@localhost", `"a b"@c.example`,
		"6:00", "23:59", "25:00", "6pm", "tlp:amber+strict", "WHITE", "PURPLE", "STIX", "pdf", "tdk_" + strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := ParseContact(s); err == nil {
			if again, err := ParseContact(c); err != nil || again != c || strings.ContainsAny(c, " \t\r\n") {
				t.Errorf("contact %q → %q → %q, %v", s, c, again, err)
			}
		}
		for _, p := range []func(string) (string, error){ParseSendAt, ParseTLP, ParseFormat} {
			if v, err := p(s); err == nil {
				if again, err := p(v); err != nil || again != v {
					t.Errorf("%q → %q → %q, %v", s, v, again, err)
				}
			}
		}
		if wellFormedKey(s) && (len(s) != 68 || !strings.HasPrefix(s, "tdk_")) {
			t.Errorf("malformed key %q taken as well formed", s)
		}
	})
}
