package api

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
)

func FuzzHostQuery(f *testing.F) {
	for _, s := range []string{
		"", "by=day,country", "from=2010-02-22&to=2010-03-01&family=waledac", "asn=AS64500&country=de&limit=5",
		"by=planet", "from=x", "country=ZZZ", "asn=99999999999", "limit=-1", "by=day,,asn",
		"all=true", "all=0", "all=maybe",
		"to=3000-01-01", "from=1000-01-01T00:00:00Z", "to=1678-01-02", "from=2262-01-01T00:00:00.000000001Z&to=2262-02-01",
		"from=1678-01-01&to=2262-01-01", "from=0000-01-01&to=9999-12-31T23:59:59Z",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := HostQueryFromValues(v, now)
		if err != nil {
			if _, ok := err.(badRequest); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if !q.From.Before(q.To) {
			t.Fatalf("accepted from %v ≥ to %v", q.From, q.To)
		}
		if q.From.Before(eventstore.MinTime) || q.To.After(eventstore.MaxTime) {
			t.Fatalf("accepted from %v to %v, outside the times the store can be asked about", q.From, q.To)
		}
		again, err := HostQueryFromValues(HostQueryValues(q), now)
		if err != nil {
			t.Fatalf("re-encoded query %v rejected: %v", HostQueryValues(q), err)
		}
		if !reflect.DeepEqual(q, again) {
			t.Fatalf("round trip: %+v != %+v", q, again)
		}
	})
}

// TestHostQueryInfectedByDefault: the API counts infected hosts, as the
// dashboard does, unless all=true asks for every source address.
func TestHostQueryInfectedByDefault(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for raw, want := range map[string]bool{"": true, "all=false": true, "all=0": true, "all=true": false, "all=1": false} {
		v, _ := url.ParseQuery(raw)
		q, err := HostQueryFromValues(v, now)
		if err != nil || q.Infected != want {
			t.Errorf("%q: Infected %v (%v), want %v", raw, q.Infected, err, want)
		}
	}
	if _, err := HostQueryFromValues(url.Values{"all": {"maybe"}}, now); err == nil || !strings.Contains(err.Error(), `parameter all: "maybe"`) {
		t.Errorf("all=maybe: %v", err)
	}
}
