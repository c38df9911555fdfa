package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Sizes and constants of the on-disk format; see the package documentation.
const (
	// headerLen is the size of a segment header.
	headerLen = 16
	// formatVersion is the version written in segment headers.
	formatVersion = 1
	// recHeaderLen is the size of a record header: marker, length, CRC.
	recHeaderLen = 12
	// MaxRecordBytes is the largest record Append accepts.
	MaxRecordBytes = 16 << 20
)

// segMagic opens every segment file.
var segMagic = [4]byte{'T', 'D', 'S', 'P'}

// recMarker opens every record; the reader looks for it to find the next
// record after damage. Its bytes are not ASCII and not a small integer, so
// they are rare in event payloads; a false match is rejected by the CRC.
var recMarker = [4]byte{0xF1, 0x5B, 0x0C, 0xA7}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordHeader returns the 12-byte header of a record with payload rec.
func recordHeader(rec []byte) [recHeaderLen]byte {
	var h [recHeaderLen]byte
	copy(h[:4], recMarker[:])
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(rec)))
	c := crc32.Update(crcLength(uint32(len(rec))), castagnoli, rec)
	binary.LittleEndian.PutUint32(h[8:12], c)
	return h
}

// crcLength is the CRC-32C of a little-endian length field, computed
// byte by byte: handing crc32.Update a slice of h would move h to the heap.
func crcLength(l uint32) uint32 {
	c := ^uint32(0)
	for range 4 {
		c = castagnoli[byte(c)^byte(l)] ^ c>>8
		l >>= 8
	}
	return ^c
}

// appendRecord appends the encoded record rec to dst.
func appendRecord(dst, rec []byte) []byte {
	h := recordHeader(rec)
	return append(append(dst, h[:]...), rec...)
}

// decodeStatus is the outcome of decodeRecord.
type decodeStatus uint8

const (
	decOK    decodeStatus = iota // a valid record
	decShort                     // maybe valid, needs more bytes
	decBad                       // no valid record starts here
)

// decodeRecord decodes the record at the start of b. final tells that b
// holds everything up to the end of the segment, so a record that does
// not fit is damaged rather than incomplete. On decOK it returns the
// payload (a sub-slice of b) and the encoded length.
func decodeRecord(b []byte, final bool) (rec []byte, n int, st decodeStatus) {
	if len(b) < len(recMarker) {
		if !final && bytes.HasPrefix(recMarker[:], b) {
			return nil, 0, decShort
		}
		return nil, 0, decBad
	}
	if [4]byte(b[:4]) != recMarker {
		return nil, 0, decBad
	}
	if len(b) < recHeaderLen {
		if final {
			return nil, 0, decBad
		}
		return nil, 0, decShort
	}
	l := binary.LittleEndian.Uint32(b[4:8])
	if l > MaxRecordBytes {
		return nil, 0, decBad
	}
	n = recHeaderLen + int(l)
	if len(b) < n {
		if final {
			return nil, 0, decBad
		}
		return nil, 0, decShort
	}
	c := crc32.Update(0, castagnoli, b[4:8])
	c = crc32.Update(c, castagnoli, b[recHeaderLen:n])
	if c != binary.LittleEndian.Uint32(b[8:12]) {
		return nil, 0, decBad
	}
	return b[recHeaderLen:n], n, decOK
}

// appendSegmentHeader appends the header of segment seq to dst.
func appendSegmentHeader(dst []byte, seq uint64) []byte {
	dst = append(dst, segMagic[:]...)
	dst = append(dst, formatVersion, 0, 0, 0)
	return binary.LittleEndian.AppendUint64(dst, seq)
}

// errVersion reports a segment written by another version of the format.
var errVersion = errors.New("unsupported segment format version")

// parseSegmentHeader checks a segment header. It returns errVersion for a
// well-formed header of another format version.
func parseSegmentHeader(b []byte) (seq uint64, err error) {
	if len(b) < headerLen {
		return 0, fmt.Errorf("short segment header (%d bytes)", len(b))
	}
	if [4]byte(b[:4]) != segMagic {
		return 0, fmt.Errorf("bad segment magic %q", b[:4])
	}
	if b[4] != formatVersion {
		return 0, fmt.Errorf("%w %d", errVersion, b[4])
	}
	return binary.LittleEndian.Uint64(b[8:16]), nil
}

// segmentName is the file name of segment seq.
func segmentName(seq uint64) string { return fmt.Sprintf("%016x.seg", seq) }

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil && seq > 0
}

// Pos is a position in the spool: just after a record, Offset bytes into
// segment Segment. The zero Pos is before every record. Positions are
// comparable and ordered by Compare.
type Pos struct {
	Segment uint64
	Offset  int64
}

// posLen is the size of a Pos in binary form.
const posLen = 16

// String returns "segment:offset".
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Compare returns -1, 0 or +1 as p is before, at or after q.
func (p Pos) Compare(q Pos) int {
	switch {
	case p.Segment != q.Segment:
		if p.Segment < q.Segment {
			return -1
		}
		return 1
	case p.Offset < q.Offset:
		return -1
	case p.Offset > q.Offset:
		return 1
	}
	return 0
}

// AppendBinary appends the 16-byte binary form of p (segment and offset,
// big-endian, so that the bytes sort like the positions).
func (p Pos) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, p.Segment)
	return binary.BigEndian.AppendUint64(b, uint64(p.Offset)), nil
}

// MarshalBinary returns the 16-byte binary form of p.
func (p Pos) MarshalBinary() ([]byte, error) { return p.AppendBinary(make([]byte, 0, posLen)) }

// UnmarshalBinary sets p from its binary form.
func (p *Pos) UnmarshalBinary(b []byte) error {
	if len(b) != posLen {
		return fmt.Errorf("spool position: want %d bytes, got %d", posLen, len(b))
	}
	off := binary.BigEndian.Uint64(b[8:])
	if off > 1<<62 {
		return fmt.Errorf("spool position: offset %d out of range", off)
	}
	p.Segment, p.Offset = binary.BigEndian.Uint64(b[:8]), int64(off)
	return nil
}
