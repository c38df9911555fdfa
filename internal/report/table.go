package report

import (
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// row is a HostRow in 48 bytes without pointers, so that the garbage
// collector does not scan the table: strings are indexes into the table's
// dictionaries, times are seconds after the table's base, coordinates are
// millionths of a degree.
type row struct {
	ip        uint64 // IPv4: the address; IPv6: v6Flag | index into table.v6
	first     uint32
	last      uint32
	events    uint32 // saturated at 2³²-1
	bots      uint32
	lat, lon  int32
	kind      uint32 // index into table.kinds
	place     uint32 // index into table.places
	ports     uint16 // index into table.portSets
	srcPort   uint16
	dstPort   uint16
	protocols uint8 // protocol code | transport code << 4
}

const v6Flag = 1 << 63

// chunkRows is the number of rows per chunk of the table: the table grows
// by chunks, never by copying what it holds.
const chunkRows = 1 << 16

// kind is what a host is infected with and what it called.
type kind struct{ family, domain, caseName, tag string }

// place is where a host is.
type place struct {
	asn                           uint32
	asName, country, region, city string
}

type portSet struct {
	ports []uint16
	other bool
}

// table holds rows and their dictionaries. Its chunks live outside the Go
// heap (mapRows) and are given back when the table is garbage: every user
// of the rows (Report, Set) holds the table, and no pointer into a chunk
// leaves it.
type table struct {
	base   int64 // unix seconds
	chunks [][]row
	n      int
	frees  *[]func() // gives the chunks back; not reachable from the chunks

	v6       [][16]byte
	kinds    []kind
	kindIdx  map[kind]uint32
	places   []place
	placeIdx map[place]uint32
	portSets []portSet
	portIdx  map[string]uint16
	portKey  []byte

	// The last kind and place added: neighbouring addresses are mostly
	// in one network, so this saves most lookups of placeIdx.
	lastKind  kind
	lastKindI uint32
	lastPlace place
	lastPlI   uint32
	haveLast  bool
}

func newTable(from time.Time) *table {
	frees := new([]func())
	t := &table{
		frees:    frees,
		base:     from.Unix(),
		kindIdx:  map[kind]uint32{},
		placeIdx: map[place]uint32{},
		// Set 0 is "unknown ports": see ports.
		portSets: []portSet{{other: true}},
		portIdx:  map[string]uint16{"o": 0},
	}
	runtime.AddCleanup(t, func(fs *[]func()) {
		for _, f := range *fs {
			f()
		}
	}, frees)
	return t
}

var (
	protoCode = map[event.Protocol]uint8{event.ProtoDNS: 1, event.ProtoHTTP: 2, event.ProtoHTTPS: 3, event.ProtoSMTP: 4, event.ProtoTCP: 5, event.ProtoUDP: 6}
	protoName = []event.Protocol{"", event.ProtoDNS, event.ProtoHTTP, event.ProtoHTTPS, event.ProtoSMTP, event.ProtoTCP, event.ProtoUDP}
	transName = []event.Transport{"", event.TransportTCP, event.TransportUDP}
)

// add appends r and returns its index.
func (t *table) add(r *eventstore.HostRow) (uint32, error) {
	if t.n == math.MaxUint32 {
		return 0, errTooMany
	}
	first, err := t.offset(r.FirstSeen)
	if err != nil {
		return 0, fmt.Errorf("first seen: %w", err)
	}
	last, err := t.offset(r.LastSeen)
	if err != nil {
		return 0, fmt.Errorf("last seen: %w", err)
	}
	x := row{
		first:   first,
		last:    last,
		events:  sat32(r.Events),
		bots:    sat32(r.BotIDs),
		lat:     micro(r.Latitude),
		lon:     micro(r.Longitude),
		kind:    t.kind(kind{r.Family, r.Domain, r.Case, r.Tag}),
		place:   t.place(place{r.ASN, r.ASName, r.Country, r.Region, r.City}),
		ports:   t.ports(r.DstPorts, r.OtherPorts),
		srcPort: r.SrcPort,
		dstPort: r.DstPort,
	}
	t.haveLast = true
	x.protocols = protoCode[r.Protocol]
	switch r.Transport {
	case event.TransportTCP:
		x.protocols |= 1 << 4
	case event.TransportUDP:
		x.protocols |= 2 << 4
	}
	a := r.IP.Unmap()
	if a.Is4() {
		b := a.As4()
		x.ip = uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	} else {
		x.ip = v6Flag | uint64(len(t.v6))
		t.v6 = append(t.v6, a.As16())
	}
	if t.n%chunkRows == 0 {
		c, free := mapRows(chunkRows)
		t.chunks = append(t.chunks, c)
		*t.frees = append(*t.frees, free)
	}
	c := &t.chunks[len(t.chunks)-1]
	*c = append(*c, x)
	t.n++
	return uint32(t.n - 1), nil
}

// get decodes row i into r, reusing r.DstPorts.
func (t *table) get(i uint32, r *eventstore.HostRow) {
	x := &t.chunks[i/chunkRows][i%chunkRows]
	if x.ip&v6Flag != 0 {
		r.IP = netip.AddrFrom16(t.v6[x.ip&^v6Flag])
	} else {
		r.IP = netip.AddrFrom4([4]byte{byte(x.ip >> 24), byte(x.ip >> 16), byte(x.ip >> 8), byte(x.ip)})
	}
	k := &t.kinds[x.kind]
	r.Family, r.Domain, r.Case, r.Tag = k.family, k.domain, k.caseName, k.tag
	p := &t.places[x.place]
	r.ASN, r.ASName, r.Country, r.Region, r.City = p.asn, p.asName, p.country, p.region, p.city
	r.FirstSeen = time.Unix(t.base+int64(x.first), 0).UTC()
	r.LastSeen = time.Unix(t.base+int64(x.last), 0).UTC()
	r.Events, r.BotIDs = int64(x.events), int64(x.bots)
	r.Latitude, r.Longitude = float64(x.lat)/1e6, float64(x.lon)/1e6
	ps := &t.portSets[x.ports]
	r.DstPorts = append(r.DstPorts[:0], ps.ports...)
	r.OtherPorts = ps.other
	r.SrcPort, r.DstPort = x.srcPort, x.dstPort
	r.Protocol = protoName[min(int(x.protocols&0xf), len(protoName)-1)]
	r.Transport = transName[min(int(x.protocols>>4), len(transName)-1)]
}

// offset returns the seconds of t after the base.
func (t *table) offset(at time.Time) (uint32, error) {
	d := at.Unix() - t.base
	if d < 0 || d > math.MaxUint32 {
		return 0, fmt.Errorf("%s is outside the period", at.UTC().Format(time.RFC3339))
	}
	return uint32(d), nil
}

func (t *table) kind(k kind) uint32 {
	if t.haveLast && k == t.lastKind {
		return t.lastKindI
	}
	i, ok := t.kindIdx[k]
	if !ok {
		i = uint32(len(t.kinds))
		t.kinds = append(t.kinds, k)
		t.kindIdx[k] = i
	}
	t.lastKind, t.lastKindI = k, i
	return i
}

func (t *table) place(p place) uint32 {
	if t.haveLast && p == t.lastPlace {
		return t.lastPlI
	}
	i, ok := t.placeIdx[p]
	if !ok {
		i = uint32(len(t.places))
		t.places = append(t.places, p)
		t.placeIdx[p] = i
	}
	t.lastPlace, t.lastPlI = p, i
	return i
}

// ports returns the index of the set of ports. When 65,536 distinct sets
// are taken, which no sinkhole's ports come near, a new set is kept as
// set 0: no port known, and "other".
func (t *table) ports(ports []uint16, other bool) uint16 {
	key := t.portKey[:0]
	for _, p := range ports {
		key = append(key, byte(p>>8), byte(p))
	}
	if other {
		key = append(key, 'o')
	}
	t.portKey = key
	if i, ok := t.portIdx[string(key)]; ok {
		return i
	}
	if len(t.portSets) > math.MaxUint16 {
		return 0
	}
	i := uint16(len(t.portSets))
	t.portSets = append(t.portSets, portSet{append([]uint16(nil), ports...), other})
	t.portIdx[string(key)] = i
	return i
}

func sat32(n int64) uint32 {
	if n < 0 {
		return 0
	}
	if n > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(n)
}

// micro returns v in millionths, rounded: six decimals keep a coordinate
// to about 0.1 m, finer than any geolocation database.
func micro(v float64) int32 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return int32(math.Round(v * 1e6))
}
