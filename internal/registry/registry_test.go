package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
)

func TestCasesAndOrders(t *testing.T) {
	r, db, clk := newTestRegistry(t)
	c, err := r.AddCase(ctxBack, NewCase{Name: " waledac-2010 ", Title: waledac.Title, Court: waledac.Court, Docket: waledac.Docket}, alice)
	if err != nil || c.Name != "waledac-2010" || !c.Added.Equal(t0) {
		t.Fatalf("AddCase = %+v, %v", c, err)
	}
	before := takeSnapshot(t, db)
	for _, tc := range []struct {
		c    NewCase
		ch   Change
		want error
		frag string
	}{
		{waledac, alice, ErrExists, "case waledac-2010"},
		{NewCase{Name: "Waledac", Court: "c", Docket: "d"}, alice, ErrInvalid, `case name "Waledac"`},
		{NewCase{Name: "", Court: "c", Docket: "d"}, alice, ErrInvalid, "case name"},
		{NewCase{Name: "a/b", Court: "c", Docket: "d"}, alice, ErrInvalid, "case name"},
		{NewCase{Name: strings.Repeat("a", 65), Court: "c", Docket: "d"}, alice, ErrInvalid, "case name"},
		{NewCase{Name: "x", Docket: "d"}, alice, ErrInvalid, "court is empty"},
		{NewCase{Name: "x", Court: "c", Docket: " "}, alice, ErrInvalid, "docket number is empty"},
		{NewCase{Name: "x", Court: "c\x00", Docket: "d"}, alice, ErrInvalid, "control character"},
		{NewCase{Name: "x", Court: "c", Docket: "d"}, Change{}, ErrInvalid, "actor is empty"},
		{NewCase{Name: "x", Court: "c", Docket: "d", Family: "bad family!"}, alice, ErrInvalid, `family "bad family!"`},
	} {
		_, err := r.AddCase(ctxBack, tc.c, tc.ch)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.frag) {
			t.Errorf("AddCase(%+v) = %v; want %v with %q", tc.c, err, tc.want, tc.frag)
		}
	}
	day := func(s string) time.Time { d, _ := ParseDate(s); return d }
	for _, tc := range []struct {
		caseName string
		o        NewOrder
		want     error
		frag     string
	}{
		{"nosuch", NewOrder{Type: OrderTRO, Issued: dateTRO}, ErrNotFound, `case "nosuch"`},
		{"waledac-2010", NewOrder{Type: "warrant", Issued: dateTRO}, ErrInvalid, `order type "warrant"`},
		{"waledac-2010", NewOrder{Type: OrderTRO}, ErrInvalid, "issued date is missing"},
		{"waledac-2010", NewOrder{Type: OrderTRO, Issued: dateTRO, ObjectionDeadline: day("2010-02-21")}, ErrInvalid, "objection deadline 2010-02-21 is before the issue date 2010-02-22"},
		{"waledac-2010", NewOrder{Type: OrderTRO, Issued: dateTRO, Expires: day("2010-01-01")}, ErrInvalid, "expiry 2010-01-01 is before"},
		{"waledac-2010", NewOrder{Type: OrderTRO, Issued: day("2011-01-01")}, ErrInvalid, "in the future"},
	} {
		_, err := r.AddOrder(ctxBack, tc.caseName, tc.o, alice)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.frag) {
			t.Errorf("AddOrder(%s, %+v) = %v; want %v with %q", tc.caseName, tc.o, err, tc.want, tc.frag)
		}
	}
	unchanged(t, db, before, "refused AddCase and AddOrder")

	clk.t = time.Date(2010, 10, 1, 0, 0, 0, 0, time.UTC)
	o1, err := r.AddOrder(ctxBack, "waledac-2010", NewOrder{Type: "default-judgment", Reference: "Dkt. 40", Issued: day("2010-09-03T18:00:00-07:00")}, alice)
	if err != nil || o1.ID != 1 || o1.Type != OrderDefaultJudgement || !o1.Issued.Equal(day("2010-09-04")) {
		t.Fatalf("AddOrder = %+v, %v", o1, err)
	}
	o2, err := r.AddOrder(ctxBack, "waledac-2010", NewOrder{Type: "TRO", Reference: "Dkt. 12", Issued: dateTRO, ObjectionDeadline: day("2010-03-08")}, alice)
	if err != nil || o2.ID != 2 {
		t.Fatalf("AddOrder = %+v, %v", o2, err)
	}
	got, err := r.GetCase(ctxBack, "waledac-2010")
	if err != nil || len(got.Orders) != 2 || got.Orders[0].ID != 2 || got.Orders[1].ID != 1 || got.Domains != nil {
		t.Errorf("GetCase = %+v, %v; want orders oldest first", got, err)
	}
	if _, err := r.GetCase(ctxBack, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetCase(nosuch) = %v", err)
	}
	if _, err := r.AddCase(ctxBack, NewCase{Name: "alpha", Court: "c", Docket: "d"}, alice); err != nil {
		t.Fatal(err)
	}
	cs, err := r.ListCases(ctxBack)
	if err != nil || len(cs) != 2 || cs[0].Name != "alpha" || len(cs[1].Orders) != 2 || cs[0].Orders == nil {
		t.Errorf("ListCases = %+v, %v", cs, err)
	}
}

