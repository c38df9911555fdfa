package collect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/spool"
)

// The mark's binary form is documented in doc.go.
const (
	markMagic   = "TDCM"
	markVersion = 1
	// maxSpools is how many spools the mark remembers of one sensor: the
	// current one and the ones before it, so that a message of an earlier
	// spool that comes again (its acknowledgement was lost) after the
	// sensor's spool was replaced is still known as stored.
	maxSpools = 8
	// spoolMarkLen is the size of one spool's entry: its identity and the
	// position after its last stored record.
	spoolMarkLen = 16 + 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spoolMark is how far the store holds one spool of a sensor.
type spoolMark struct {
	id  spool.ID
	pos spool.Pos
}

// marks is what the collector has stored: per sensor, the position after
// the last stored record of each of its recent spools (most recent first),
// and the stream sequence of the last message stored.
type marks struct {
	seq     uint64
	sensors map[string][]spoolMark
}

func newMarks() *marks { return &marks{sensors: map[string][]spoolMark{}} }

// stored reports whether the record of sensor's spool id that ends at pos
// is stored already.
func (m *marks) stored(sensor string, id spool.ID, pos spool.Pos) bool {
	for _, s := range m.sensors[sensor] {
		if s.id == id {
			return pos.Compare(s.pos) <= 0
		}
	}
	return false
}

// advance records that the record of sensor's spool id that ends at pos
// is stored (or set aside). Its spool becomes the sensor's most recent
// one; a spool never seen before pushes the oldest out past maxSpools.
func (m *marks) advance(sensor string, id spool.ID, pos spool.Pos) {
	list := m.sensors[sensor]
	i := slices.IndexFunc(list, func(s spoolMark) bool { return s.id == id })
	switch {
	case i == 0:
		if pos.Compare(list[0].pos) > 0 {
			list[0].pos = pos
		}
		return
	case i > 0:
		if pos.Compare(list[i].pos) < 0 {
			pos = list[i].pos
		}
		list = slices.Delete(list, i, i+1)
	case len(list) >= maxSpools:
		list = list[:maxSpools-1]
	}
	m.sensors[sensor] = slices.Insert(list, 0, spoolMark{id: id, pos: pos})
}

// latest returns the sensor's most recent spool and the position after its
// last stored record.
func (m *marks) latest(sensor string) (spoolMark, bool) {
	if l := m.sensors[sensor]; len(l) > 0 {
		return l[0], true
	}
	return spoolMark{}, false
}

// appendBinary appends the binary form of m to dst.
func (m *marks) appendBinary(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, markMagic...)
	dst = append(dst, markVersion)
	dst = binary.BigEndian.AppendUint64(dst, m.seq)
	names := make([]string, 0, len(m.sensors))
	for name, l := range m.sensors {
		if len(l) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for _, name := range names {
		dst = binary.AppendUvarint(dst, uint64(len(name)))
		dst = append(dst, name...)
		l := m.sensors[name]
		dst = binary.AppendUvarint(dst, uint64(len(l)))
		for _, s := range l {
			dst = append(dst, s.id[:]...)
			dst, _ = s.pos.AppendBinary(dst)
		}
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// errMark is wrapped by every error of parseMark.
var errMark = errors.New("not a valid collector mark")

// parseMark reads the binary form of a mark. It accepts only what
// appendBinary writes: sensors in order, each once, with valid ids, one to
// maxSpools distinct spools each.
func parseMark(b []byte) (*marks, error) {
	bad := func(format string, args ...any) (*marks, error) {
		return nil, fmt.Errorf("%w: %s", errMark, fmt.Sprintf(format, args...))
	}
	if len(b) < len(markMagic)+1+8+1+4 {
		return bad("%d bytes is too short", len(b))
	}
	if string(b[:4]) != markMagic {
		return bad("magic %q, want %q", b[:4], markMagic)
	}
	if b[4] != markVersion {
		return bad("version %d, want %d", b[4], markVersion)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(b)-4:]); got != want {
		return bad("checksum %08x, want %08x", got, want)
	}
	m := newMarks()
	m.seq = binary.BigEndian.Uint64(body[5:])
	off := 13
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(body[off:])
		if n <= 0 {
			return 0, false
		}
		off += n
		return v, true
	}
	n, ok := uv()
	// A sensor takes at least 1+1+1+32 bytes.
	if !ok || n > uint64(len(body)-off)/35 {
		return bad("sensor count truncated or too large at byte %d", off)
	}
	prev := ""
	for i := range int(n) {
		l, ok := uv()
		if !ok || l > uint64(len(body)-off) {
			return bad("sensor %d: name truncated at byte %d", i, off)
		}
		name := string(body[off : off+int(l)])
		off += int(l)
		if !bus.ValidSensorID(name) {
			return bad("sensor %d: %q is not a sensor id", i, name)
		}
		if i > 0 && strings.Compare(name, prev) <= 0 {
			return bad("sensor %q does not follow %q", name, prev)
		}
		prev = name
		c, ok := uv()
		if !ok || c == 0 || c > maxSpools || c > uint64(len(body)-off)/spoolMarkLen {
			return bad("sensor %s: spool count truncated or out of range at byte %d", name, off)
		}
		list := make([]spoolMark, c)
		for j := range list {
			copy(list[j].id[:], body[off:])
			if err := list[j].pos.UnmarshalBinary(body[off+16 : off+spoolMarkLen]); err != nil {
				return bad("sensor %s: %v", name, err)
			}
			off += spoolMarkLen
			for k := range j {
				if list[k].id == list[j].id {
					return bad("sensor %s: spool %s twice", name, list[j].id)
				}
			}
		}
		m.sensors[name] = list
	}
	if off != len(body) {
		return bad("%d bytes after the last sensor", len(body)-off)
	}
	return m, nil
}
