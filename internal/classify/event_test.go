package classify

import (
	"net/netip"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// TestClassifyEvent: an event classified after the fact gets what the
// listener that saw it would have given it: the shipped rules name a
// Waledac POST and its bot id from what the event keeps; a sensor's own
// family is overwritten; a DNS query falls back to its case's family and
// keeps a bot id it had.
func TestClassifyEvent(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("a=cGF5bG9hZA==&b=Ym90LTQy")
	post := event.Event{Time: time.Now(), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
		SrcIP: netip.MustParseAddr("127.3.4.5"), DstPort: 80, Domain: "www.partystore.example", Zone: "partystore.example",
		Case: "wal", Family: "waledac", HTTPMethod: "POST", HTTPPath: "/abcd.png", HTTPUserAgent: "Mozilla",
		HTTPContentType: "application/x-www-form-urlencoded", Bytes: int64(len(body)), PayloadHead: body}
	h.ClassifyEvent(&post)
	if post.Family != "waledac" || post.BotID != "Ym90LTQy" {
		t.Fatalf("POST: family %q, bot id %q", post.Family, post.BotID)
	}
	smtp := event.Event{Time: time.Now(), Protocol: event.ProtoSMTP, Transport: event.TransportTCP,
		SrcIP: netip.MustParseAddr("127.3.4.5"), SMTPHelo: "[127.3.4.5]", SMTPRcptDomains: "a.example", SMTPRcptCount: 1,
		Family: "", BotID: "made-up"}
	h.ClassifyEvent(&smtp)
	if smtp.Family != "rustock" || smtp.BotID != "" {
		t.Fatalf("SMTP: family %q, bot id %q", smtp.Family, smtp.BotID)
	}
	dns := event.Event{Time: time.Now(), Protocol: event.ProtoDNS, Transport: event.TransportUDP,
		SrcIP: netip.MustParseAddr("127.3.4.5"), Domain: "x.partystore.example", Zone: "partystore.example",
		Case: "wal", Family: "waledac", BotID: "kept"}
	h.ClassifyEvent(&dns)
	if dns.Family != "waledac" || dns.BotID != "kept" {
		t.Fatalf("DNS: family %q, bot id %q", dns.Family, dns.BotID)
	}
}