// TestAuditComplete runs a scripted sequence and checks that every change
// is in the audit log exactly once, the chain verifies, and a tampered row
// is found.
func TestCaseFamily(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	if _, err := r.AddCase(ctxBack, NewCase{Name: "w", Court: "c", Docket: "d", Family: " Waledac "}, alice); err != nil {
		t.Fatal(err)
	}
	c, err := r.GetCase(ctxBack, "w")
	if err != nil || c.Family != "waledac" {
		t.Fatalf("GetCase = %+v, %v; want family waledac", c, err)
	}
}

func TestAuditComplete(t *testing.T) {
	r, db, clk := newTestRegistry(t)
	mustCase(t, r) // case.add + order.add
	clk.Advance(time.Minute)
	if _, err := r.AddOrder(ctxBack, waledac.Name, NewOrder{Type: OrderPreliminaryInjunction, Reference: "Dkt. 30", Issued: dateTRO.AddDate(0, 0, 1)}, alice); err != nil {
		t.Fatal(err)
	}
	names := []string{"a.example.com", "b.example.net", "bücher.example", "c.example.org", "d.test"}
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "list.txt", []byte(strings.Join(names, "\n")), Change{Actor: "bob", Reason: "exhibit A"}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		names []string
		to    State
	}{
		{[]string{"a.example.com", "b.example.net", "bücher.example"}, StateRestrained},
		{[]string{"a.example.com", "b.example.net"}, StateSinkholed},
		{[]string{"c.example.org"}, StateReleased},
		{[]string{"a.example.com"}, StateTransferred},
	}
	for _, s := range steps {
		clk.Advance(time.Minute)
		if _, err := r.SetState(ctxBack, s.names, s.to, alice); err != nil {
			t.Fatal(err)
		}
	}
	// Rejected operations leave no trace.
	r.SetState(ctxBack, []string{"c.example.org"}, StateListed, alice)
	r.ImportDomains(ctxBack, waledac.Name, "x", []byte("a.example.com"), alice)
	r.AddCase(ctxBack, waledac, alice)

	es, err := r.Audit(ctxBack, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i, e := range es {
		if e.Seq != int64(i+1) || e.Actor == "" || e.At.IsZero() || !json.Valid([]byte(e.Detail)) || len(e.Hash) != 64 {
			t.Errorf("entry %+v", e)
		}
		count[e.Action+" "+e.Object]++
	}
	want := map[string]int{
		"case.add case:waledac-2010": 1, "order.add order:1": 1, "order.add order:2": 1,
		"domain.import domain:a.example.com": 1, "domain.import domain:b.example.net": 1, "domain.import domain:xn--bcher-kva.example": 1,
		"domain.import domain:c.example.org": 1, "domain.import domain:d.test": 1,
		"domain.state domain:a.example.com": 3, "domain.state domain:b.example.net": 2, "domain.state domain:xn--bcher-kva.example": 1,
		"domain.state domain:c.example.org": 1,
	}
	if len(count) != len(want) {
		t.Errorf("audit objects: %v; want %v", count, want)
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("audit has %q %d times; want %d", k, count[k], n)
		}
	}
	// Each state change is recorded once in the history and once in the log.
	var transitions int
	db.QueryRow(`SELECT count(*) FROM registry_transitions WHERE from_state <> ''`).Scan(&transitions)
	if transitions != 7 {
		t.Errorf("transitions = %d; want 7", transitions)
	}
	d, _ := r.GetDomain(ctxBack, "a.example.com")
	if len(d.History) != 4 || d.History[3].To != StateTransferred || d.History[0].Actor != "bob" || d.History[0].Reason != "exhibit A" {
		t.Errorf("history = %+v", d.History)
	}
	// Filters.
	if got, _ := r.Audit(ctxBack, AuditFilter{Object: "domain:a.example.com"}); len(got) != 4 {
		t.Errorf("audit of a.example.com: %d entries", len(got))
	}
	if got, _ := r.Audit(ctxBack, AuditFilter{AfterSeq: 3, Limit: 2}); len(got) != 2 || got[0].Seq != 4 {
		t.Errorf("audit after 3, limit 2: %+v", got)
	}

	n, err := r.VerifyAudit(ctxBack)
	if err != nil || n != int64(len(es)) {
		t.Fatalf("VerifyAudit = %d, %v; want %d", n, err, len(es))
	}
	// Tamper with entry 9 behind the registry's back.
	if _, err := db.Exec(`UPDATE registry_audit SET reason = 'nothing to see' WHERE seq = 9`); err != nil {
		t.Fatal(err)
	}
	n, err = r.VerifyAudit(ctxBack)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Seq != 9 || n != 8 || !errors.Is(err, ErrAuditBroken) || !strings.Contains(err.Error(), "audit entry 9") {
		t.Errorf("after tampering: VerifyAudit = %d, %v", n, err)
	}
	// A removed entry is found too.
	db.Exec(`UPDATE registry_audit SET reason = 'test' WHERE seq = 9`)
	if _, err := r.VerifyAudit(ctxBack); err != nil {
		t.Fatalf("restored: %v", err)
	}
	db.Exec(`DELETE FROM registry_audit WHERE seq = 12`)
	if _, err := r.VerifyAudit(ctxBack); !errors.As(err, &ce) || ce.Seq != 12 {
		t.Errorf("after deleting entry 12: %v", err)
	}
}

