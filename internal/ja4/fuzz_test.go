package ja4

import "testing"

// FuzzParse checks that the parsers never panic and that a hello that
// parses always fingerprints to the JA4 shape.
func FuzzParse(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.msg)
		f.Add(records(v.msg, 200))
	}
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if msg, complete, err := HandshakeFromRecords(b); err == nil && complete {
			b = msg
		}
		h, err := Parse(b)
		if err != nil {
			return
		}
		fp := h.JA4(TCP)
		if len(fp) != 36 || fp[10] != '_' || fp[23] != '_' {
			t.Fatalf("bad JA4 %q", fp)
		}
		_ = h.JA4R(TCP)
		_ = h.JA4RO(TCP)
		_ = h.ServerName()
	})
}
