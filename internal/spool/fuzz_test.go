package spool

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"testing"
)

// readSegment decodes data as the body of a closed segment (from offset
// 0, as for a damaged header) with the reader's code, reading rsize bytes
// at a time. Every byte must end up in a record or in a damaged stretch.
func readSegment(t *testing.T, data []byte, rsize int) (recs [][]byte, dmg []Damage) {
	t.Helper()
	sr := &segReader{src: bytes.NewReader(data), limit: int64(len(data)), sealed: true, bad: -1, rsize: rsize}
	covered := int64(0)
	report := func(d Damage) {
		if d.Offset != covered || d.Length <= 0 {
			t.Fatalf("damage %+v, want it to start at %d", d, covered)
		}
		covered += d.Length
		dmg = append(dmg, d)
	}
	for {
		rec, end, err := sr.next(report)
		if err == io.EOF {
			if end != int64(len(data)) || covered != end {
				t.Fatalf("EOF at %d, %d bytes covered, %d in all", end, covered, len(data))
			}
			return recs, dmg
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		start := end - int64(recHeaderLen+len(rec))
		if start != covered || end > int64(len(data)) {
			t.Fatalf("record [%d, %d) after %d covered bytes", start, end, covered)
		}
		if !bytes.Equal(appendRecord(nil, rec), data[start:end]) {
			t.Fatalf("record at %d does not encode to its bytes", start)
		}
		covered = end
		recs = append(recs, bytes.Clone(rec))
	}
}

// encodeAll returns the records encoded back to back.
func encodeAll(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = appendRecord(b, r)
	}
	return b
}

// FuzzDecode feeds arbitrary bytes to the record decoder, as the content
// of a segment, read in pieces of every size class.
func FuzzDecode(f *testing.F) {
	good := encodeAll([]byte("hello"), nil, bytes.Repeat([]byte{0xF1, 0x5B, 0x0C, 0xA7}, 8), payload(1, 99))
	f.Add(good, uint8(0))
	f.Add(good[:len(good)-3], uint8(5))
	f.Add(append(bytes.Clone(good[:20]), good...), uint8(1))
	flipped := bytes.Clone(good)
	flipped[6] ^= 0x40
	f.Add(flipped, uint8(13))
	f.Add(append(appendSegmentHeader(nil, 1), good...), uint8(0))
	f.Add(recMarker[:], uint8(2))
	f.Add([]byte{0xF1, 0x5B, 0x0C, 0xA7, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, uint8(3))
	f.Add([]byte{}, uint8(0))

	f.Fuzz(func(t *testing.T, data []byte, rs uint8) {
		readSegment(t, data, int(rs)) // rs 0: the real read size
		if len(data) >= 4 {
			l := binary.LittleEndian.Uint32(data)
			if got, want := crcLength(l), crc32.Update(0, castagnoli, data[:4]); got != want {
				t.Fatalf("crcLength(%#x) = %#x, want %#x", l, got, want)
			}
		}
		// The decoder alone, incomplete or final.
		for _, final := range []bool{false, true} {
			rec, n, st := decodeRecord(data, final)
			switch st {
			case decOK:
				if n > len(data) || !bytes.Equal(appendRecord(nil, rec), data[:n]) {
					t.Fatalf("decoded %d bytes that do not re-encode", n)
				}
			case decShort:
				if final {
					t.Fatal("short with final data")
				}
			}
		}
	})
}

// FuzzResync writes records, changes one byte, and checks that exactly
// the record holding that byte is lost. Payloads are 7-bit, so the marker
// (first byte 0xF1) can only appear where a record starts.
func FuzzResync(f *testing.F) {
	f.Add([]byte("one\x00two\x00three\x00\x00four"), uint16(20), uint8(0x01), uint8(0))
	f.Add([]byte("a\x00b\x00c"), uint16(0), uint8(0xff), uint8(3))
	f.Add([]byte("abc\x00defghijklmnop\x00q"), uint16(17), uint8(0x80), uint8(7))
	f.Fuzz(func(t *testing.T, spec []byte, at uint16, x uint8, rs uint8) {
		if x == 0 {
			return
		}
		var recs [][]byte
		for r := range bytes.SplitSeq(spec, []byte{0}) {
			for i := range r {
				r[i] &= 0x7f
			}
			recs = append(recs, r)
		}
		data := encodeAll(recs...)
		pos := int(at) % len(data)
		data[pos] ^= x

		got, dmg := readSegment(t, data, int(rs))
		var want [][]byte
		start, victim := 0, -1
		for i, r := range recs {
			end := start + recHeaderLen + len(r)
			if pos >= start && pos < end {
				victim = i
				if len(dmg) != 1 || dmg[0].Offset != int64(start) || dmg[0].Length != int64(end-start) {
					t.Fatalf("byte %d of record %d [%d, %d) changed: damage %+v", pos, i, start, end, dmg)
				}
			} else {
				want = append(want, r)
			}
			start = end
		}
		if victim < 0 {
			t.Fatal("changed byte in no record")
		}
		if len(got) != len(want) {
			t.Fatalf("%d records, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("record %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}