func TestEntryHashFormat(t *testing.T) {
	// Pinned so that other tools (the verify command) can recompute it.
	e := AuditEntry{Seq: 1, At: time.Date(2010, 2, 22, 15, 4, 5, 0, time.UTC), Actor: "alice", Action: "case.add", Object: "case:w", Detail: `{}`, Reason: ""}
	// The value was computed independently (Python hashlib) from the format
	// documented on EntryHash.
	if got, want := EntryHash("", e), "687e03698d54c6b83f285fbd7a8234518dd9695e1af98c3b39f888154edd9f0d"; got != want {
		t.Errorf("EntryHash = %s; want %s", got, want)
	}
	base := EntryHash("p", e)
	for _, m := range []func(*AuditEntry){
		func(e *AuditEntry) { e.Seq = 2 },
		func(e *AuditEntry) { e.At = e.At.Add(time.Microsecond) },
		func(e *AuditEntry) { e.Actor = "bob" },
		func(e *AuditEntry) { e.Action = "case.ad" },
		func(e *AuditEntry) { e.Object = "case:v" },
		func(e *AuditEntry) { e.Detail = `{ }` },
		func(e *AuditEntry) { e.Reason = "r" },
		func(e *AuditEntry) { e.Actor, e.Action = "alicecase.add", "" },
	} {
		c := e
		m(&c)
		if EntryHash("p", c) == base {
			t.Errorf("hash ignores a change: %+v", c)
		}
	}
	if EntryHash("q", e) == base {
		t.Error("hash ignores the previous hash")
	}
}

