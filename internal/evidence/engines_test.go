package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/chtest"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/store"
)

// richEvents returns events with every field set: DNS over IPv4, HTTP over
// IPv6, SMTP and TLS, in a time zone other than UTC and with nanoseconds,
// one with IPv4-mapped IPv6 addresses and one with zoned IPv6 addresses.
func richEvents() []event.Event {
	zone := time.FixedZone("CET", 3600)
	t0 := time.Date(2010, 2, 22, 16, 4, 5, 123456789, zone)
	base := event.Event{
		Sensor: "sink-1", Transport: event.TransportTCP,
		SrcPort: 49152, DstPort: 80,
		Domain: "a.waledac.example", Zone: "waledac.example", Case: "waledac-2010",
		Family: "waledac", Tag: "v2", BotID: "bot-0042",
		Error: "header timeout", Malformed: true, Bytes: 1234,
		PayloadSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		PayloadHead:   []byte("GET / HTTP/1.1\r\n\x00\xff"),
		ASN:           64500, ASName: "Example AS, \"Net\"", CountryCode: "DE", Region: "Berlin", City: "Berlin",
		Latitude: 52.520008, Longitude: 13.404954,
	}
	dns := base
	dns.Time, dns.Protocol, dns.Transport = t0, event.ProtoDNS, event.TransportUDP
	dns.SrcIP, dns.DstIP = netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.53")
	dns.DNSQType, dns.DNSRcode, dns.DNSDO, dns.DNSClientSubnet = "TXT", "NOERROR", true, "198.51.100.0/24"
	http := base
	http.Time, http.Protocol = t0.Add(time.Nanosecond), event.ProtoHTTP
	http.SrcIP, http.DstIP = netip.MustParseAddr("2001:db8::1:2"), netip.MustParseAddr("2001:db8:ffff::80")
	http.HTTPMethod, http.HTTPPath, http.HTTPUserAgent = "POST", "/cgi/x.php?q=ü&r=1", "Mozilla/4.0 (compatible; MSIE 6.0)"
	http.HTTPReferer, http.HTTPForwardedBy, http.HTTPContentType = "http://ref.example/", "203.0.113.9, 10.0.0.1", "application/octet-stream"
	tls := base
	tls.Time, tls.Protocol, tls.DstPort = t0.Add(time.Second), event.ProtoHTTPS, 443
	tls.SrcIP, tls.DstIP = netip.MustParseAddr("::ffff:203.0.113.77"), netip.MustParseAddr("::ffff:192.0.2.1")
	tls.TLSVersion, tls.TLSCipher, tls.TLSFingerprint, tls.TLSALPN = "1.3", "TLS_AES_128_GCM_SHA256", "t13d1516h2_8daaf6152771_b186095e22b6", "h2,http/1.1"
	smtp := base
	smtp.Time, smtp.Protocol, smtp.DstPort = t0.Add(time.Minute), event.ProtoSMTP, 25
	smtp.SrcIP, smtp.DstIP = netip.MustParseAddr("2001:db8::25"), netip.MustParseAddr("192.0.2.25")
	smtp.SMTPHelo, smtp.SMTPFrom, smtp.SMTPRcptDomains, smtp.SMTPRcptCount = "bot.example", "a@spam.example", "x.example,y.example", 7
	smtp.SMTPSubject, smtp.SMTPMessageID = "Valentine's e-card", "<1@bot.example>"
	zoned := dns
	zoned.Time = t0.Add(time.Hour)
	zoned.SrcIP, zoned.DstIP = netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fe80::53%2")
	return []event.Event{dns, http, tls, smtp, zoned}
}

// engine is what the round trip needs of an event store.
type engine interface {
	AppendMarked(ctx context.Context, batch []event.Event, source string, mark []byte) error
	Scan(ctx context.Context, q eventstore.ScanQuery, fn func(*event.Event) error) error
}

