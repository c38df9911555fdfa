package store

import (
	"database/sql/driver"
	"net/netip"
)

// maxBoxes bounds the strings a boxes keeps; past it, it starts over.
const maxBoxes = 4096

// boxes hands out the driver.Value of values that repeat from row to row
// (a sensor, a family, a country, the sinkhole's own address) without
// boxing them again: putting a string or a uint64 in an interface
// allocates, and at 11 allocations an event the writer's garbage made the
// collector run every few seconds during a backlog drain, each run
// stopping the sinks' goroutines for up to 2 ms. Columns whose values are
// mostly new (a domain, a bot id, a path) go through str instead. A boxes
// belongs to one appending goroutine (Store.mu).
type boxes struct {
	strs    map[string]driver.Value
	dst     netip.Addr
	dstV    driver.Value
	dstPort uint16
	portV   driver.Value
}

// str is the package's str with the value kept for the next row.
func (b *boxes) str(s string) driver.Value {
	if s == "" {
		return nil
	}
	if v, ok := b.strs[s]; ok {
		return v
	}
	if b.strs == nil || len(b.strs) >= maxBoxes {
		b.strs = make(map[string]driver.Value, 256)
	}
	v := driver.Value(s)
	b.strs[s] = v
	return v
}

// dstIP is ipValue(a), kept while the destination stays the same.
func (b *boxes) dstIP(a netip.Addr) driver.Value {
	if b.dstV == nil || a != b.dst {
		b.dst, b.dstV = a, ipValue(a)
	}
	return b.dstV
}

// port is the boxed destination port, kept while it stays the same.
func (b *boxes) port(p uint16) driver.Value {
	if b.portV == nil || p != b.dstPort {
		b.dstPort, b.portV = p, p
	}
	return b.portV
}