func TestDeadlines(t *testing.T) {
	r, _, clk := newTestRegistry(t)
	mustCase(t, r) // TRO 2010-02-22, objection 2010-03-08, expires 2010-03-22
	if _, err := r.AddCase(ctxBack, NewCase{Name: "rustock", Court: "W.D. Wash.", Docket: "2:11-cv-00222"}, alice); err != nil {
		t.Fatal(err)
	}
	clk.t = time.Date(2011, 3, 20, 0, 0, 0, 0, time.UTC)
	if _, err := r.AddOrder(ctxBack, "rustock", NewOrder{Type: OrderTRO, Reference: "Dkt. 5", Issued: time.Date(2010, 3, 1, 0, 0, 0, 0, time.UTC),
		ObjectionDeadline: time.Date(2010, 3, 8, 0, 0, 0, 0, time.UTC)}, alice); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2010, 3, 8, 17, 0, 0, 0, time.UTC) // on the day of both objection deadlines
	ds, err := r.Deadlines(ctxBack, now, 14*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Case+"/"+d.Kind+"/"+d.Due.Format(time.DateOnly)+"/"+d.Reference)
	}
	want := "rustock/objection/2010-03-08/Dkt. 5 waledac-2010/objection/2010-03-08/Dkt. 12 waledac-2010/expiry/2010-03-22/Dkt. 12"
	if strings.Join(got, " ") != want {
		t.Errorf("Deadlines = %v; want %s", got, want)
	}
	if ds, _ := r.Deadlines(ctxBack, now.AddDate(0, 0, 1), 7*24*time.Hour); len(ds) != 0 {
		t.Errorf("a week from 2010-03-09: %+v; want none (passed and beyond)", ds)
	}
	if ds, _ := r.Deadlines(ctxBack, now.AddDate(0, 0, 1), 14*24*time.Hour); len(ds) != 1 || ds[0].Kind != DeadlineExpiry {
		t.Errorf("two weeks from 2010-03-09: %+v", ds)
	}
	if _, err := r.Deadlines(ctxBack, now, -time.Hour); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative window: %v", err)
	}
}

