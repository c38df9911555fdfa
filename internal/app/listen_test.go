package app

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/smtp"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestHTTPCallbackStored: serve with the HTTP listener; a Waledac-like bot
// posts to a seized name; the callback is stored, classified by the
// shipped rules, with its bot id, zone and case.
func TestHTTPCallbackStored(t *testing.T) {
	dir := t.TempDir()
	httpPort, smtpPort := testnet.FreePort(t), testnet.FreePort(t)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"]}
transfer: {listen: []}
listen: {http: ["127.0.0.1:%d"], https: [], smtp: ["127.0.0.1:%d"]}
pipeline: {flush_ms: 50}
`, filepath.Join(dir, "data"), testnet.FreePort(t), testnet.FreePort(t), httpPort, smtpPort)))
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "waledac", "waledac", "partystore.example")
	stop := serveInProcess(t, cfg)
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/abcd.png", httpPort), strings.NewReader("a=cGF5bG9hZA==&b=Ym90LTQy"))
	req.Host = "www.PartyStore.example"
	req.Header.Set("User-Agent", "Mozilla")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// A spam bot's message to a seized domain, over SMTP (no STARTTLS:
	// the client would not trust the sinkhole's CA).
	sc, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", smtpPort))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Hello("bot.example"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Mail("x@spam.example"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a@partystore.example", "b@partystore.example", "c@other.example"} {
		if err := sc.Rcpt(r); err != nil {
			t.Fatal(err)
		}
	}
	wc, err := sc.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(wc, "Subject: cheap pills\r\nMessage-ID: <1@spam.example>\r\n\r\nbuy now\r\n")
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
	sc.Quit()
	// Wait until the pipeline has stored both, then stop serve and look.
	got := storedAfterStop(t, cfg, 2, stop)
	if len(got) != 2 {
		t.Fatalf("%d events stored", len(got))
	}
	e, m := got[0], got[1]
	if e.Protocol != event.ProtoHTTP {
		e, m = m, e
	}
	if m.Protocol != event.ProtoSMTP || m.SMTPHelo != "bot.example" || m.SMTPFrom != "x@spam.example" ||
		m.SMTPRcptCount != 3 || m.SMTPRcptDomains != "partystore.example,other.example" || m.SMTPSubject != "cheap pills" ||
		m.SMTPMessageID != "<1@spam.example>" || m.Zone != "partystore.example" || m.Case != "waledac" || m.PayloadSHA256 == "" {
		t.Errorf("stored message %+v", m)
	}
	if e.Protocol != event.ProtoHTTP || e.Domain != "www.partystore.example" || e.Zone != "partystore.example" ||
		e.Case != "waledac" || e.Family != "waledac" || e.BotID == "" || e.HTTPMethod != "POST" || e.HTTPPath != "/abcd.png" ||
		e.HTTPUserAgent != "Mozilla" || e.Bytes != 25 || e.PayloadSHA256 == "" {
		t.Fatalf("stored event %+v", e)
	}
}

func apiStatus(ctx context.Context, cfg config.Config, tok string) (api.Status, error) {
	return api.NewClient(cfg.API.Listen, tok, "test").Status(ctx)
}

// TestDNSOffKeepsZoneAndCase: with the DNS sinkhole off (dns.listen: [],
// a sensor that only listens for HTTP, or a central), a callback to a
// seized name over HTTP and one a sensor sends to /v1/ingest are still
// attributed to their seized zone and case: both read the served set, not
// the sinkhole.
func TestDNSOffKeepsZoneAndCase(t *testing.T) {
	dir := t.TempDir()
	httpPort := testnet.FreePort(t)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: []}
transfer: {listen: []}
listen: {http: ["127.0.0.1:%d"], https: [], smtp: []}
pipeline: {flush_ms: 50}
`, filepath.Join(dir, "data"), testnet.FreePort(t), httpPort)))
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "waledac", "waledac", "partystore.example")
	stop := serveInProcess(t, cfg)
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/index.html", httpPort), nil)
	req.Host = "www.PartyStore.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok, err := ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ingested := event.Event{Time: time.Now().UTC().Add(-time.Hour).Truncate(time.Second), Protocol: event.ProtoHTTP,
		Transport: event.TransportTCP, SrcIP: netip.MustParseAddr("127.3.4.5"), SrcPort: 3000,
		Domain: "cdn.partystore.example", HTTPMethod: "GET", HTTPPath: "/"}
	if _, err := api.NewClient(cfg.API.Listen, tok, "test").Ingest(context.Background(), "sensor-1", []event.Event{ingested}); err != nil {
		t.Fatal(err)
	}
	got := storedAfterStop(t, cfg, 2, stop)
	if len(got) != 2 {
		t.Fatalf("%d events stored", len(got))
	}
	for _, e := range got {
		if e.Zone != "partystore.example" || e.Case != "waledac" || e.Family != "waledac" {
			t.Errorf("%s event for %s from %q: zone %q, case %q, family %q; want partystore.example, waledac, waledac",
				e.Protocol, e.Domain, e.Sensor, e.Zone, e.Case, e.Family)
		}
	}
}
