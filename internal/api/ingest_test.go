package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/event"
)

// sink is an IngestFunc that keeps what it gets and refuses, once, to
// take more than busyAt events (as a full spool would).
type sink struct {
	mu      sync.Mutex
	got     []event.Event
	sensors map[string]int
	busyAt  int
}

func (s *sink) ingest(_ context.Context, sensor string, evs []event.Event) (api.IngestResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sensors == nil {
		s.sensors = map[string]int{}
	}
	n := len(evs)
	var err error
	if s.busyAt > 0 && n > s.busyAt {
		n, err = s.busyAt, api.ErrBusy
		s.busyAt = 0
	}
	s.got = append(s.got, evs[:n]...)
	s.sensors[sensor] += n
	return api.IngestResult{Accepted: n}, err
}

func newIngestServer(t *testing.T, s *sink) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(api.New(api.Config{Token: token, Ingest: s.ingest}))
	t.Cleanup(srv.Close)
	return srv
}

func testEvents(n int) []event.Event {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{
			Time: base.Add(time.Duration(i) * time.Second), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), SrcPort: uint16(1024 + i),
			Domain: fmt.Sprintf("n%d.example", i%7), HTTPMethod: "POST", HTTPPath: "/a.htm",
			PayloadHead: []byte(strings.Repeat("x", i%300)), Bytes: int64(i % 300),
		}
	}
	return out
}

// TestIngestRoundTrip sends events through the client in several requests,
// one answered busy, and checks that each arrives once and unchanged.
func TestIngestRoundTrip(t *testing.T) {
	s := &sink{busyAt: 20_000}
	srv := newIngestServer(t, s)
	c := api.NewClient(srv.URL, token, "")
	evs := testEvents(120_000)
	res, err := c.Ingest(context.Background(), "simulated", evs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != len(evs) || len(s.got) != len(evs) || s.sensors["simulated"] != len(evs) {
		t.Fatalf("accepted %d, server got %d (%v), want %d", res.Accepted, len(s.got), s.sensors, len(evs))
	}
	for i := range evs {
		a, b := event.AppendBinary(nil, &evs[i]), event.AppendBinary(nil, &s.got[i])
		if string(a) != string(b) {
			t.Fatalf("event %d changed on the way:\n sent %+v\n got  %+v", i, evs[i], s.got[i])
		}
	}
}

func TestIngestFraming(t *testing.T) {
	// Records of every length class of the uvarint prefix (1 and 2 bytes).
	var buf []byte
	evs := testEvents(300)
	for i := range evs {
		buf = api.AppendIngest(buf, &evs[i])
	}
	var d event.Decoder
	for i, off := 0, 0; i < len(evs); i++ {
		n, k := int(buf[off]), 1
		if n >= 0x80 {
			n, k = int(buf[off]&0x7f)|int(buf[off+1])<<7, 2
		}
		var e event.Event
		if err := d.Decode(buf[off+k:off+k+n], &e); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if e.SrcPort != evs[i].SrcPort || string(e.PayloadHead) != string(evs[i].PayloadHead) {
			t.Fatalf("record %d decodes to %+v", i, e)
		}
		off += k + n
	}
}

// TestIngestBadInput checks that a bad request names what is wrong and
// records nothing of it.
func TestIngestBadInput(t *testing.T) {
	s := &sink{}
	srv := newIngestServer(t, s)
	good := api.AppendIngest(nil, &testEvents(1)[0])
	future := testEvents(1)[0]
	future.Time = time.Now().Add(time.Hour)
	ancient := testEvents(1)[0]
	ancient.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	noIP := testEvents(1)[0]
	noIP.SrcIP = netip.Addr{}
	bin := func(evs ...event.Event) string {
		var b []byte
		for i := range evs {
			b = api.AppendIngest(b, &evs[i])
		}
		return string(b)
	}
	for _, tc := range []struct {
		name, query, ctype, body string
		status                   int
		want                     string
	}{
		{"no sensor", "", api.EventsContentType, string(good), 400, "sensor"},
		{"bad sensor", "?sensor=a%20b", api.EventsContentType, string(good), 400, `"a b"`},
		{"bad type", "?sensor=s1", "text/plain", string(good), 400, `"text/plain"`},
		{"cut record", "?sensor=s1", api.EventsContentType, string(good) + string(good[:len(good)-3]), 400, "event 2"},
		{"no source ip", "?sensor=s1", api.EventsContentType, bin(testEvents(2)[0], noIP), 400, "event 2: event: source ip is not set"},
		{"future", "?sensor=s1", api.EventsContentType, bin(future), 400, "in the future"},
		{"before the times an event may have", "?sensor=s1", api.EventsContentType, bin(ancient), 400, "event 1: event: time 1600-01-01T00:00:00Z is not between 1970-01-01T00:00:00Z and 2261-12-31T23:59:59Z"},
		{"bad json", "?sensor=s1", "application/x-ndjson", "{\"time.source\":\"2026-11-01T00:00:00Z\",\"source.ip\":\"127.0.0.1\",\"protocol.application\":\"http\"}\n{nope\n", 400, "body:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/v1/ingest"+tc.query, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", tc.ctype)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b strings.Builder
			_, _ = fmt.Fprint(&b, resp.Status)
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			body := strings.ReplaceAll(string(buf[:n]), `\"`, `"`)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %s %s; want %d naming %q", tc.name, resp.Status, body, tc.status, tc.want)
			}
		})
	}
	if len(s.got) != 0 {
		t.Errorf("bad requests recorded %d events", len(s.got))
	}
	code, _ := do(t, srv, "POST", "/v1/ingest?sensor=s1", string(good), false)
	if code != 401 {
		t.Errorf("ingest without a token: %d", code)
	}
}
