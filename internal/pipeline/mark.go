package pipeline

import (
	"fmt"

	"github.com/takedown-project/takedown/internal/spool"
)

// The mark the pipeline keeps in the store, in the same transaction as each
// batch, is the spool's identity (16 bytes) followed by the position after
// the batch's last record (16 bytes, spool.Pos's binary form). Marks of 16
// bytes, the position alone, were written by earlier versions.
const (
	markLen       = 32
	legacyMarkLen = 16
)

func appendMark(dst []byte, id spool.ID, p spool.Pos) []byte {
	b, _ := p.AppendBinary(append(dst, id[:]...))
	return b
}

// parseMark returns the spool identity and the position of a mark; legacy
// is set for a mark without identity.
func parseMark(b []byte) (id spool.ID, p spool.Pos, legacy bool, err error) {
	switch len(b) {
	case legacyMarkLen:
		err = p.UnmarshalBinary(b)
		return id, p, true, err
	case markLen:
		copy(id[:], b)
		err = p.UnmarshalBinary(b[len(id):])
		return id, p, false, err
	}
	return id, p, false, fmt.Errorf("%d bytes, want %d", len(b), markLen)
}

// resumeFrom decides where the writer starts reading sp, given the store's
// mark: right after the last stored record, when the mark comes from this
// spool. A spool that was deleted or replaced since (another identity)
// holds only records the store has not seen: it is read from its start. A
// spool whose segments all come before the mark (an older copy put back)
// holds only stored records: reading starts with the records appended from
// now on. Either is explained in note, for the log and the status; reading
// from the saved position would silently skip the first new records.
func resumeFrom(sp *spool.Spool, raw []byte) (from spool.Pos, note string, err error) {
	if raw == nil {
		return spool.Pos{}, "", nil
	}
	id, pos, legacy, err := parseMark(raw)
	if err != nil {
		return spool.Pos{}, "", fmt.Errorf("pipeline: the store's spool mark is damaged: %w", err)
	}
	if !legacy && id != sp.ID() {
		return spool.Pos{}, fmt.Sprintf("the spool in its directory is not the one the store's position was saved from "+
			"(spool %s, the store's position %v is in spool %s): it was deleted or replaced; every record in it is new and it is read from its start",
			sp.ID(), pos, id), nil
	}
	if head := sp.WrittenHead(); pos.Compare(head) > 0 {
		return spool.Pos{Segment: sp.Newest()}, fmt.Sprintf("the store's position %v is after the end %v of the spool: "+
			"its segments were put back from an older copy, and every record in them was stored already; reading starts with the records appended from now on",
			pos, head), nil
	}
	return pos, "", nil
}
