package servedsync

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
)

// Names of the objects of bus.ServedBucket, and of the stream that holds
// them (the object store is a stream named OBJ_<bucket>, its chunks on
// $O.<bucket>.C.<nuid>, the last description of each object on
// $O.<bucket>.M.<name in base64>).
const (
	// FullObject is the full form of the served set.
	FullObject = "full"
	// RulesObject is the classification rules file; empty: the shipped
	// rules.
	RulesObject = "rules"

	objectStream  = "OBJ_" + bus.ServedBucket
	metaSubjects  = "$O." + bus.ServedBucket + ".M.>"
	chunkSubjects = "$O." + bus.ServedBucket + ".C."
)

// Headers of a delta message, and the metadata of the full object. The
// serials are decimal; Seq is the stream sequence of the last delta the
// full form includes: the deltas after it continue from the full form.
const (
	HeaderFrom = "Takedown-Served-From"
	HeaderTo   = "Takedown-Served-To"
	metaSerial = "serial"
	metaSeq    = "seq"
	metaZones  = "zones"
)

// maxObjectBytes bounds an object a follower takes: the full form of a
// million zones is 20 MB.
const maxObjectBytes = 1 << 30

// maxMetaBytes bounds the description of an object.
const maxMetaBytes = 64 << 10

// object is what a follower knows of an object from its description,
// before it fetches it.
type object struct {
	Name    string
	NUID    string // names the subject of its chunks
	Size    uint64
	Chunks  uint32
	Digest  string // "SHA-256=" and the base64url digest
	Deleted bool
	// Of the full object only.
	Serial uint32
	Seq    uint64
	Zones  int
}

var errMeta = errors.New("not an object description of the served set")

// parseMeta reads the description of an object (the JSON the object store
// keeps on its meta subject).
func parseMeta(b []byte) (object, error) {
	if len(b) > maxMetaBytes {
		return object{}, fmt.Errorf("%w: %d bytes", errMeta, len(b))
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return object{}, fmt.Errorf("%w: %v", errMeta, err)
	}
	return objectOf(&info)
}

// objectOf checks what a follower relies on in an object's description:
// the NUID is a subject token, the size and chunk count are bounded and
// agree, the digest is a SHA-256, the full object carries its serial and
// stream sequence.
func objectOf(info *jetstream.ObjectInfo) (object, error) {
	o := object{Name: info.Name, NUID: info.NUID, Size: info.Size, Chunks: info.Chunks, Digest: info.Digest, Deleted: info.Deleted}
	if o.Deleted {
		return o, nil
	}
	if !token(o.NUID) {
		return object{}, fmt.Errorf("%w: object %q has NUID %q", errMeta, cut(o.Name), cut(o.NUID))
	}
	if o.Size > maxObjectBytes {
		return object{}, fmt.Errorf("%w: object %q of %d bytes, more than %d", errMeta, cut(o.Name), o.Size, maxObjectBytes)
	}
	if (o.Size == 0) != (o.Chunks == 0) || uint64(o.Chunks) > o.Size {
		return object{}, fmt.Errorf("%w: object %q of %d bytes in %d chunks", errMeta, cut(o.Name), o.Size, o.Chunks)
	}
	if len(o.Digest) != len(emptyDigest) || o.Digest[:8] != emptyDigest[:8] {
		return object{}, fmt.Errorf("%w: object %q has digest %q", errMeta, cut(o.Name), cut(o.Digest))
	}
	if o.Name != FullObject {
		return o, nil
	}
	serial, err1 := strconv.ParseUint(info.Metadata[metaSerial], 10, 32)
	seq, err2 := strconv.ParseUint(info.Metadata[metaSeq], 10, 64)
	zones, err3 := strconv.ParseUint(info.Metadata[metaZones], 10, 31)
	if err1 != nil || err2 != nil || err3 != nil || serial == 0 {
		return object{}, fmt.Errorf("%w: full object without a valid serial, seq and zones (%q, %q, %q)", errMeta,
			cut(info.Metadata[metaSerial]), cut(info.Metadata[metaSeq]), cut(info.Metadata[metaZones]))
	}
	o.Serial, o.Seq, o.Zones = uint32(serial), seq, int(zones)
	return o, nil
}

// deltaSerials reads the serials of a delta message from its headers;
// ok is false when they are missing or not numbers.
func deltaSerials(h nats.Header) (from, to uint32, ok bool) {
	f, err1 := strconv.ParseUint(h.Get(HeaderFrom), 10, 32)
	t, err2 := strconv.ParseUint(h.Get(HeaderTo), 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(f), uint32(t), true
}

// token reports whether s can be one token of a subject: letters and
// digits only (a NUID), so that it cannot widen the filter it is put in.
func token(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func digestOf(b []byte) string {
	h := sha256.New()
	h.Write(b)
	return jetstream.GetObjectDigestValue(h)
}

var emptyDigest = digestOf(nil)

// cut shortens s for an error message.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
