package servedsync

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzParseMeta feeds the parser of object descriptions (what a follower
// reads from the object store's meta subject) and of the delta headers
// arbitrary bytes: it must not panic, and what it accepts must hold what
// the follower relies on.
func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(`{"name":"full","nuid":"AbC123","size":10,"chunks":1,"digest":"`+digestOf([]byte("0123456789"))+
		`","metadata":{"serial":"7","seq":"3","zones":"2"}}`), "7", "8")
	f.Add([]byte(`{"name":"rules","nuid":"X","size":0,"chunks":0,"digest":"`+emptyDigest+`"}`), "", "")
	f.Add([]byte(`{"name":"rules","deleted":true}`), "4294967295", "0")
	f.Add([]byte(`{"name":"full","nuid":"a.>","size":1,"chunks":1}`), "-1", "x")
	f.Fuzz(func(t *testing.T, b []byte, from, to string) {
		o, err := parseMeta(b)
		if err == nil && !o.Deleted {
			if !token(o.NUID) || strings.ContainsAny(o.NUID, ".*> ") {
				t.Fatalf("NUID %q accepted", o.NUID)
			}
			if o.Size > maxObjectBytes || (o.Size == 0) != (o.Chunks == 0) || uint64(o.Chunks) > o.Size {
				t.Fatalf("size %d in %d chunks accepted", o.Size, o.Chunks)
			}
			if o.Name == FullObject && o.Serial == 0 {
				t.Fatal("a full object of serial 0 accepted")
			}
		}
		h := nats.Header{}
		h.Set(HeaderFrom, from)
		h.Set(HeaderTo, to)
		deltaSerials(h)
	})
}
