package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
)

// Leaf kinds.
const (
	KindBatch = "batch"
	KindAudit = "audit"
)

// The header lines of the two kinds of leaf data.
const (
	batchHeader = "takedown-evidence/batch/v1\n"
	auditHeader = "takedown-evidence/audit/v1\n"
)

// Canonical makes e what the event stores give back for it, so that the
// line of an event before it is stored equals the line of the same event
// read back, on either engine. Of all the fields, the engines (DuckDB and
// ClickHouse) change only the addresses: an IPv4-mapped IPv6 address
// (::ffff:192.0.2.1) comes back as IPv4, and an IPv6 zone (%eth0) is
// dropped. The time comes back in UTC, which the line does not show. The
// round-trip tests in this package pin that list; add here whatever a
// future engine normalises.
func Canonical(e *event.Event) {
	e.Time = e.Time.UTC()
	if e.SrcIP.IsValid() {
		e.SrcIP = e.SrcIP.Unmap().WithZone("")
	}
	if e.DstIP.IsValid() {
		e.DstIP = e.DstIP.Unmap().WithZone("")
	}
}

// EventLine appends the canonical line of e to dst: event.AppendJSON of the
// event after Canonical, without a newline. e itself is not changed.
func EventLine(dst []byte, e *event.Event) []byte {
	c := *e
	Canonical(&c)
	return event.AppendJSON(dst, &c)
}

// EventHash is the SHA-256 of the event's canonical line.
func EventHash(e *event.Event) [32]byte {
	var buf [1024]byte
	return sha256.Sum256(EventLine(buf[:0], e))
}

// hashEvents returns the event hashes of batch. A large batch is hashed in
// parallel, in as many parts as the process may use CPUs: the write path
// waits for the hashes before it stores the batch (write-ahead), so their
// time is the log's cost to ingest.
func hashEvents(batch []event.Event) [][32]byte {
	out := make([][32]byte, len(batch))
	parts := min(runtime.GOMAXPROCS(0), len(batch)/minHashPart)
	if parts <= 1 {
		hashInto(out, batch)
		return out
	}
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(batch)/parts, (p+1)*len(batch)/parts
		wg.Go(func() { hashInto(out[lo:hi], batch[lo:hi]) })
	}
	wg.Wait()
	return out
}

// minHashPart is the fewest events worth a goroutine of their own.
const minHashPart = 2048

// hashInto sets out[i] to the event hash of batch[i].
func hashInto(out [][32]byte, batch []event.Event) {
	buf := make([]byte, 0, 2048)
	for i := range batch {
		buf = EventLine(buf[:0], &batch[i])
		out[i] = sha256.Sum256(buf)
	}
}

// BatchLeaf returns the leaf data of a batch whose events have hashes: the
// header line, then the lower-case hex hashes sorted ascending, each on its
// own line (duplicates kept). hashes is not changed.
func BatchLeaf(hashes [][32]byte) []byte {
	s := slices.Clone(hashes)
	slices.SortFunc(s, compareHashes)
	return batchLeafSorted(s)
}

// batchLeafSorted is BatchLeaf of hashes already sorted.
func batchLeafSorted(s [][32]byte) []byte {
	out := make([]byte, 0, len(batchHeader)+65*len(s))
	out = append(out, batchHeader...)
	for _, h := range s {
		out = hex.AppendEncode(out, h[:])
		out = append(out, '\n')
	}
	return out
}

// The log stores a batch leaf's data packed: the byte 0x00, then the
// sorted hashes as 32 raw bytes each, half the size of the documented
// form (header and hex lines), which costs DuckDB less CPU to take. Every
// read of the log gives the documented form (unpack); the record hash
// stored beside the data is that of the documented form. Documented leaf
// data starts with "takedown-evidence/", never with 0x00: a table may hold
// either.
const packedBatch = 0x00

// packBatch returns the packed form of a batch leaf of sorted hashes.
func packBatch(sorted [][32]byte) []byte {
	out := make([]byte, 1, 1+32*len(sorted))
	out[0] = packedBatch
	for _, h := range sorted {
		out = append(out, h[:]...)
	}
	return out
}

// unpack returns stored leaf data in its documented form: packed batch
// data unpacked, anything else as it is. nil stays nil (pruned).
func unpack(stored []byte) ([]byte, error) {
	if len(stored) == 0 || stored[0] != packedBatch {
		return stored, nil
	}
	raw := stored[1:]
	if len(raw)%32 != 0 {
		return nil, fmt.Errorf("packed batch leaf: %d bytes after the first is not a whole number of 32-byte hashes", len(raw))
	}
	out := make([]byte, 0, len(batchHeader)+65*(len(raw)/32))
	out = append(out, batchHeader...)
	for i := 0; i < len(raw); i += 32 {
		out = hex.AppendEncode(out, raw[i:i+32])
		out = append(out, '\n')
	}
	return out, nil
}

// batchRecordHash is tlog.RecordHash of the batch leaf of sorted hashes,
// computed without making the leaf's data.
func batchRecordHash(sorted [][32]byte) tlog.Hash {
	d := sha256.New()
	buf := make([]byte, 0, 1+len(batchHeader)+65*64)
	buf = append(buf, 0x00) // RFC 6962's leaf prefix
	buf = append(buf, batchHeader...)
	for _, h := range sorted {
		if len(buf)+65 > cap(buf) {
			d.Write(buf)
			buf = buf[:0]
		}
		buf = hex.AppendEncode(buf, h[:])
		buf = append(buf, '\n')
	}
	d.Write(buf)
	var out tlog.Hash
	d.Sum(out[:0])
	return out
}

