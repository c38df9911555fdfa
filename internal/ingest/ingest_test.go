package ingest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/spool"
)

type noZones struct{}

func (noZones) Zone(string) (string, string, string, bool) { return "", "", "", false }

// TestIngestLeavesRoomForSinks: once the spool holds half its limit, the
// ingest endpoint answers busy and records nothing more, so that the live
// sinks never drop events for a sensor's backfill; nothing is counted as
// dropped, since the sensor sends again.
func TestIngestLeavesRoomForSinks(t *testing.T) {
	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), MaxBytes: 1 << 20, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	pipe, err := pipeline.New(pipeline.Config{Spool: sp, SpoolMaxBytes: 1 << 20, Store: noStore{}})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := classify.New(classify.Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := New(Config{Pipeline: pipe, Spool: sp, Zones: noZones{}, Classifier: rules, Busy: SpoolBusy(sp, 1<<20)})
	evs := make([]event.Event, 30_000)
	for i := range evs {
		evs[i] = event.Event{Time: time.Now(), Protocol: event.ProtoHTTP, SrcIP: netip.MustParseAddr("127.0.0.9"),
			HTTPPath: "/x.htm", PayloadHead: make([]byte, 40)}
	}
	res, err := in.Ingest(context.Background(), "s1", evs)
	if !errors.Is(err, api.ErrBusy) || res.Accepted == 0 || res.Accepted == len(evs) {
		t.Fatalf("ingest into a small spool: %+v, %v; want some accepted, then busy", res, err)
	}
	// (The ingester looks every 1,024 events.)
	if st := sp.Stats(); st.Bytes > 1<<20/2+128<<10 {
		t.Errorf("the ingest filled the spool to %d bytes of 1 MiB", st.Bytes)
	}
	if st := pipe.Stats(); st.Dropped != 0 || st.Recorded != uint64(res.Accepted) {
		t.Errorf("pipeline stats %+v after %d accepted", st, res.Accepted)
	}
	// The sinks still have room.
	if !pipe.Record(&evs[0]) {
		t.Error("a sink's event was dropped")
	}
}

// noStore is a store that is never written: the test's pipeline does not
// run.
type noStore struct{}

func (noStore) AppendMarked(context.Context, []event.Event, string, []byte) error { return nil }
func (noStore) Mark(context.Context, string) ([]byte, error)                      { return nil, nil }
