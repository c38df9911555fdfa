package sim

import (
	"math/rand/v2"
	"sync"
	"time"
)

// DGANamesPerDay is how many names the Conficker-like DGA makes a day.
const DGANamesPerDay = 250

// dgaTLDs are the TLDs the DGA's names fall under: only .test, the one
// name that RFC 2606 reserves which is as short as the TLDs a real DGA
// picks (the default rule conficker-dga-dns matches 2 to 6 letters).
var dgaTLDs = [...]string{"test"}

// DGANames returns the first n distinct names of the DGA for day's UTC
// date: 4 to 12 lower-case letters under a TLD reserved by RFC 2606, such
// as "qxkvhe.test", so that no name of the simulation can be anyone's. The list depends only on the date, as a real DGA's does,
// so that a takedown can seize (some of) tomorrow's names today.
func DGANames(day time.Time, n int) []string {
	if n <= 0 {
		return nil
	}
	d := day.UTC()
	date := uint64(d.Year())<<16 | uint64(d.Month())<<8 | uint64(d.Day())
	r := rand.New(rand.NewPCG(mix64(date), 0xc0f1c4e5))
	out := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for len(out) < n {
		name := word(r, 4, 12, lower) + "." + dgaTLDs[r.IntN(len(dgaTLDs))]
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// dgaCache keeps the names of the day asked last.
type dgaCache struct {
	mu    sync.Mutex
	day   int64
	names []string
}

// names returns the DGA names of the simulated time at (ns).
func (c *dgaCache) get(at int64) []string {
	d := floorDiv(at, day)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil || c.day != d {
		c.day, c.names = d, DGANames(time.Unix(0, d*day), DGANamesPerDay)
	}
	return c.names
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
