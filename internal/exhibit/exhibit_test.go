package exhibit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/exhibit"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/store"
)

// world is a real DuckDB file with a registry, a store, the evidence log
// in front of the store, and a case whose events went through it.
type world struct {
	dir    string
	reg    *registry.Registry
	st     *store.Store
	log    *evidence.Log
	signer note.Signer
	vkey   string
	from   time.Time
	to     time.Time
	cfg    exhibit.Config
}

const caseName = "waledac-2010"

func newWorld(t *testing.T, events int) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := dbfile.Open(ctx, filepath.Join(dir, "takedown.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	skey, vkey, err := evidence.GenerateKey("test-log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	log, err := evidence.Open(ctx, evidence.Config{DB: db, Origin: "takedown/test", Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{dir: dir, reg: reg, st: st, log: log, signer: signer, vkey: vkey}

	ch := registry.Change{Actor: "test", Reason: "exhibit test"}
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: caseName, Court: "E.D. Va.", Docket: "1:10-cv-00156", Family: "waledac", Title: "Plaintiff v. Does"}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.AddOrder(ctx, caseName, registry.NewOrder{Type: registry.OrderTRO, Reference: "Dkt. 12", Issued: time.Date(2010, 2, 22, 0, 0, 0, 0, time.UTC)}, ch); err != nil {
		t.Fatal(err)
	}
	res, err := reg.ImportDomains(ctx, caseName, "list.txt", []byte("bad-one.example.com\nbad-two.example.net\n"), ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetState(ctx, res.Domains, registry.StateRestrained, ch); err != nil {
		t.Fatal(err)
	}
	checked := registry.DelegationCheck{Domain: "bad-one.example.com", CheckedAt: time.Date(2010, 2, 23, 0, 0, 0, 0, time.UTC), Verified: true, NS: []string{"ns1.sinkhole.example"}, Addrs: []string{"192.0.2.53"}}
	if err := reg.RecordDelegation(ctx, []registry.DelegationCheck{checked}, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.AddCase(ctx, registry.NewCase{Name: "other", Court: "E.D. Va.", Docket: "2", Family: "rustock"}, ch); err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC()
	w.from = now.Truncate(24*time.Hour).AddDate(0, 0, -2)
	w.to = now.Truncate(24*time.Hour).AddDate(0, 0, 1)
	es := evidence.NewStore(st, log)
	batch := make([]event.Event, 0, 50)
	flush := func(mark int) {
		if err := es.AppendMarked(ctx, batch, "test", []byte(fmt.Sprint(mark))); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	span := now.Sub(w.from) - time.Minute
	for i := range events {
		e := event.Event{
			Time:     w.from.Add(time.Duration(i) * span / time.Duration(events)).Add(time.Duration(i%1000) * time.Microsecond),
			Sensor:   "s1",
			Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP:   netip.AddrFrom4([4]byte{10, byte(i % 7), byte(i % 5), byte(i % 11)}),
			SrcPort: uint16(1024 + i), DstIP: netip.MustParseAddr("192.0.2.1"), DstPort: 53,
			DNSQType: "A", DNSRcode: "NOERROR",
			CountryCode: []string{"US", "DE", "BR"}[i%3], ASN: uint32(64500 + i%4), ASName: fmt.Sprintf("Net %d", i%4),
		}
		switch i % 4 {
		case 0, 1:
			e.Domain, e.Zone, e.Case, e.Family = "bad-one.example.com", "bad-one.example.com", caseName, "waledac"
		case 2:
			e.Domain, e.Family = "x.example", "waledac" // the family, no seized name
		case 3:
			e.Domain, e.Case, e.Family = "spam.example", "other", "rustock"
		}
		if i == 5 {
			e.SrcIP = netip.MustParseAddr("2001:db8::5")
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			flush(i)
		}
		if i == events/2 {
			if len(batch) > 0 {
				flush(i)
			}
			if _, err := log.FollowAudit(ctx, reg); err != nil {
				t.Fatal(err)
			}
			if _, err := log.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(batch) > 0 {
		flush(events)
	}
	if _, err := log.FollowAudit(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	w.cfg = exhibit.Config{
		Case: caseName, From: w.from, To: w.to, Out: filepath.Join(dir, "exhibit"),
		Registry: reg, Events: st, Log: log, Signer: signer, VerifierKey: vkey,
		MapSource: []string{"s1", "test"},
	}
	return w
}

func (w *world) export(t *testing.T, mod func(*exhibit.Config)) (string, *exhibit.Result) {
	t.Helper()
	cfg := w.cfg
	if mod != nil {
		mod(&cfg)
	}
	res, err := exhibit.Export(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Out, res
}

func verify(t *testing.T, dir, key string) *exhibit.Report {
	t.Helper()
	r, err := exhibit.Verify(dir, exhibit.VerifyOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExportVerify(t *testing.T) {
	w := newWorld(t, 600)
	dir, res := w.export(t, nil)
	r := verify(t, dir, w.vkey)
	if !r.OK() {
		t.Fatalf("a fresh exhibit does not verify:\n%s", findings(r))
	}
	// Events of the case (i%4 == 0, 1) and of its family (i%4 == 2).
	if res.Events != 450 || r.Events != 450 {
		t.Errorf("events: exported %d, verified %d; want 450", res.Events, r.Events)
	}
	if r.Sample || r.Leaves == 0 || r.AuditLeaves == 0 || r.Earlier != 1 || r.Case != caseName {
		t.Errorf("report: %+v", r)
	}
	// case, order, 2 imports, 2 state changes and a delegation check.
	if r.AuditLeaves != 7 {
		t.Errorf("audit leaves: %d, want 7", r.AuditLeaves)
	}
	// Every domain as GetDomain gives it: with its history and its last
	// delegation check.
	var cf exhibit.CaseFile
	if b, err := os.ReadFile(filepath.Join(dir, "case.json")); err != nil || json.Unmarshal(b, &cf) != nil {
		t.Fatalf("case.json: %v", err)
	}
	if len(cf.Domains) != 2 {
		t.Fatalf("case.json has %d domains, want 2", len(cf.Domains))
	}
	for _, d := range cf.Domains {
		want, err := w.reg.GetDomain(t.Context(), d.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(d)
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) || len(d.History) != 2 {
			t.Errorf("case.json's domain\n%s\nis not GetDomain's\n%s", got, wantJSON)
		}
	}
	if cf.Domains[0].Delegation == nil || cf.Domains[1].Delegation != nil {
		t.Errorf("delegation checks: %+v, %+v; want bad-one.example.com's only", cf.Domains[0].Delegation, cf.Domains[1].Delegation)
	}
	for _, f := range []string{"README.txt", "summary.html", "case.json", "counts.csv", "counts.json", "events.csv", "key.pub", "MANIFEST.sha256.note"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	html, _ := os.ReadFile(filepath.Join(dir, "summary.html"))
	for _, want := range []string{res.Manifest, "<svg", caseName, "Dkt. 12", "bad-one.example.com"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("summary.html lacks %q", want)
		}
	}
	if strings.Contains(string(html), "<script") {
		t.Error("summary.html has a script")
	}
	if !strings.HasPrefix(r.Summary(), "verified: ") {
		t.Errorf("summary %q", r.Summary())
	}
	// Another key is refused, naming key.pub.
	_, other, _ := evidence.GenerateKey("test-log")
	r = verify(t, dir, other)
	if r.OK() || !hasFinding(r, "key.pub") || !hasFinding(r, "MANIFEST.sha256.note") {
		t.Errorf("another key: %s", findings(r))
	}
}

func TestExportSample(t *testing.T) {
	w := newWorld(t, 400)
	dir, res := w.export(t, func(c *exhibit.Config) { c.Sample = 25 })
	r := verify(t, dir, w.vkey)
	if !r.OK() {
		t.Fatalf("a sampled exhibit does not verify:\n%s", findings(r))
	}
	if res.Events != 300 || res.Written != 25 || r.Events != 25 || !r.Sample {
		t.Errorf("sample: exported %d, wrote %d, verified %d (sample %v)", res.Events, res.Written, r.Events, r.Sample)
	}
	// The same sample again.
	dir2, _ := w.export(t, func(c *exhibit.Config) { c.Sample = 25; c.Out = filepath.Join(w.dir, "again") })
	a, _ := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	b, _ := os.ReadFile(filepath.Join(dir2, "events.jsonl"))
	if string(a) != string(b) {
		t.Error("the sample differs between two exports")
	}
}

func TestExportRefusesNonEmpty(t *testing.T) {
	w := newWorld(t, 50)
	if err := os.MkdirAll(w.cfg.Out, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.cfg.Out, "x"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := exhibit.Export(context.Background(), w.cfg)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("export into a non-empty folder: %v", err)
	}
	ents, _ := os.ReadDir(w.dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "partial") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func hasFinding(r *exhibit.Report, file string) bool {
	for _, f := range r.Findings {
		if f.File == file {
			return true
		}
	}
	return false
}

func findings(r *exhibit.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// TestExportEmptyPeriod: a period without events of the case still makes
// a whole exhibit, with the case's audit leaves proven.
func TestExportEmptyPeriod(t *testing.T) {
	w := newWorld(t, 40)
	dir, res := w.export(t, func(c *exhibit.Config) {
		c.From, c.To = time.Date(2010, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2010, 3, 1, 0, 0, 0, 0, time.UTC)
	})
	if res.Events != 0 || res.Leaves != 0 || res.Audit != 7 || res.Days != 0 {
		t.Errorf("empty period: %+v", res)
	}
	if r := verify(t, dir, w.vkey); !r.OK() || r.Events != 0 {
		t.Fatalf("the exhibit of an empty period does not verify:\n%s", findings(r))
	}
	if code, out := runNode(t, dir, w.vkey); code != 0 {
		t.Errorf("node verifier: exit %d\n%s", code, out)
	}
}

// TestExportRefusals: what cannot be proven is refused, naming why.
func TestExportRefusals(t *testing.T) {
	w := newWorld(t, 40)
	for _, c := range []struct {
		name string
		mod  func(*exhibit.Config)
		want string
	}{
		{"unknown case", func(c *exhibit.Config) { c.Case = "nope" }, "not found"},
		{"empty period", func(c *exhibit.Config) { c.To = c.From }, "is empty"},
		{"another key", func(c *exhibit.Config) { _, c.VerifierKey, _ = evidence.GenerateKey("test-log") }, "is not the signer's"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := w.cfg
			c.mod(&cfg)
			_, err := exhibit.Export(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if _, err := os.Stat(cfg.Out); err == nil {
				t.Error("a refused export left its folder")
			}
		})
	}
	// Events stored while the log was off are in no leaf.
	ctx := context.Background()
	if err := w.st.AppendMarked(ctx, []event.Event{{Time: w.from.Add(time.Hour), SrcIP: netip.MustParseAddr("10.9.9.9"), Case: caseName,
		Protocol: event.ProtoDNS, Transport: event.TransportUDP, Sensor: "s1"}}, "", nil); err != nil {
		t.Fatal(err)
	}
	_, err := exhibit.Export(ctx, w.cfg)
	if err == nil || !strings.Contains(err.Error(), "1 of the case's events are in no leaf") || !strings.Contains(err.Error(), "10.9.9.9") {
		t.Fatalf("an event outside the log: %v", err)
	}
}

// TestExportNeedsCheckpoint: a leaf newer than the last checkpoint cannot
// be proven yet.
func TestExportNeedsCheckpoint(t *testing.T) {
	w := newWorld(t, 40)
	ctx := context.Background()
	e := event.Event{Time: w.from.Add(time.Hour), SrcIP: netip.MustParseAddr("10.9.9.9"), Case: caseName,
		Protocol: event.ProtoDNS, Transport: event.TransportUDP, Sensor: "s1"}
	if err := evidence.NewStore(w.st, w.log).AppendMarked(ctx, []event.Event{e}, "", nil); err != nil {
		t.Fatal(err)
	}
	_, err := exhibit.Export(ctx, w.cfg)
	if err == nil || !strings.Contains(err.Error(), "does not cover leaf") {
		t.Fatalf("a leaf past the last checkpoint: %v", err)
	}
	if _, err := w.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	dir, _ := w.export(t, nil)
	if r := verify(t, dir, w.vkey); !r.OK() {
		t.Fatalf("after the next checkpoint:\n%s", findings(r))
	}
}
