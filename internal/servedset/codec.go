package servedset

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/takedown-project/takedown/internal/dnssec"
)

// The binary forms. Both are one record: a 4-byte magic, the format
// version, the serials, the parts of a Delta, and a CRC-32C of everything
// before it. Integers are unsigned varints unless said otherwise, strings
// a varint length and the bytes.
//
//	magic       "TDSF" (full form) or "TDSD" (delta)
//	version     1 byte: 1, or 2 when a case has DNSSEC keys
//	from, to    4 bytes each, big-endian (from is 0 in a full form)
//	sinkhole    1 byte: 0 absent, 1 present (always in a full form), then
//	            name servers (count; name, addresses), A, AAAA (count;
//	            addresses), TTL, negative TTL, hostmaster
//	cases       count; name, family, TXT, and in version 2 the keys
//	            (count; each: algorithm 1 byte, flags, public key (the
//	            base64 of a DNSKEY), state 1 byte (1 published, 2 active,
//	            3 retired), created, activated, retired (unix seconds, 0
//	            for none), private key (its 32 raw bytes, or none))
//	case names  count; names: the cases that puts refer to, by index
//	removals    count; names
//	puts        count; name, index into the case names
//	crc         4 bytes, big-endian: CRC-32C (Castagnoli) of all the above
//
// An address is its length (4 or 16) and its bytes. A record without keys
// is written in version 1, which takedown before DNSSEC reads.
const (
	magicFull     = "TDSF"
	magicDelta    = "TDSD"
	formatVersion = 1
	keysVersion   = 2
)

