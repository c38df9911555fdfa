package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/takedown-project/takedown/internal/spool"
)

// MarkFile is the name of the mark file in Config.StateDir.
const MarkFile = "uplink.mark"

// The mark file says what the stream has: the identity of the spool the
// uplink read and the position just after the last record the stream
// acknowledged.
//
//	magic     "TDUM"
//	version   1 byte: 1
//	spool     16 bytes: spool.ID
//	position  16 bytes: spool.Pos, binary form (big-endian segment, offset)
//	crc       4 bytes, big-endian: CRC-32C of all the above
const (
	markMagic   = "TDUM"
	markVersion = 1
	markLen     = 4 + 1 + 16 + 16 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errNoMark: the state directory holds no mark (a new sensor).
var errNoMark = errors.New("no mark")

func appendMark(dst []byte, id spool.ID, p spool.Pos) []byte {
	start := len(dst)
	dst = append(dst, markMagic...)
	dst = append(dst, markVersion)
	dst = append(dst, id[:]...)
	dst, _ = p.AppendBinary(dst)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// parseMark reads the contents of a mark file.
func parseMark(b []byte) (spool.ID, spool.Pos, error) {
	var (
		id spool.ID
		p  spool.Pos
	)
	if len(b) != markLen {
		return id, p, fmt.Errorf("%d bytes, want %d", len(b), markLen)
	}
	if string(b[:4]) != markMagic {
		return id, p, fmt.Errorf("magic %q, want %q", b[:4], markMagic)
	}
	if b[4] != markVersion {
		return id, p, fmt.Errorf("version %d, want %d", b[4], markVersion)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(b)-4:]); got != want {
		return id, p, fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	copy(id[:], body[5:])
	if err := p.UnmarshalBinary(body[5+len(id):]); err != nil {
		return id, p, err
	}
	return id, p, nil
}

// readMark reads the mark file of dir; errNoMark when there is none.
func readMark(dir string) (spool.ID, spool.Pos, error) {
	path := filepath.Join(dir, MarkFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return spool.ID{}, spool.Pos{}, errNoMark
	}
	if err != nil {
		return spool.ID{}, spool.Pos{}, fmt.Errorf("uplink: %w", err)
	}
	id, p, err := parseMark(b)
	if err != nil {
		return id, p, fmt.Errorf("uplink: mark file %s is damaged: %w", path, err)
	}
	return id, p, nil
}

// writeMark replaces the mark file of dir: a new file, fsynced, renamed
// over the old one, and the directory fsynced, so that a crash leaves
// either mark whole. buf is scratch space; it returns it for reuse.
func writeMark(dir string, id spool.ID, p spool.Pos, buf []byte) ([]byte, error) {
	buf = appendMark(buf[:0], id, p)
	path := filepath.Join(dir, MarkFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return buf, fmt.Errorf("uplink: writing the mark: %w", err)
	}
	_, err = f.Write(buf)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return buf, fmt.Errorf("uplink: writing the mark %s: %w", path, err)
	}
	return buf, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// resumeFrom decides where reading sp starts, given the mark (ok false:
// none). The rules are the pipeline's for its own mark: right after the
// last acknowledged record when the mark comes from this spool; from its
// start when the spool was deleted or replaced since (another identity:
// every record in it is new, and the saved numbers would skip its first
// records); from the newest segment when the mark is past the spool's end
// (its segments were put back from an older copy, and the stream has
// them). note explains the last two.
func resumeFrom(sp *spool.Spool, id spool.ID, pos spool.Pos, ok bool) (from spool.Pos, note string) {
	if !ok {
		return spool.Pos{}, ""
	}
	if id != sp.ID() {
		return spool.Pos{}, fmt.Sprintf("the spool is not the one the mark was saved from (spool %s, the mark %v is in spool %s): "+
			"it was deleted or replaced; every record in it is new and it is published from its start", sp.ID(), pos, id)
	}
	if head := sp.WrittenHead(); pos.Compare(head) > 0 {
		return spool.Pos{Segment: sp.Newest()}, fmt.Sprintf("the mark %v is after the end %v of the spool: "+
			"its segments were put back from an older copy, and the stream has every record in them; publishing starts with the records appended from now on", pos, head)
	}
	return pos, ""
}
