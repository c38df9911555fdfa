package e2e

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app/apptest"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/sim"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestRemediationMail: serve mails yesterday's reports through a real
// Exim relay. The simulator backfills one day of a botnet through the
// ingest endpoint; every demo-world network with infected hosts gets a
// subscriber (its abuse desk), and the country with the most hosts a
// national CERT. One send through the admin API mails each its report;
// read back from the relay's Maildir, each ISP's CSV attachment holds
// exactly the simulator's infected addresses of its network, per family,
// and none of any other network; the CERT's holds its country's. A second
// send mails nothing.
func TestRemediationMail(t *testing.T) {
	start := time.Now()
	// A bound on a hang, not a speed target: a day's backfill on a loaded
	// machine took more than a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	world, err := demoworld.New()
	if err != nil {
		t.Fatal(err)
	}
	worldDB := filepath.Join(dir, demoworld.FileName)
	if err := world.WriteFile(worldDB); err != nil {
		t.Fatal(err)
	}
	relay := testnet.StartExim(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t)) }
	dnsAddr, httpAddr, smtpAddr := port(), port(), port()
	cfg, err := config.Parse("remediation.yaml", []byte(fmt.Sprintf(`
data_dir: %s
sensor: e2e
operator: E2E CERT
api: {listen: "%s"}
dns:
  listen: ["%s"]
  rrl: {responses_per_second: -1}
transfer: {listen: []}
listen: {http: ["%s"], https: [], smtp: ["%s"], tcp: [], udp: []}
enrich: {databases: [%s]}
pipeline: {flush_ms: 100}
reports: {send: false}
mail: {relay: "%s", tls: required, ca_file: %q, from: "E2E CERT <cert@e2e.example>"}
`, filepath.Join(dir, "data"), port(), dnsAddr, httpAddr, smtpAddr, worldDB, relay.Addr(relay.Port), relay.CAFile)))
	if err != nil {
		t.Fatal(err)
	}
	var waledac []string
	for i := range 20 {
		waledac = append(waledac, fmt.Sprintf("seized-%02d.example.net", i))
	}
	apptest.Seize(t, cfg, "wal", sim.Waledac, waledac)

	client := apptest.Serve(t, cfg, "e2e")

	// One day of history: yesterday, whole.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	yesterday := today.AddDate(0, 0, -1)
	s, err := sim.New(sim.Config{
		Targets:  sim.Targets{DNS: dnsAddr, HTTP: httpAddr, SMTP: smtpAddr},
		Bots:     2000,
		Families: []sim.Share{{Family: sim.Waledac, Share: 0.7}, {Family: sim.Rustock, Share: 0.3}},
		NATShare: 0.1,
		Domains:  map[string][]string{sim.Waledac: waledac},
		World:    world,
		Seed:     23,
		Start:    today,
	})
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	if err := s.Backfill(ctx, 24*time.Hour, func(ctx context.Context, batch []event.Event) error {
		for _, e := range batch {
			if e.Time.Before(yesterday) || !e.Time.Before(today) {
				return fmt.Errorf("backfilled event at %s, not yesterday", e.Time)
			}
		}
		res, err := client.Ingest(ctx, sim.SensorID, batch)
		sent += int64(res.Accepted - res.Skipped)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	truth := s.Truth()
	if truth.Errors != 0 || truth.Callbacks < 20_000 {
		t.Fatalf("truth: %d callbacks, %d errors", truth.Callbacks, truth.Errors)
	}
	for {
		st, err := client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pipeline.Backlog == 0 && st.Store.Events >= sent {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("store %d events behind", st.Pipeline.Backlog)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The expected hosts: per network and per country, per family.
	byASN := map[uint32]map[string]int64{}
	byCountry := map[string]map[string]int64{}
	for fam, ft := range truth.Families {
		for _, n := range ft.ByASN {
			if byASN[n.ASN] == nil {
				byASN[n.ASN] = map[string]int64{}
			}
			byASN[n.ASN][fam] = n.IPs
		}
		for _, c := range ft.ByCountry {
			if byCountry[c.Country] == nil {
				byCountry[c.Country] = map[string]int64{}
			}
			byCountry[c.Country][fam] = c.IPs
		}
	}
	if len(byASN) < 5 {
		t.Fatalf("only %d networks have infected hosts", len(byASN))
	}
	cc := truth.ByCountry[0].Country

	// The subscribers: every network's abuse desk, and the CERT.
	type sub struct {
		name string
		asn  uint32
		cc   string
		want map[string]int64
	}
	subs := map[string]*sub{} // by contact address
	add := func(s *sub, ns registry.NewSubscriber) {
		ns.Name, ns.Org, ns.Contacts = s.name, "Org of "+s.name, []string{"abuse@" + s.name + ".example"}
		if _, err := client.AddSubscriber(ctx, ns, registry.Change{Actor: "e2e"}); err != nil {
			t.Fatal(err)
		}
		subs[ns.Contacts[0]] = s
	}
	for asn, want := range byASN {
		s := &sub{name: fmt.Sprintf("isp-as%d", asn), asn: asn, want: want}
		add(s, registry.NewSubscriber{ASNs: []string{strconv.FormatUint(uint64(asn), 10)}})
	}
	add(&sub{name: "cert-" + strings.ToLower(cc), cc: cc, want: byCountry[cc]}, registry.NewSubscriber{Countries: []string{cc}})

	res, err := client.SendReports(ctx, yesterday, api.SendRequest{}, registry.Change{Actor: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mails != len(subs) || res.Failed != 0 || res.NoData != 0 || len(res.Errors) != 0 {
		t.Fatalf("send: %+v, want %d mails", res, len(subs))
	}

	day := yesterday.Format(time.DateOnly)
	for _, m := range relay.Delivered(t, len(subs)) {
		to := m.Msg.Header.Get("Envelope-to")
		s := subs[to]
		if s == nil {
			t.Errorf("a mail to %q, who subscribed to nothing", to)
			continue
		}
		delete(subs, to)
		h := m.Msg.Header
		if !strings.Contains(h.Get("To"), to) || !strings.Contains(h.Get("Subject"), day) || h.Get("X-Test-TLS") != "yes" {
			t.Errorf("%s: To %q, Subject %q, TLS %q", s.name, h.Get("To"), h.Get("Subject"), h.Get("X-Test-TLS"))
		}
		got := map[string]int64{}
		seen := map[string]bool{}
		for _, row := range attachedCSV(t, s.name, m.Msg) {
			ip, err := netip.ParseAddr(row["src_ip"])
			if err != nil {
				t.Fatalf("%s: ip %q", s.name, row["src_ip"])
			}
			if seen[row["src_ip"]+"/"+row["family"]] {
				t.Errorf("%s: %s %s twice", s.name, row["src_ip"], row["family"])
			}
			seen[row["src_ip"]+"/"+row["family"]] = true
			got[row["family"]]++
			n, ok := world.NetworkOf(ip)
			switch {
			case !ok:
				t.Errorf("%s: %s is in no network of the demo world", s.name, ip)
			case s.asn != 0 && (n.ASN != s.asn || row["src_asn"] != strconv.FormatUint(uint64(s.asn), 10)):
				t.Errorf("%s: %s of AS%d (asn column %q) in its report", s.name, ip, n.ASN, row["src_asn"])
			case s.cc != "" && (n.CountryCode != s.cc || row["src_geo"] != s.cc):
				t.Errorf("%s: %s of %s (geo column %q) in its report", s.name, ip, n.CountryCode, row["src_geo"])
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s: infected hosts per family %v, the simulator's %v", s.name, got, s.want)
		}
	}
	for to, s := range subs {
		t.Errorf("%s (%s) got no mail", s.name, to)
	}

	// Idempotent: a second send mails nothing.
	res2, err := client.SendReports(ctx, yesterday, api.SendRequest{}, registry.Change{Actor: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Mails != 0 || res2.Skipped != res.Mails || res2.Failed != 0 {
		t.Errorf("second send: %+v, want %d skipped", res2, res.Mails)
	}
	ds, err := client.Deliveries(ctx, api.DeliveryFilter{From: yesterday, To: yesterday})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Status != "sent" || d.Attempts != 1 {
			t.Errorf("delivery %s: %s after %d attempts", d.Key, d.Status, d.Attempts)
		}
	}
	if len(ds) != res.Mails || relay.Count() != res.Mails {
		t.Errorf("%d deliveries logged, %d mails at the relay, want %d", len(ds), relay.Count(), res.Mails)
	}
	t.Logf("%d callbacks of %d bots; %d reports mailed and checked in %s", truth.Callbacks, truth.Infected, res.Mails, time.Since(start).Round(time.Millisecond))
}

// attachedCSV returns the rows of the gzip-compressed CSV report attached
// to m, each as column → value.
func attachedCSV(t *testing.T, who string, m *mail.Message) []map[string]string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("%s: Content-Type %q", who, m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("%s: no .csv.gz attachment: %v", who, err)
		}
		if !strings.HasSuffix(p.FileName(), ".csv.gz") {
			continue
		}
		if p.Header.Get("Content-Transfer-Encoding") != "base64" {
			t.Fatalf("%s: attachment in %q", who, p.Header.Get("Content-Transfer-Encoding"))
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		recs, err := csv.NewReader(zr).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Fatalf("%s: CSV: %v", who, err)
		}
		var rows []map[string]string
		for _, rec := range recs[1:] {
			row := map[string]string{}
			for i, col := range recs[0] {
				row[col] = rec[i]
			}
			rows = append(rows, row)
		}
		return rows
	}
}
