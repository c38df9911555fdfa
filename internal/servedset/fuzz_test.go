package servedset

import (
	"bytes"
	"testing"
)

// fuzzSeeds are the binary forms of the tests' snapshots and deltas.
func fuzzSeeds(f *testing.F) {
	s := mustApply(f, Empty(), testFull())
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(mustMarshal(f, testFull()))
	f.Add(mustMarshal(f, &Delta{From: 100, To: 101}))
	f.Add(mustMarshal(f, &Delta{From: 100, To: 101, Remove: []string{"example.com"}, Put: []Zone{{Name: "x.example", Case: "other"}}}))
	f.Add(mustMarshal(f, &Delta{From: 100, To: 102, Cases: []Case{{Name: "new", Family: "dga"}}, Put: []Zone{{Name: "Bad Name", Case: "new"}}}))
	f.Add(mustMarshal(f, &Delta{From: 100, To: 103, Sinkhole: &Sinkhole{}}))
	keyed := testFull()
	keyed.Cases[0].Keys = testKeys(f)
	keyed.Cases[1].Keys = testKeys(f)[1:2]
	keyed.Cases[1].Keys[0].Signer = nil
	f.Add(mustMarshal(f, keyed))
	f.Add([]byte(magicDelta))
	f.Add([]byte("TDSF\x01\x00\x00\x00\x00\x00\x00\x00\x01\x01"))
}

// withCRC returns b with its last four bytes replaced by the CRC of the
// rest, so that the fuzzer's changes reach the decoder past the checksum.
func withCRC(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	var e encoder
	e.b = append(e.b, b[:len(b)-4]...)
	return e.finish()
}

// FuzzUnmarshalDelta feeds bytes to the delta decoder (as they are, and
// with a valid CRC): it must not panic, whatever it accepts must apply or
// be refused with an error, and what applies must survive a round trip.
func FuzzUnmarshalDelta(f *testing.F) {
	fuzzSeeds(f)
	base := mustApply(f, Empty(), testFull())
	f.Fuzz(func(t *testing.T, b []byte) {
		unmarshalDelta(t, base, b)
		unmarshalDelta(t, base, withCRC(b))
	})
}

func unmarshalDelta(t *testing.T, base *Snapshot, b []byte) {
	d, err := UnmarshalDelta(b)
	if err != nil {
		return
	}
	from := base
	if d.From == 0 {
		from = Empty()
	}
	d.From = from.Serial()
	n, err := from.Apply(d)
	if err != nil {
		return
	}
	back, err := UnmarshalDelta(mustMarshal(t, d))
	if err != nil {
		t.Fatalf("a delta that applied does not decode again: %v", err)
	}
	again, err := from.Apply(back)
	if err != nil {
		t.Fatalf("a delta that applied does not apply after a round trip: %v", err)
	}
	if diff := sameSnapshot(n, again); diff != "" {
		t.Fatalf("round trip: %s", diff)
	}
}

// FuzzReadFull feeds bytes to the full-form decoder (as they are, and with
// a valid CRC): it must not panic, and a snapshot it reads must write and
// read back the same.
func FuzzReadFull(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		readFull(t, b)
		readFull(t, withCRC(b))
	})
}

func readFull(t *testing.T, b []byte) {
	s, err := ReadFull(b)
	if err != nil {
		return
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFull(buf.Bytes())
	if err != nil {
		t.Fatalf("a snapshot read does not read back: %v", err)
	}
	if diff := sameSnapshot(s, back); diff != "" {
		t.Fatalf("round trip: %s", diff)
	}
}
