package cli_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/testnet"
)

// reportSetup makes a config whose mail goes to a new Exim relay (with
// STARTTLS, trusting its CA; the daily schedule off), and a database
// holding yesterday's callbacks of AS64500 (6 hosts, Germany) and AS64501
// (4 hosts, France) and three subscribers: isp-a (AS64500; csv, json,
// xarf, stix), isp-b (AS64501; csv) and cert-fr (France; stix).
func reportSetup(t *testing.T) (cfgPath, addr string, day time.Time, relay *testnet.Exim) {
	t.Helper()
	relay = testnet.StartExim(t)
	cfgPath, _, addr = setup(t)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "reports: {send: false}\nmail: {relay: %q, ca_file: %q, from: \"Test CERT <cert@example.org>\"}\n", relay.Addr(relay.Port), relay.CAFile)
	f.Close()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	local, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	day = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	var evs []event.Event
	var a, b int
	for i := range 30 {
		asn, cc, ip := uint32(64500), "DE", netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + a%6)})
		if i%3 == 2 {
			asn, cc, ip = 64501, "FR", netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + b%4)})
			b++
		} else {
			a++
		}
		evs = append(evs, event.Event{
			Time: day.Add(time.Duration(i) * 40 * time.Minute), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: ip, SrcPort: 40000, DstPort: 80, Domain: "seized.example", Case: "wal", Family: "waledac",
			ASN: asn, ASName: fmt.Sprintf("NET-%d", asn), CountryCode: cc,
		})
	}
	if err := local.Store.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, s := range []registry.NewSubscriber{
		{Name: "isp-a", Org: "ISP A", Contacts: []string{"abuse@isp-a.example"}, ASNs: []string{"AS64500"}, Formats: []string{"csv", "json", "xarf", "stix"}},
		{Name: "isp-b", Org: "ISP B", Contacts: []string{"abuse@isp-b.example"}, ASNs: []string{"AS64501"}},
		{Name: "cert-fr", Org: "CERT FR", Contacts: []string{"reports@cert-fr.example"}, Countries: []string{"FR"}, Formats: []string{"stix"}},
	} {
		if _, err := local.Registry.AddSubscriber(ctx, s, registry.Change{Actor: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	return cfgPath, addr, day, relay
}

// reportScenario runs the report commands through whichever backend the
// CLI picks and returns what it observed, normalised so that runs compare.
func reportScenario(t *testing.T, cfg string, day time.Time, relay *testnet.Exim) map[string]string {
	obs := map[string]string{}
	d := day.Format(time.DateOnly)
	today := day.AddDate(0, 0, 1).Format(time.DateOnly)
	out := filepath.Join(t.TempDir(), "out")

	// The exit codes of README's table, the same locally and remotely.
	wantCode := map[string]int{"bad-date": 2, "bad-format": 2, "bad-key": 1, "bad-status": 2, "missing-key": 3, "no-date": 2, "no-subscriber": 3, "send-nobody": 3, "send-today": 1, "trend-bad-asn": 2, "trend-both": 2, "trend-no-scope": 2, "trend-nobody": 3, "trend-reversed": 2}
	for name, args := range map[string][]string{
		"no-date":        {"report", "generate"},
		"bad-date":       {"report", "generate", "--date", "2026-13-01"},
		"bad-format":     {"report", "generate", "--date", d, "--format", "pdf"},
		"no-subscriber":  {"report", "generate", "--date", d, "--subscriber", "isp-a,nobody"},
		"send-today":     {"report", "send", "--date", today},
		"send-nobody":    {"report", "send", "--date", d, "--subscriber", "nobody"},
		"bad-status":     {"report", "deliveries", "--status", "lost"},
		"bad-key":        {"report", "mark-sent", "isp-a/csv"},
		"missing-key":    {"report", "resend", "isp-a/2001-01-01/csv"},
		"trend-no-scope": {"report", "trend"},
		"trend-both":     {"report", "trend", "--subscriber", "isp-a", "--asn", "64500"},
		"trend-bad-asn":  {"report", "trend", "--asn", "AS-1"},
		"trend-nobody":   {"report", "trend", "--subscriber", "nobody"},
		"trend-reversed": {"report", "trend", "--asn", "64500", "--from", d, "--to", "2001-01-01"},
	} {
		r := run(t, cfg, args...)
		if r.code != wantCode[name] || r.stdout != "" {
			t.Errorf("%s: exit %d (want %d), stdout %q", name, r.code, wantCode[name], r.stdout)
		}
		obs["err:"+name] = r.stderr
	}

	gen := run(t, cfg, "report", "generate", "--date", d, "--out", out)
	if gen.code != 0 || gen.stderr != "" {
		t.Errorf("generate: exit %d, stderr %q", gen.code, gen.stderr)
	}
	obs["generate"] = gen.stdout
	files, _ := filepath.Glob(filepath.Join(out, "*"))
	var names []string
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
		names = append(names, filepath.Base(f))
	}
	obs["files"] = strings.Join(names, " ")
	obs["csv:isp-a"] = csvIPs(t, filepath.Join(out, "isp-a-"+d+".csv"))
	obs["csv:isp-b"] = csvIPs(t, filepath.Join(out, "isp-b-"+d+".csv"))
	mbox, _ := os.ReadFile(filepath.Join(out, "isp-a-"+d+".mbox"))
	obs["mbox"] = fmt.Sprint(bytes.Count(mbox, []byte("\nX-ARF: YES\n")), " X-ARF mails, 198.51.100 in it: ", bytes.Contains(mbox, []byte("198.51.100")))
	var g struct {
		Subscribers, Rows int
		Files             []struct {
			Name  string
			Rows  int
			Bytes int64
			Path  string
		}
	}
	// Shadowserver's sinkhole event reports: one row per callback, the
	// file named as Shadowserver names it; a report without events is its
	// header.
	ev := filepath.Join(t.TempDir(), "events")
	mustRun(t, cfg, "report", "generate", "--date", d, "--subscriber", "isp-b", "--format", "event4_sinkhole_http", "--out", ev)
	mustRun(t, cfg, "report", "generate", "--date", d, "--subscriber", "isp-b", "--format", "EVENT6_SINKHOLE", "--out", ev)
	for _, name := range []string{d + "-event4_sinkhole_http-isp-b.csv", d + "-event6_sinkhole-isp-b.csv"} {
		f, err := os.Open(filepath.Join(ev, name))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || len(rows) == 0 || rows[0][0] != "timestamp" || rows[0][2] != "src_ip" {
			t.Fatalf("%s: %v %v", name, err, rows)
		}
		ips := map[string]int{}
		for _, r := range rows[1:] {
			ips[r[2]]++
		}
		obs["events:"+strings.TrimPrefix(name, d)] = fmt.Sprint(len(rows[0]), " columns, ", len(rows)-1, " rows, ", ips)
	}
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "report", "generate", "--date", d, "--subscriber", "isp-b", "--format", "JSON", "--out", out, "--json")), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Files) != 1 || g.Files[0].Name != "isp-b-"+d+".jsonl" || g.Files[0].Rows != 4 || g.Rows != 4 || g.Files[0].Bytes == 0 {
		t.Errorf("generate --json: %+v", g)
	} else if fi, err := os.Stat(g.Files[0].Path); err != nil || fi.Size() != g.Files[0].Bytes {
		t.Errorf("%s: %v, want %d bytes", g.Files[0].Path, err, g.Files[0].Bytes)
	}

	before := relay.Count()
	obs["send"] = mustRun(t, cfg, "report", "send", "--date", d)
	// isp-a: csv, json, stix and 6 X-ARF mails; isp-b: csv; cert-fr: stix.
	mails := relay.Delivered(t, before+11)
	sent := map[string]int{}
	for _, m := range mails[before:] {
		sent[m.Msg.Header.Get("Envelope-to")]++
	}
	obs["mails"] = fmt.Sprint(sent)
	obs["send-again"] = mustRun(t, cfg, "report", "send", "--date", d, "--json")
	var ds []api.Delivery
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "report", "deliveries", "--date", d, "--json")), &ds); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, dl := range ds {
		keys = append(keys, regexp.MustCompile(`xarf-[0-9a-f]{16}`).ReplaceAllString(dl.Key, "xarf-H")+"="+dl.Status)
	}
	obs["deliveries"] = strings.Join(keys, " ")
	obs["deliveries-table"] = regexp.MustCompile(`xarf-[0-9a-f]{16}.*\n`).ReplaceAllString(mustRun(t, cfg, "report", "deliveries", "--subscriber", "isp-b"), "")
	obs["mark-sent"] = mustRun(t, cfg, "report", "mark-sent", "isp-b/"+d+"/csv", "--note", "seen in the relay's log")
	obs["resend"] = mustRun(t, cfg, "report", "resend", "isp-b/"+d+"/csv")
	relay.Delivered(t, before+12)
	obs["trend"] = mustRun(t, cfg, "report", "trend", "--subscriber", "isp-a", "--from", d, "--to", today)
	obs["trend-asn"] = mustRun(t, cfg, "report", "trend", "--asn", "AS64501", "--from", d, "--to", d, "--json")

	// Times and directories differ between runs.
	mask := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ|id=\S+|` + regexp.QuoteMeta(out) + `|` + d + `|` + today + `| +`)
	for k, v := range obs {
		obs[k] = mask.ReplaceAllStringFunc(v, func(s string) string {
			switch {
			case strings.Trim(s, " ") == "":
				return " "
			case s == d:
				return "DAY"
			case s == today:
				return "TODAY"
			case s == out:
				return "OUT"
			case strings.HasPrefix(s, "id="):
				return "id=ID"
			}
			return "TIME"
		})
	}
	return obs
}

// csvIPs returns the ip column of a CSV report, sorted.
func csvIPs(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) == 0 || rows[0][2] != "src_ip" {
		t.Fatalf("%s: %v", path, err)
	}
	var ips []string
	for _, r := range rows[1:] {
		ips = append(ips, r[2])
	}
	slices.Sort(ips)
	return strings.Join(ips, " ")
}

// TestReportCommandsLocalAndRemote runs the report commands on the database
// file (mailing from the CLI) and through a running serve (mailing from
// serve), and compares.
func TestReportCommandsLocalAndRemote(t *testing.T) {
	cfgLocal, _, day, relayLocal := reportSetup(t)
	local := reportScenario(t, cfgLocal, day, relayLocal)
	cfgRemote, addr, day2, relayRemote := reportSetup(t)
	if !day2.Equal(day) {
		t.Skip("the UTC day changed during the test")
	}
	startServer(t, cfgRemote, addr)
	remote := reportScenario(t, cfgRemote, day, relayRemote)

	lj, _ := json.MarshalIndent(local, "", "  ")
	rj, _ := json.MarshalIndent(remote, "", "  ")
	if !bytes.Equal(lj, rj) {
		t.Errorf("local and remote runs differ\nlocal:  %s\nremote: %s", lj, rj)
	}
	for k, want := range map[string][]string{
		"err:no-date":                            {"--date: missing"},
		"err:bad-date":                           {`--date "2026-13-01": not a day, YYYY-MM-DD`},
		"err:bad-format":                         {`--format "pdf": not one of csv, json, xarf, stix, event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http`},
		"err:no-subscriber":                      {`--subscriber: subscriber "nobody": not found`},
		"err:send-today":                         {"--date: date TODAY: the day is not over"},
		"err:send-nobody":                        {`--subscriber: subscriber "nobody": not found`},
		"err:bad-status":                         {`--status "lost": not one of pending, sending, sent, failed, unknown`},
		"err:bad-key":                            {`delivery key "isp-a/csv" is not SUBSCRIBER/YYYY-MM-DD/FORMAT`},
		"err:missing-key":                        {"delivery isp-a/2001-01-01/csv: not in the delivery log"},
		"err:trend-no-scope":                     {"give --subscriber S or --asn N"},
		"err:trend-both":                         {"not both"},
		"err:trend-bad-asn":                      {`--asn: ASN "AS-1" is not an AS number`},
		"err:trend-nobody":                       {`--subscriber: subscriber "nobody": not found`},
		"err:trend-reversed":                     {"--from DAY is after --to 2001-01-01"},
		"generate":                               {"cert-fr 4 cert-fr-DAY.json\n", "isp-a 6 isp-a-DAY.csv isp-a-DAY.jsonl isp-a-DAY.mbox isp-a-DAY.json\n", "isp-b 4 isp-b-DAY.csv\n", "wrote 6 files of 3 subscribers, 14 rows, to OUT"},
		"files":                                  {"cert-fr-DAY.json isp-a-DAY.csv isp-a-DAY.json isp-a-DAY.jsonl isp-a-DAY.mbox isp-b-DAY.csv"},
		"csv:isp-a":                              {"192.0.2.10 192.0.2.11 192.0.2.12 192.0.2.13 192.0.2.14 192.0.2.15"},
		"csv:isp-b":                              {"198.51.100.20 198.51.100.21 198.51.100.22 198.51.100.23"},
		"mbox":                                   {"6 X-ARF mails, 198.51.100 in it: false"},
		"events:-event4_sinkhole_http-isp-b.csv": {"36 columns, 10 rows, map[198.51.100.20:3 198.51.100.21:3 198.51.100.22:2 198.51.100.23:2]"},
		"events:-event6_sinkhole-isp-b.csv":      {"30 columns, 0 rows, map[]"},
		"send":                                   {"DAY, 3 subscribers: 11 mails sent, 0 skipped (in the delivery log already), 0 without data, 0 failed"},
		"mails":                                  {"map[abuse@isp-a.example:9 abuse@isp-b.example:1 reports@cert-fr.example:1]"},
		"send-again":                             {`"mails": 0`, `"skipped": 11`, `"failed": 0`},
		"deliveries":                             {"cert-fr/DAY/stix=sent isp-a/DAY/csv=sent isp-a/DAY/json=sent isp-a/DAY/stix=sent isp-a/DAY/xarf-H=sent", "isp-b/DAY/csv=sent"},
		"deliveries-table":                       {"KEY STATUS ATTEMPTS TO BYTES UPDATED RESPONSE OR ERROR\nisp-b/DAY/csv sent 1 abuse@isp-b.example "},
		"mark-sent":                              {"delivery isp-b/DAY/csv is recorded as sent"},
		"resend":                                 {"delivery isp-b/DAY/csv: sent again"},
		"trend":                                  {"remediation of isp-a (AS64500), DAY to TODAY", "DAY 6 100 %\nTODAY 0 0 %", "halved after: 1 day;", "AS64500 NET-64500 6 0 - - 1 day -"},
		"trend-asn":                              {`"scope": "AS64501"`, "\"hosts\": [\n 4\n ]"},
	} {
		for _, w := range want {
			if !strings.Contains(local[k], w) {
				t.Errorf("%s lacks %q:\n%s", k, w, local[k])
			}
		}
	}
}

// gzAttachment returns the uncompressed attachments of m whose file names
// end in suffix, by file name.
func gzAttachment(t *testing.T, m testnet.Mail, suffix string) map[string][]byte {
	t.Helper()
	_, params, err := mime.ParseMediaType(m.Msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	mr := multipart.NewReader(m.Msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return out
		}
		if !strings.HasSuffix(p.FileName(), suffix) {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		out[p.FileName()] = data
	}
}

// TestReportMailContent: the CSV attachment of a mailed report is the
// subscriber's report. A subscriber who takes Shadowserver's sinkhole event
// reports gets each report that has rows as a mail of its own, the
// attachment named as Shadowserver names its files; a report without
// events is not mailed.
func TestReportMailContent(t *testing.T) {
	cfg, _, day, relay := reportSetup(t)
	d := day.Format(time.DateOnly)
	mustRun(t, cfg, "subscribers", "update", "isp-b", "--format", "csv,event4_sinkhole_http,event6_sinkhole")
	var res api.SendResult
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "report", "send", "--date", d, "--subscriber", "isp-b", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.Mails != 2 || res.NoData != 1 || res.Failed != 0 {
		t.Errorf("send: %+v; want 2 mails (csv, event4_sinkhole_http) and 1 without data (event6_sinkhole)", res)
	}
	found, csvFound := false, false
	for _, m := range relay.Delivered(t, 2) {
		files := gzAttachment(t, m, ".csv.gz")
		if data, ok := files["report-"+d+".csv.gz"]; ok {
			csvFound = true
			path := filepath.Join(t.TempDir(), "r.csv")
			os.WriteFile(path, data, 0o600)
			if got := csvIPs(t, path); got != "198.51.100.20 198.51.100.21 198.51.100.22 198.51.100.23" {
				t.Errorf("mailed report: %s", got)
			}
		}
		data, ok := files[d+"-event4_sinkhole_http-isp-b.csv.gz"]
		if !ok {
			continue
		}
		found = true
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil || len(rows) != 11 || len(rows[0]) != 36 || rows[0][31] != "http_host" || rows[1][31] != "seized.example" {
			t.Errorf("the mailed sinkhole report: %v, %d rows: %v", err, len(rows), rows)
		}
	}
	if !found || !csvFound {
		t.Errorf("no mail carries %s-event4_sinkhole_http-isp-b.csv.gz (%v) or report-%[1]s.csv.gz (%v)", d, found, csvFound)
	}
	var ds []api.Delivery
	json.Unmarshal([]byte(mustRun(t, cfg, "report", "deliveries", "--subscriber", "isp-b", "--json")), &ds)
	var keys []string
	for _, dl := range ds {
		keys = append(keys, dl.Key+"="+dl.Status)
	}
	slices.Sort(keys)
	if want := "isp-b/" + d + "/csv=sent isp-b/" + d + "/event4_sinkhole_http=sent"; strings.Join(keys, " ") != want {
		t.Errorf("deliveries %v, want %s", keys, want)
	}
}
