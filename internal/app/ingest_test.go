package app

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestIngestStored: a sensor sends observations of the past through
// /v1/ingest. They are stored with its sensor id, their own times, the
// seized zone and case, and classified by the shipped rules (family, bot
// id); DNS queries for names that are not served are skipped.
func TestIngestStored(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"]}
transfer: {listen: []}
listen: {http: [], https: [], smtp: [], tcp: [], udp: []}
pipeline: {flush_ms: 50}
`, filepath.Join(dir, "data"), testnet.FreePort(t), testnet.FreePort(t))))
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "wal", "waledac", "partystore.example")
	stop := serveInProcess(t, cfg)
	ctx := context.Background()

	day := time.Now().UTC().Add(-72 * time.Hour).Truncate(time.Second)
	bot := netip.MustParseAddr("127.3.4.5")
	body := []byte("a=cGF5bG9hZA==&b=Ym90LTQy")
	evs := []event.Event{
		{Time: day, Protocol: event.ProtoDNS, Transport: event.TransportUDP, SrcIP: bot, SrcPort: 3000,
			Domain: "WWW.PartyStore.example.", DNSQType: "A", DNSRcode: "NOERROR"},
		{Time: day.Add(time.Second), Protocol: event.ProtoDNS, Transport: event.TransportUDP, SrcIP: bot, SrcPort: 3001,
			Domain: "not-seized.example", DNSQType: "A", DNSRcode: "REFUSED"},
		{Time: day.Add(2 * time.Second), Protocol: event.ProtoHTTP, Transport: event.TransportTCP, SrcIP: bot, SrcPort: 3002,
			Domain: "www.partystore.example", HTTPMethod: "POST", HTTPPath: "/abcd.png", HTTPUserAgent: "Mozilla",
			HTTPContentType: "application/x-www-form-urlencoded", Bytes: int64(len(body)), PayloadHead: body},
		// The sensor's own family is not trusted: the rules decide.
		{Time: day.Add(3 * time.Second), Protocol: event.ProtoSMTP, Transport: event.TransportTCP, SrcIP: bot, SrcPort: 3003,
			SMTPHelo: "[127.3.4.5]", SMTPRcptDomains: "a.example", SMTPRcptCount: 1, Family: "made-up"},
	}
	tok, err := ReadToken(cfg.API.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(cfg.API.Listen, tok, "test")
	res, err := c.Ingest(ctx, "simulated", evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 4 || res.Skipped != 1 {
		t.Fatalf("ingest result %+v, want 4 accepted, 1 skipped", res)
	}
	got := storedAfterStop(t, cfg, 3, stop)
	if len(got) != 3 {
		t.Fatalf("%d events stored, want 3: %+v", len(got), got)
	}
	want := []struct {
		proto             event.Protocol
		family, zone, bot string
	}{
		{event.ProtoDNS, "waledac", "partystore.example", ""},
		{event.ProtoHTTP, "waledac", "partystore.example", "Ym90LTQy"},
		{event.ProtoSMTP, "rustock", "", ""},
	}
	for i, w := range want {
		e := got[i]
		if e.Protocol != w.proto || e.Family != w.family || e.Zone != w.zone || e.BotID != w.bot ||
			e.Sensor != "simulated" || !e.Time.Equal(evs[i+min(i, 1)].Time) || (w.zone != "" && e.Case != "wal") {
			t.Errorf("stored event %d: %+v\nwant %+v, sensor simulated, time %s", i, e, w, evs[i+min(i, 1)].Time)
		}
	}
}
