package uplink_test

import (
	"bytes"
	"testing"

	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/uplink"
)

// FuzzParseMark feeds the reader of the mark file (a file on disk, which
// a crash or a person may have damaged): it never panics, and what it
// accepts encodes back to the same bytes.
func FuzzParseMark(f *testing.F) {
	good := uplink.AppendMark(nil, spool.ID{1, 2, 3}, spool.Pos{Segment: 7, Offset: 4096})
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte("TDUM\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, p, err := uplink.ParseMark(b)
		if err != nil {
			return
		}
		if again := uplink.AppendMark(nil, id, p); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which encodes back as %x", b, again)
		}
	})
}

func TestMarkRoundTrip(t *testing.T) {
	id, p := spool.ID{9, 8, 7}, spool.Pos{Segment: 1 << 40, Offset: 123456}
	gotID, gotP, err := uplink.ParseMark(uplink.AppendMark(nil, id, p))
	if err != nil || gotID != id || gotP != p {
		t.Fatalf("%v %v %v", gotID, gotP, err)
	}
}
