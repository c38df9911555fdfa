package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/takedown-project/takedown/internal/spool"
)

// A Batch is what one events message carries: spool records of one
// sensor's spool, in spool order, each with the position it ends at.
//
// Binary form (integers are unsigned varints unless said otherwise):
//
//	magic      "TDEB"
//	version    1 byte: 1
//	sensor     length, bytes
//	spool      16 bytes: the spool's identity (spool.ID)
//	count      the number of records
//	records    count times: end segment, end offset, length, bytes
//	crc        4 bytes, big-endian: CRC-32C of all the above
//
// A record's bytes are an event in its binary form (event.AppendBinary),
// as the spool keeps it; the batch does not look inside them.
type Batch struct {
	Sensor  string
	Spool   spool.ID
	Records []Record
}

// A Record is one spool record and the position right after it.
type Record struct {
	End  spool.Pos
	Data []byte
}

const (
	batchMagic   = "TDEB"
	batchVersion = 1
	// MaxRecordBytes bounds one record in a batch; spool records are far
	// smaller.
	MaxRecordBytes = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MsgID is the message id of the batch: the sensor, its spool and the
// positions of its first and last records. A retry of the same records
// has the same id, and JetStream drops it within its duplicate window.
func (b *Batch) MsgID() string {
	if len(b.Records) == 0 {
		return b.Sensor + "." + b.Spool.String()
	}
	return fmt.Sprintf("%s.%s.%v-%v", b.Sensor, b.Spool, b.Records[0].End, b.Records[len(b.Records)-1].End)
}

// AppendBinary appends the binary form of b to dst.
func (b *Batch) AppendBinary(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, batchMagic...)
	dst = append(dst, batchVersion)
	dst = binary.AppendUvarint(dst, uint64(len(b.Sensor)))
	dst = append(dst, b.Sensor...)
	dst = append(dst, b.Spool[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(b.Records)))
	for _, r := range b.Records {
		dst = binary.AppendUvarint(dst, r.End.Segment)
		dst = binary.AppendUvarint(dst, uint64(r.End.Offset))
		dst = binary.AppendUvarint(dst, uint64(len(r.Data)))
		dst = append(dst, r.Data...)
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// EncodedLen is the size of a record in the binary form, for a publisher
// that fills a message up to a size.
func (r Record) EncodedLen() int {
	return uvarintLen(r.End.Segment) + uvarintLen(uint64(r.End.Offset)) + uvarintLen(uint64(len(r.Data))) + len(r.Data)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// ErrBatch is wrapped by every error of DecodeBatch.
var ErrBatch = errors.New("not a valid event batch")

// DecodeBatch reads the binary form of a batch. The records' Data point
// into b. It checks the form, the checksum, that the sensor is a valid id
// and that the positions grow; it does not look into the records.
func DecodeBatch(b []byte) (*Batch, error) {
	bad := func(format string, args ...any) (*Batch, error) {
		return nil, fmt.Errorf("%w: %s", ErrBatch, fmt.Sprintf(format, args...))
	}
	if len(b) < len(batchMagic)+1+1+16+1+4 {
		return bad("%d bytes is too short", len(b))
	}
	if string(b[:4]) != batchMagic {
		return bad("magic %q, want %q", b[:4], batchMagic)
	}
	if b[4] != batchVersion {
		return bad("version %d, want %d", b[4], batchVersion)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(b)-4:]); got != want {
		return bad("checksum %08x, want %08x", got, want)
	}
	off := 5
	uv := func(what string) (uint64, bool) {
		v, n := binary.Uvarint(body[off:])
		if n <= 0 {
			return 0, false
		}
		off += n
		return v, true
	}
	n, ok := uv("sensor length")
	if !ok || n > uint64(len(body)-off) {
		return bad("sensor: truncated at byte %d", off)
	}
	out := &Batch{Sensor: string(body[off : off+int(n)])}
	off += int(n)
	if !ValidSensorID(out.Sensor) {
		return bad("sensor %q is not a valid sensor id", out.Sensor)
	}
	if len(body)-off < len(out.Spool) {
		return bad("spool id: truncated at byte %d", off)
	}
	copy(out.Spool[:], body[off:])
	off += len(out.Spool)
	count, ok := uv("count")
	// Each record takes at least 3 bytes.
	if !ok || count > uint64(len(body)-off)/3 {
		return bad("record count: truncated or %d too large at byte %d", count, off)
	}
	out.Records = make([]Record, 0, count)
	var prev spool.Pos
	for i := range int(count) {
		seg, ok1 := uv("segment")
		o, ok2 := uv("offset")
		l, ok3 := uv("length")
		if !ok1 || !ok2 || !ok3 || o > 1<<62 {
			return bad("record %d: truncated header at byte %d", i, off)
		}
		if l > MaxRecordBytes || l > uint64(len(body)-off) {
			return bad("record %d: length %d at byte %d runs past the end or the limit", i, l, off)
		}
		end := spool.Pos{Segment: seg, Offset: int64(o)}
		if i > 0 && end.Compare(prev) <= 0 {
			return bad("record %d: position %v does not follow %v", i, end, prev)
		}
		prev = end
		out.Records = append(out.Records, Record{End: end, Data: body[off : off+int(l)]})
		off += int(l)
	}
	if off != len(body) {
		return bad("%d bytes after the last record", len(body)-off)
	}
	return out, nil
}