// roundTrip stores events in s and checks that each event read back has
// the same canonical line as before, and that its raw line (no
// Canonical) is that line too: the hash of a stored event is the hash of
// the event before storing. It logs the fields the engine changes.
func roundTrip(t *testing.T, s engine, events []event.Event) {
	t.Helper()
	changed := map[int][]string{}
	ctx := t.Context()
	if err := s.AppendMarked(ctx, events, "test", []byte("1")); err != nil {
		t.Fatal(err)
	}
	var back []event.Event
	if err := s.Scan(ctx, eventstore.ScanQuery{}, func(e *event.Event) error {
		back = append(back, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(back) != len(events) {
		t.Fatalf("stored %d events, read back %d", len(events), len(back))
	}
	sort.Slice(back, func(i, j int) bool { return back[i].Time.Before(back[j].Time) })
	for i := range events {
		before := evidence.EventLine(nil, &events[i])
		stored := event.AppendJSON(nil, &back[i])
		if raw := event.AppendJSON(nil, &events[i]); !bytes.Equal(raw, stored) {
			changed[i] = changedFields(t, raw, stored)
		}
		if !bytes.Equal(before, stored) {
			t.Errorf("event %d: the line before storing\n%s\ndiffers from the stored event's\n%s\nin %v", i, before, stored, changedFields(t, before, stored))
		}
		if again := evidence.EventLine(nil, &back[i]); !bytes.Equal(again, before) {
			t.Errorf("event %d: the canonical line of the stored event\n%s\ndiffers from the one before\n%s", i, again, before)
		}
		if evidence.EventHash(&back[i]) != evidence.EventHash(&events[i]) {
			t.Errorf("event %d: hash differs after the round trip", i)
		}
	}
	// What the engines give back differently, and Canonical does too:
	// IPv4-mapped IPv6 addresses come back as IPv4, and zones are dropped.
	addrs := []string{"destination.ip", "source.ip"}
	want := map[int][]string{2: addrs, 4: addrs}
	if !reflect.DeepEqual(changed, want) {
		t.Errorf("fields the engine changed: %v, want %v (update Canonical and docs/evidence-formats.md)", changed, want)
	}
}

// changedFields names the JSON keys whose values differ between two lines.
func changedFields(t *testing.T, a, b []byte) []string {
	var ma, mb map[string]any
	if err := json.Unmarshal(a, &ma); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &mb); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k, v := range ma {
		if w, ok := mb[k]; !ok || !jsonEqual(v, w) {
			out = append(out, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestRoundTripDuckDB(t *testing.T) {
	db, err := dbfile.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := store.Open(t.Context(), store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	roundTrip(t, s, richEvents())
}

func TestRoundTripClickHouse(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := chstore.Open(ctx, chstore.Config{Addrs: c.Addrs(), Database: "evidence", Username: c.User(), Password: c.Password()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	roundTrip(t, s, richEvents())
}

// TestWriteAheadClickHouse: with the ClickHouse engine the leaf goes first
// (no hook before its commit); a batch whose leaf is logged but which the
// server does not store (it was killed) is stored by the replay under other
// leaves. Every stored event is stored once and is in a leaf; the failed
// batch's events are in two.
func TestWriteAheadClickHouse(t *testing.T) {
	c := chtest.Start(t, chtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ch, err := chstore.Open(ctx, chstore.Config{Addrs: c.Addrs(), Database: "evidence", Username: c.User(), Password: c.Password()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	if _, ok := any(ch).(evidence.PreCommitAppender); ok {
		t.Fatal("chstore has AppendMarkedBefore: this test is of the engine without it")
	}
	db, _ := openDB(t)
	l := openLog(t, db)
	s := evidence.NewStore(ch, l)
	events := batch(0, 20)
	if err := s.AppendMarked(ctx, events[:10], "spool", []byte("10")); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	short, cancelShort := context.WithTimeout(ctx, 10*time.Second)
	err = s.AppendMarked(short, events[10:], "spool", []byte("20"))
	cancelShort()
	if err == nil {
		t.Fatal("a batch stored by a killed server")
	}
	if size, _ := l.Size(ctx); size != 2 {
		t.Fatalf("%d leaves after the failed batch, want 2: its leaf comes first", size)
	}
	c.Restart(0)
	// The replay, from the mark, in another grouping.
	for _, part := range [][2]int{{10, 15}, {15, 20}} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			err := s.AppendMarked(ctx, events[part[0]:part[1]], "spool", []byte(fmt.Sprint(part[1])))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replaying events %d to %d after the restart: %v", part[0], part[1]-1, err)
			}
		}
	}
	if mark, err := s.Mark(ctx, "spool"); err != nil || string(mark) != "20" {
		t.Fatalf("mark %q, %v; want 20", mark, err)
	}
	size, _ := l.Size(ctx)
	logged := loggedEvents(t, l, size)
	stored := storedEvents(t, ch)
	if len(stored) != len(events) {
		t.Fatalf("%d distinct events stored, want %d", len(stored), len(events))
	}
	for h, n := range stored {
		if n != 1 || logged[h] == 0 {
			t.Errorf("event %x stored %d times, in %d leaves", h[:4], n, logged[h])
		}
	}
	if a, b := logged[evidence.EventHash(&events[0])], logged[evidence.EventHash(&events[10])]; a != 1 || b != 2 {
		t.Errorf("event 0 in %d leaves (want 1), event 10 in %d (want 2: the failed batch's and the replay's)", a, b)
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