// compareHashes orders hashes as bytes.Compare does, eight bytes at a
// time: a third of the time of bytes.Compare on a batch's hashes.
func compareHashes(a, b [32]byte) int {
	for i := 0; i < 32; i += 8 {
		x, y := binary.BigEndian.Uint64(a[i:]), binary.BigEndian.Uint64(b[i:])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// AuditLeaf returns the leaf data of audit entry e, whose predecessor has
// hash prevHash ("" for the first entry): the header line, then the fields
// prev, seq, at, actor, action, object, detail and reason, each as its
// length in bytes, ':', the bytes and '\n' — exactly what
// registry.EntryHash hashes, so that the SHA-256 of the data after the
// header is e's chain hash.
func AuditLeaf(prevHash string, e registry.AuditEntry) []byte {
	out := []byte(auditHeader)
	for _, f := range auditFields(prevHash, e) {
		out = strconv.AppendInt(out, int64(len(f)), 10)
		out = append(out, ':')
		out = append(out, f...)
		out = append(out, '\n')
	}
	return out
}

// auditFields are the fields of e in the order registry.EntryHash takes
// them.
func auditFields(prev string, e registry.AuditEntry) []string {
	return []string{prev, strconv.FormatInt(e.Seq, 10), e.At.UTC().Format(auditTimeLayout),
		e.Actor, e.Action, e.Object, e.Detail, e.Reason}
}

// auditTimeLayout is how registry.EntryHash writes an entry's time.
const auditTimeLayout = "2006-01-02T15:04:05.000000Z"

// Leaf is the parsed data of one leaf.
type Leaf struct {
	// Kind is KindBatch or KindAudit.
	Kind string
	// Events are the event hashes of a batch leaf, in the leaf's order
	// (ascending).
	Events [][32]byte
	// Audit is the audit entry of an audit leaf: the data after the header
	// line, whose SHA-256 is the entry's chain hash.
	Audit []byte
}

// Contains reports whether a batch leaf names the event hash h.
func (l Leaf) Contains(h [32]byte) bool {
	_, ok := slices.BinarySearchFunc(l.Events, h, compareHashes)
	return ok
}

// AuditFields returns the eight fields of an audit leaf (prev, seq, at,
// actor, action, object, detail, reason).
func (l Leaf) AuditFields() ([]string, error) { return parseAuditFields(l.Audit) }

// AuditHash is the hex chain hash of an audit leaf's entry.
func (l Leaf) AuditHash() string {
	h := sha256.Sum256(l.Audit)
	return hex.EncodeToString(h[:])
}

// ParseLeaf parses leaf data from outside (a bundle's leaves/IDX.txt, the
// database). It checks the whole format: the header, each hash as 64
// lower-case hex digits in ascending order, or the eight length-prefixed
// audit fields. Errors name the line that is wrong.
func ParseLeaf(data []byte) (Leaf, error) {
	switch {
	case bytes.HasPrefix(data, []byte(batchHeader)):
		rest := data[len(batchHeader):]
		if len(rest)%65 != 0 {
			return Leaf{}, fmt.Errorf("batch leaf: %d bytes after the header is not a whole number of 65-byte lines (64 hex digits and a newline)", len(rest))
		}
		l := Leaf{Kind: KindBatch, Events: make([][32]byte, 0, len(rest)/65)}
		for i := 0; i < len(rest); i += 65 {
			line := rest[i : i+65]
			var h [32]byte
			if line[64] != '\n' || !isLowerHex(line[:64]) {
				return Leaf{}, fmt.Errorf("batch leaf line %d: %q is not 64 lower-case hex digits and a newline", 2+i/65, cutBytes(line, 80))
			}
			hex.Decode(h[:], line[:64])
			if n := len(l.Events); n > 0 && bytes.Compare(l.Events[n-1][:], h[:]) > 0 {
				return Leaf{}, fmt.Errorf("batch leaf line %d: hash %x is not in ascending order after the one before", 2+i/65, h)
			}
			l.Events = append(l.Events, h)
		}
		return l, nil
	case bytes.HasPrefix(data, []byte(auditHeader)):
		l := Leaf{Kind: KindAudit, Audit: data[len(auditHeader):]}
		if _, err := parseAuditFields(l.Audit); err != nil {
			return Leaf{}, err
		}
		return l, nil
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	return Leaf{}, fmt.Errorf("leaf: first line %q is neither %q nor %q", cutBytes(first, 80), batchHeader[:len(batchHeader)-1], auditHeader[:len(auditHeader)-1])
}

var auditFieldNames = []string{"prev", "seq", "at", "actor", "action", "object", "detail", "reason"}

func parseAuditFields(b []byte) ([]string, error) {
	out := make([]string, 0, len(auditFieldNames))
	for _, name := range auditFieldNames {
		colon := bytes.IndexByte(b, ':')
		if colon < 1 || colon > 10 {
			return nil, fmt.Errorf("audit leaf field %s: no length before ':'", name)
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || strconv.Itoa(n) != string(b[:colon]) {
			return nil, fmt.Errorf("audit leaf field %s: length %q is not a decimal number", name, cutBytes(b[:colon], 20))
		}
		b = b[colon+1:]
		if n >= len(b) || b[n] != '\n' {
			return nil, fmt.Errorf("audit leaf field %s: %d bytes and a newline do not follow its length", name, n)
		}
		out = append(out, string(b[:n]))
		b = b[n+1:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("audit leaf: %d bytes after the last field (reason)", len(b))
	}
	if _, err := strconv.ParseInt(out[1], 10, 64); err != nil {
		return nil, fmt.Errorf("audit leaf field seq: %q is not a number", cutBytes([]byte(out[1]), 30))
	}
	return out, nil
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// cutBytes shortens b for an error message.
func cutBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// ErrPruned: the leaf's data was removed by retention; its hash stays in
// the tree.
var ErrPruned = errors.New("leaf data pruned by retention")