func TestPackages(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	mustCase(t, r)
	// d-fictional.ru: the package of a registry other than Verisign needs a
	// real TLD (.ru → its Coordination Center); the label says it is made up.
	list := "b.example.com,\"GoDaddy.com, LLC\"\na.example.com,\"GoDaddy.com, LLC\"\nc.example.net\nd-fictional.ru,RU-CENTER\ne.test,RU-CENTER\ngone.example.com,\"GoDaddy.com, LLC\"\n"
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "p.csv", []byte(list), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetState(ctxBack, []string{"gone.example.com"}, StateReleased, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetState(ctxBack, []string{"a.example.com", "d-fictional.ru"}, StateRestrained, alice); err != nil {
		t.Fatal(err)
	}
	ps, err := r.Packages(ctxBack, waledac.Name)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		var names []string
		for _, d := range p.Domains {
			names = append(names, d.Name)
		}
		got = append(got, p.FileName()+"="+strings.Join(names, ","))
	}
	want := []string{
		"waledac-2010_registrar_godaddy-com-llc.csv=a.example.com,b.example.com",
		"waledac-2010_registrar_ru-center.csv=d-fictional.ru,e.test",
		"waledac-2010_registrar_unknown-registrar.csv=c.example.net",
		"waledac-2010_registry_coordination-center-for-tld-ru.csv=d-fictional.ru",
		"waledac-2010_registry_registry-of-test.csv=e.test",
		"waledac-2010_registry_verisign.csv=a.example.com,b.example.com,c.example.net",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("packages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := r.AddOrder(ctxBack, waledac.Name, NewOrder{Type: OrderPreliminaryInjunction, Reference: "Dkt. 30", Issued: dateTRO.AddDate(0, 0, 1)}, alice); err != nil {
		t.Fatal(err)
	}
	ps, _ = r.Packages(ctxBack, waledac.Name)
	var csvOut, text bytes.Buffer
	if err := ps[0].WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	wantCSV := `domain,tld,registrar,registry,state,case,court,docket,order_type,order_reference,order_issued,ds_action,ds_remove,ds_add
a.example.com,com,"GoDaddy.com, LLC",Verisign,restrained,waledac-2010,"U.S. District Court, E.D. Virginia",1:10-cv-00156,preliminary-injunction,Dkt. 30,2010-02-23,,,
b.example.com,com,"GoDaddy.com, LLC",Verisign,listed,waledac-2010,"U.S. District Court, E.D. Virginia",1:10-cv-00156,preliminary-injunction,Dkt. 30,2010-02-23,,,
`
	if csvOut.String() != wantCSV {
		t.Errorf("WriteCSV:\n%s\nwant:\n%s", csvOut.String(), wantCSV)
	}
	if err := ps[0].WriteText(&text); err != nil {
		t.Fatal(err)
	}
	wantText := `To: GoDaddy.com, LLC (registrar)
Re: Microsoft v. John Does 1-27
    U.S. District Court, E.D. Virginia, 1:10-cv-00156 (case waledac-2010)

The court orders listed below concern the 2 domain names that follow, for which you
are the registrar. Please act on them as the orders direct; copies of the
orders are enclosed.

Court orders:
  - Temporary restraining order, Dkt. 12, issued 2010-02-22; objections by 2010-03-08; expires 2010-03-22
  - Preliminary injunction, Dkt. 30, issued 2010-02-23

Domain names (2):
  a.example.com  restrained
  b.example.com  listed
`
	if text.String() != wantText {
		t.Errorf("WriteText:\n%s\nwant:\n%s", text.String(), wantText)
	}
	if _, err := r.Packages(ctxBack, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Packages(nosuch) = %v", err)
	}
	if p := (Package{Kind: "registrar", Recipient: "../../etc/passwd", Case: Case{Name: "x"}}); p.FileName() != "x_registrar_etc-passwd.csv" {
		t.Errorf("FileName = %q", p.FileName())
	}
}

func TestListDomainsFilters(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	mustCase(t, r)
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "", []byte("a.example.com,GoDaddy,waledac\nb.example.net,godaddy,Rustock\nc.test,RU-CENTER,waledac\n"), alice); err != nil {
		t.Fatal(err)
	}
	r.SetState(ctxBack, []string{"b.example.net"}, StateRestrained, alice)
	for _, tc := range []struct {
		f    DomainFilter
		want string
	}{
		{DomainFilter{}, "a.example.com b.example.net c.test"},
		{DomainFilter{Case: waledac.Name, Limit: 2}, "a.example.com b.example.net"},
		{DomainFilter{Case: "other"}, ""},
		{DomainFilter{State: StateRestrained}, "b.example.net"},
		{DomainFilter{State: "LISTED"}, "a.example.com c.test"},
		{DomainFilter{Registrar: "GODADDY"}, "a.example.com b.example.net"},
		{DomainFilter{TLD: ".TEST"}, "c.test"},
		{DomainFilter{Family: "waledac", TLD: "com"}, "a.example.com"},
	} {
		ds, err := r.ListDomains(ctxBack, tc.f)
		var got []string
		for _, d := range ds {
			got = append(got, d.Name)
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("ListDomains(%+v) = %v, %v; want %s", tc.f, got, err, tc.want)
		}
	}
	if _, err := r.ListDomains(ctxBack, DomainFilter{State: "gone"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad state filter: %v", err)
	}
	if _, err := r.GetDomain(ctxBack, "nope.example.com"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope.example.com") {
		t.Errorf("GetDomain(nope.example.com) = %v", err)
	}
	if _, err := r.GetDomain(ctxBack, "bad_.example.com"); !errors.Is(err, ErrInvalid) {
		t.Errorf("GetDomain(bad_.example.com) = %v", err)
	}
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "takedown.db")
	open := func() (*Registry, func()) {
		db, err := dbfile.Open(ctxBack, path)
		if err != nil {
			t.Fatal(err)
		}
		clk := &testClock{t: t0}
		r, err := New(ctxBack, Config{DB: db, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return r, func() { db.Close() }
	}
	r, done := open()
	mustCase(t, r)
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "", []byte("bücher.example\nexample.com\n"), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetState(ctxBack, []string{"example.com"}, StateRestrained, alice); err != nil {
		t.Fatal(err)
	}
	done()

	r, done = open()
	defer done()
	c, err := r.GetCase(ctxBack, waledac.Name)
	if err != nil || len(c.Orders) != 1 || c.Domains[StateListed] != 1 || c.Domains[StateRestrained] != 1 {
		t.Fatalf("after reopen: %+v, %v", c, err)
	}
	if n, err := r.VerifyAudit(ctxBack); err != nil || n != 5 {
		t.Errorf("VerifyAudit after reopen = %d, %v", n, err)
	}
	// The chain goes on where it stopped.
	if _, err := r.SetState(ctxBack, []string{"example.com"}, StateSinkholed, alice); err != nil {
		t.Fatal(err)
	}
	if n, err := r.VerifyAudit(ctxBack); err != nil || n != 6 {
		t.Errorf("VerifyAudit = %d, %v", n, err)
	}
	d, err := r.GetDomain(ctxBack, "example.com")
	if err != nil || d.State != StateSinkholed || len(d.History) != 3 {
		t.Errorf("GetDomain = %+v, %v", d, err)
	}
}