// version is the format version of a record with these cases.
func version(cs []Case) byte {
	for _, c := range cs {
		if len(c.Keys) > 0 {
			return keysVersion
		}
	}
	return formatVersion
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary returns d in the delta form (the full form if d.From is 0).
func (d *Delta) MarshalBinary() ([]byte, error) {
	e := encoder{version: version(d.Cases)}
	e.header(d.From == 0, d.From, d.To)
	e.sinkhole(d.Sinkhole)
	if err := e.cases(d.Cases); err != nil {
		return nil, err
	}
	// The case names puts refer to, each once.
	refs := map[string]uint64{}
	var names []string
	for _, z := range d.Put {
		if _, ok := refs[z.Case]; !ok {
			refs[z.Case] = uint64(len(names))
			names = append(names, z.Case)
		}
	}
	e.strings(names)
	e.strings(d.Remove)
	e.uvarint(uint64(len(d.Put)))
	for _, z := range d.Put {
		e.string(z.Name)
		e.uvarint(refs[z.Case])
	}
	return e.finish(), nil
}

// WriteTo writes s in the full form: a Delta from serial 0 that names every
// zone, which ReadFull (and UnmarshalDelta, then Empty().Apply) reads back.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	e := encoder{version: version(s.cases)}
	e.header(true, 0, s.serial)
	e.sinkhole(s.sinkhole)
	if err := e.cases(s.cases); err != nil {
		return 0, err
	}
	names := make([]string, len(s.cases))
	for i, c := range s.cases {
		names[i] = c.Name
	}
	e.strings(names)
	e.uvarint(0) // no removals
	e.uvarint(uint64(s.zones))
	bw := bufio.NewWriterSize(w, 256<<10)
	var written int64
	crc := uint32(0)
	flush := func() error {
		crc = crc32.Update(crc, castagnoli, e.b)
		n, err := bw.Write(e.b)
		written += int64(n)
		e.b = e.b[:0]
		return err
	}
	for _, sh := range s.shards {
		for name, en := range sh {
			e.string(name)
			e.uvarint(uint64(en.kase))
		}
		if len(e.b) > 64<<10 {
			if err := flush(); err != nil {
				return written, fmt.Errorf("servedset: writing the full form: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return written, fmt.Errorf("servedset: writing the full form: %w", err)
	}
	n, err := bw.Write(binary.BigEndian.AppendUint32(nil, crc))
	written += int64(n)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return written, fmt.Errorf("servedset: writing the full form: %w", err)
	}
	return written, nil
}

// WriteFile writes s in the full form to path atomically: to a temporary
// file in the same directory, synced, then renamed over path, and the
// directory synced. A crash leaves the old file or the new one, whole.
func WriteFile(path string, s *Snapshot) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("servedset: writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = s.WriteTo(f); err != nil {
		return fmt.Errorf("servedset: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("servedset: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("servedset: writing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("servedset: writing %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("servedset: syncing %s: %w", dir, err)
		}
	}
	return nil
}

// ReadFile reads a snapshot that WriteFile wrote.
func ReadFile(path string) (*Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("servedset: %w", err)
	}
	s, err := ReadFull(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return s, nil
}

// ReadFull decodes the full form into a snapshot.
func ReadFull(b []byte) (*Snapshot, error) {
	d, full, err := decode(b)
	if err != nil {
		return nil, err
	}
	if !full {
		return nil, errors.New("servedset: decoding the full form: the record is a delta")
	}
	return Empty().Apply(d)
}

// UnmarshalDelta decodes the delta form (or the full form, a delta from
// serial 0). The result is checked only as far as its layout goes; Apply
// checks the rest.
func UnmarshalDelta(b []byte) (*Delta, error) {
	d, _, err := decode(b)
	return d, err
}

// ErrFormat is wrapped by every decoding error.
var ErrFormat = errors.New("not a served-set record")

func decode(b []byte) (*Delta, bool, error) {
	fail := func(format string, args ...any) (*Delta, bool, error) {
		return nil, false, fmt.Errorf("servedset: decoding: "+format+": %w", append(args, ErrFormat)...)
	}
	if len(b) < 4+1+8+4 {
		return fail("%d bytes, too short for a record", len(b))
	}
	var full bool
	switch string(b[:4]) {
	case magicFull:
		full = true
	case magicDelta:
	default:
		return fail("magic %q is neither %q nor %q", b[:4], magicFull, magicDelta)
	}
	if b[4] != formatVersion && b[4] != keysVersion {
		return fail("format version %d, want %d or %d", b[4], formatVersion, keysVersion)
	}
	body := b[:len(b)-4]
	if want, got := binary.BigEndian.Uint32(b[len(b)-4:]), crc32.Checksum(body, castagnoli); want != got {
		return fail("CRC-32C %08x does not match the record's %08x (damaged or cut short)", got, want)
	}
	dec := decoder{b: body, off: 5, version: b[4]}
	d := &Delta{From: dec.u32(), To: dec.u32()}
	if full && d.From != 0 {
		return fail("a full form from serial %d, not 0", d.From)
	}
	switch has := dec.byte("sinkhole"); {
	case dec.err != nil:
	case has == 1:
		d.Sinkhole = dec.sinkhole()
	case has != 0:
		dec.fail("sinkhole flag %d is neither 0 nor 1", has)
	case full:
		dec.fail("a full form without its sinkhole")
	}
	for range dec.count("cases", 3) {
		d.Cases = append(d.Cases, Case{
			Name:   dec.string("case name", maxCaseLen),
			Family: dec.string("case family", maxCaseLen),
			TXT:    dec.string("case TXT", maxTXTLen),
			Keys:   dec.keys(),
		})
	}
	var refs []string
	for range dec.count("case names", 1) {
		refs = append(refs, dec.string("case name", maxCaseLen))
	}
	for range dec.count("removals", 1) {
		d.Remove = append(d.Remove, dec.string("removal", maxNameLen+1))
	}
	if full && len(d.Remove) > 0 {
		dec.fail("a full form with %d removals", len(d.Remove))
	}
	if np := dec.count("puts", 2); np > 0 {
		d.Put = make([]Zone, 0, np)
		for i := range np {
			name := dec.string("put", maxNameLen+1)
			ref := dec.uvarint("put case")
			if dec.err != nil {
				break
			}
			if ref >= uint64(len(refs)) {
				dec.fail("put %d %q: case %d of %d", i+1, cut(name), ref, len(refs))
				break
			}
			d.Put = append(d.Put, Zone{Name: name, Case: refs[ref]})
		}
	}
	if dec.err == nil && dec.off != len(body) {
		dec.fail("%d bytes after the puts", len(body)-dec.off)
	}
	if dec.err != nil {
		return nil, false, fmt.Errorf("servedset: decoding: %w", dec.err)
	}
	return d, full, nil
}

// encoder appends the binary form to b.
type encoder struct {
	b       []byte
	version byte
}

func (e *encoder) header(full bool, from, to uint32) {
	m := magicDelta
	if full {
		m = magicFull
	}
	e.b = append(e.b, m...)
	e.b = append(e.b, e.version)
	e.b = binary.BigEndian.AppendUint32(e.b, from)
	e.b = binary.BigEndian.AppendUint32(e.b, to)
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) strings(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.string(s)
	}
}

func (e *encoder) addrs(as []netip.Addr) {
	e.uvarint(uint64(len(as)))
	for _, a := range as {
		s := a.AsSlice()
		e.b = append(e.b, byte(len(s)))
		e.b = append(e.b, s...)
	}
}

func (e *encoder) sinkhole(sh *Sinkhole) {
	if sh == nil {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.uvarint(uint64(len(sh.NameServers)))
	for _, ns := range sh.NameServers {
		e.string(ns.Name)
		e.addrs(ns.Addrs)
	}
	e.addrs(sh.A)
	e.addrs(sh.AAAA)
	e.uvarint(uint64(sh.TTL))
	e.uvarint(uint64(sh.NegativeTTL))
	e.string(sh.Hostmaster)
}

func (e *encoder) cases(cs []Case) error {
	e.uvarint(uint64(len(cs)))
	for _, c := range cs {
		e.string(c.Name)
		e.string(c.Family)
		e.string(c.TXT)
		if e.version < keysVersion {
			continue
		}
		e.uvarint(uint64(len(c.Keys)))
		for i := range c.Keys {
			if err := e.key(&c.Keys[i]); err != nil {
				return fmt.Errorf("servedset: case %s: %w", c.Name, err)
			}
		}
	}
	return nil
}

// The states of a key in the binary forms.
var keyStates = []dnssec.State{1: dnssec.StatePublished, 2: dnssec.StateActive, 3: dnssec.StateRetired}

func (e *encoder) key(k *dnssec.Key) error {
	st := slices.Index(keyStates, k.State)
	if st < 1 {
		return fmt.Errorf("key %d in state %q, not one the sinks serve", k.Tag(), k.State)
	}
	e.b = append(e.b, k.Algorithm)
	e.uvarint(uint64(k.Flags))
	e.string(k.PublicKey)
	e.b = append(e.b, byte(st))
	for _, t := range []time.Time{k.Created, k.Activated, k.Retired} {
		e.uvarint(unixSeconds(t))
	}
	if k.Signer == nil {
		e.string("")
		return nil
	}
	raw, err := k.PrivateBytes()
	if err != nil {
		return err
	}
	e.string(string(raw))
	return nil
}

// unixSeconds is t in unix seconds, 0 for the zero time or a time before
// 1970.
func unixSeconds(t time.Time) uint64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

// finish appends the CRC and returns the record.
func (e *encoder) finish() []byte {
	return binary.BigEndian.AppendUint32(e.b, crc32.Checksum(e.b, castagnoli))
}

// decoder reads the parts of a record; after the first error every read
// returns zero values and err says what and where.
type decoder struct {
	b       []byte
	off     int
	err     error
	version byte
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: "+format+": %w", append([]any{d.off}, append(args, ErrFormat)...)...)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("%s: the record ends", what)
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) u32() uint32 {
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("%s: not a varint", what)
		return 0
	}
	d.off += n
	return v
}

// count reads the number of elements of a list whose elements take at least
// min bytes each, so that no count can make the decoder allocate more than
// the record's size.
func (d *decoder) count(what string, min int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.b)-d.off)/min) {
		d.fail("%d %s do not fit in the %d bytes left", n, what, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

// most is count for a list of at most max elements.
func (d *decoder) most(what string, min, max int) int {
	n := d.count(what, min)
	if n > max {
		d.fail("%d %s, more than %d", n, what, max)
		return 0
	}
	return n
}

func (d *decoder) string(what string, max int) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > uint64(max) {
		d.fail("%s of %d bytes, more than %d", what, n, max)
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("%s of %d bytes: the record ends", what, n)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

func (d *decoder) addrs(what string) []netip.Addr {
	var out []netip.Addr
	for range d.most(what, 5, maxAddrsEach) {
		l := int(d.byte(what))
		if d.err != nil {
			return nil
		}
		if (l != 4 && l != 16) || l > len(d.b)-d.off {
			d.fail("%s: an address of %d bytes", what, l)
			return nil
		}
		a, _ := netip.AddrFromSlice(d.b[d.off : d.off+l])
		out = append(out, a)
		d.off += l
	}
	return out
}

// keys reads a case's keys (none before version 2). A private key must be
// the one of the public key.
func (d *decoder) keys() []dnssec.Key {
	if d.version < keysVersion {
		return nil
	}
	var out []dnssec.Key
	for range d.most("keys", 9, maxKeysPerCase) {
		k := dnssec.Key{Algorithm: d.byte("key algorithm")}
		flags := d.uvarint("key flags")
		if flags > 1<<16-1 {
			d.fail("key flags %d do not fit 16 bits", flags)
		}
		k.Flags = uint16(flags)
		k.PublicKey = d.string("public key", maxPublicKey)
		st := int(d.byte("key state"))
		if d.err != nil {
			return nil
		}
		if st < 1 || st >= len(keyStates) {
			d.fail("key state %d is not one of 1 to %d", st, len(keyStates)-1)
			return nil
		}
		k.State = keyStates[st]
		for _, t := range []*time.Time{&k.Created, &k.Activated, &k.Retired} {
			s := d.uvarint("key time")
			if s > maxUnix {
				d.fail("key time %d is past the year 9999", s)
			}
			if s > 0 {
				*t = time.Unix(int64(s), 0).UTC()
			}
		}
		raw := d.string("private key", 32)
		if d.err != nil {
			return nil
		}
		if raw != "" {
			signer, err := dnssec.SignerOf(k.Algorithm, []byte(raw))
			if err != nil {
				d.fail("private key of key %d: %v", k.Tag(), err)
				return nil
			}
			if pub, err := dnssec.PublicKeyOf(k.Algorithm, signer); err != nil || pub != k.PublicKey {
				d.fail("the private key of key %d is not that of its public key", k.Tag())
				return nil
			}
			k.Signer = signer
		}
		out = append(out, k)
	}
	return out
}

func (d *decoder) sinkhole() *Sinkhole {
	sh := &Sinkhole{}
	for range d.most("name servers", 2, maxNSPerSet) {
		sh.NameServers = append(sh.NameServers, NameServer{
			Name:  d.string("name server", maxNameLen+1),
			Addrs: d.addrs("name server addresses"),
		})
	}
	sh.A = d.addrs("A addresses")
	sh.AAAA = d.addrs("AAAA addresses")
	ttl, neg := d.uvarint("TTL"), d.uvarint("negative TTL")
	if ttl > 1<<32-1 || neg > 1<<32-1 {
		d.fail("TTLs %d and %d do not fit 32 bits", ttl, neg)
	}
	sh.TTL, sh.NegativeTTL = uint32(ttl), uint32(neg)
	sh.Hostmaster = d.string("hostmaster", maxMailbox)
	return sh
}
