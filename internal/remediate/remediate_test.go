package remediate

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/deliver"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/report"
	"github.com/takedown-project/takedown/internal/scope"
)

type subs []registry.Subscriber

func (s subs) ListSubscribers(context.Context) ([]registry.Subscriber, error) { return s, nil }
func (s subs) GetSubscriber(_ context.Context, name string) (registry.Subscriber, error) {
	for _, x := range s {
		if x.Name == name {
			return x, nil
		}
	}
	return registry.Subscriber{}, registry.ErrNotFound
}
func (subs) RecordAccess(context.Context, registry.Change, string, string, any) error { return nil }

// hosts is a store with one infected host in each of two networks.
type hosts struct{}

func (hosts) HostRows(_ context.Context, q eventstore.HostRowQuery, fn func(*eventstore.HostRow) error) error {
	for i, asn := range []uint32{64500, 64501} {
		r := eventstore.HostRow{IP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Family: "waledac",
			FirstSeen: q.From.Add(time.Hour), LastSeen: q.From.Add(2 * time.Hour), Events: 3,
			Protocol: event.ProtoHTTP, ASN: asn, Country: "DE"}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

func (hosts) DailyHosts(context.Context, eventstore.DailyHostQuery) ([]eventstore.DailyHosts, error) {
	return nil, nil
}

// mails records the keys it is asked to deliver.
type mails struct {
	mu   sync.Mutex
	sent []deliver.Key
}

func (m *mails) Deliver(_ context.Context, key deliver.Key, build func() (deliver.Message, error)) (deliver.Result, error) {
	if _, err := build(); err != nil {
		return deliver.Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, key)
	return deliver.Result{Sent: true}, nil
}
func (m *mails) Resend(ctx context.Context, key deliver.Key, build func() (deliver.Message, error)) (deliver.Result, error) {
	return m.Deliver(ctx, key, build)
}
func (*mails) MarkSent(context.Context, deliver.Key, string) (deliver.Record, error) {
	return deliver.Record{}, nil
}
func (*mails) List(context.Context, deliver.Filter) ([]deliver.Record, error) { return nil, nil }
func (*mails) Get(context.Context, deliver.Key) (deliver.Record, bool, error) {
	return deliver.Record{}, false, nil
}

func (m *mails) names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, k := range m.sent {
		out = append(out, k.Subscriber+"/"+k.Day.Format(time.DateOnly)+"/"+k.Format)
	}
	return out
}

// TestSendDue is the daily scheduler: each subscriber's report of the day
// before goes out once its send time (UTC) has come, in each of its formats,
// once; a subscriber without contacts gets none.
func TestSendDue(t *testing.T) {
	scA, _ := scope.Parse([]string{"AS64500"}, nil, nil)
	scB, _ := scope.Parse([]string{"AS64501"}, nil, nil)
	reg := subs{
		{Name: "isp-a", Contacts: []string{"abuse@a.example"}, Scope: scA, Formats: []string{"csv", "json"}, SendAt: "06:00", TLP: "AMBER"},
		{Name: "isp-b", Contacts: []string{"abuse@b.example"}, Scope: scB, Formats: []string{"csv"}, SendAt: "09:30", TLP: "AMBER"},
		{Name: "quiet", Scope: scA, Formats: []string{"csv"}, SendAt: "00:00", TLP: "AMBER"},
	}
	m := &mails{}
	s := New(Config{Subscribers: reg, Store: hosts{}, Mail: m})
	ctx := context.Background()
	day := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	step := func(at string, want ...string) {
		t.Helper()
		hm, _ := time.Parse("15:04", at)
		now := day.Add(time.Duration(hm.Hour())*time.Hour + time.Duration(hm.Minute())*time.Minute)
		before := len(m.names())
		if err := s.sendDue(ctx, now); err != nil {
			t.Fatal(err)
		}
		if got := m.names()[before:]; !slices.Equal(got, want) {
			t.Fatalf("at %s: sent %v, want %v", at, got, want)
		}
	}
	step("05:59")
	step("06:00", "isp-a/2026-12-06/csv", "isp-a/2026-12-06/json")
	step("07:00")
	step("09:30", "isp-b/2026-12-06/csv")
	step("23:59")
	// Without a relay nothing is due.
	if err := New(Config{Subscribers: reg, Store: hosts{}}).sendDue(ctx, day.Add(12*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func (hosts) Scan(context.Context, eventstore.ScanQuery, func(*event.Event) error) error { return nil }

// TestFormatsAgree: a subscriber may choose every format the service
// makes, and no other.
func TestFormatsAgree(t *testing.T) {
	if !slices.Equal(registry.Formats, report.SubscriberFormats()) {
		t.Errorf("registry.Formats %v, report.SubscriberFormats %v", registry.Formats, report.SubscriberFormats())
	}
}
