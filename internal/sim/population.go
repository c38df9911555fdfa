package sim

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"

	"github.com/takedown-project/takedown/internal/enrich/demoworld"
)

// family is a family's index.
type family uint8

const (
	famWaledac family = iota
	famConficker
	famRustock
	numFamilies
)

var familyNames = [numFamilies]string{Waledac, Conficker, Rustock}

func familyOf(name string) (family, bool) {
	for f, n := range familyNames {
		if n == name {
			return family(f), true
		}
	}
	return 0, false
}

// Salts of the random streams drawn from the seed.
const (
	saltFamilies = iota + 1
	saltNAT
	saltNotified
	saltClean
	saltBotID
	saltHelo
	saltCall
	saltLive
	saltBackfill
)

// mix64 is SplitMix64's finaliser, a bijective scramble.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func hash(seed, salt, v uint64) uint64 {
	return mix64(mix64(seed^salt*0x9e3779b97f4a7c15) ^ v)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func newRand(seed, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, mix64(salt)))
}

// population is the bots, in flat arrays (about 15 bytes a bot).
type population struct {
	n     int
	fam   []family
	addr  []uint32 // address index: demoworld.World.Addr
	faddr []uint32 // index among the family's addresses
	fbot  []uint32 // index among the family's bots
	nat   bitset   // bots behind NAT
	addrs int      // distinct addresses

	famBots  [numFamilies]int
	famAddrs [numFamilies][]uint32 // address index of each family address
	famNets  [numFamilies][]uint16 // network of each family address
	botNets  [numFamilies][]uint16 // network of each family bot
	world    *demoworld.World
	asnIndex map[uint32]uint16 // network index by AS number
}

// build deals out families, NAT groups and addresses.
func (p *population) build(w *demoworld.World, cfg Config, weights [numFamilies]float64) error {
	n := cfg.Bots
	p.n, p.world = n, w
	p.fam = make([]family, n)
	p.addr = make([]uint32, n)
	p.faddr = make([]uint32, n)
	p.fbot = make([]uint32, n)
	p.nat = newBitset(n)

	// Exact counts by the largest remainder, in a random order.
	r := newRand(cfg.Seed, saltFamilies)
	var counts [numFamilies]int
	left := n
	type rem struct {
		f family
		r float64
	}
	var rems []rem
	for f, wt := range weights {
		exact := wt * float64(n)
		counts[f] = int(exact)
		left -= counts[f]
		rems = append(rems, rem{family(f), exact - math.Floor(exact)})
	}
	for i := 0; left > 0; i++ {
		best := 0
		for j := range rems {
			if rems[j].r > rems[best].r {
				best = j
			}
		}
		counts[rems[best].f]++
		rems[best].r = -1
		left--
	}
	i := 0
	for f, c := range counts {
		for range c {
			p.fam[i] = family(f)
			i++
		}
	}
	r.Shuffle(n, func(a, b int) { p.fam[a], p.fam[b] = p.fam[b], p.fam[a] })

	// NAT groups of 2..NATMax bots share an address; the others have one
	// each. Addresses are numbered in order, which Addr spreads over the
	// networks by their shares.
	r = newRand(cfg.Seed, saltNAT)
	perm := r.Perm(n)
	natBots := 0
	if cfg.NATShare > 0 {
		natBots = int(math.Round(cfg.NATShare * float64(n)))
	}
	next := uint32(0)
	for i := 0; i < n; {
		size := 1
		if rest := natBots - i; rest > 0 {
			size = min(2+r.IntN(cfg.NATMax-1), rest)
			if rest-size == 1 {
				if size < cfg.NATMax {
					size++
				} else {
					size--
				}
			}
		}
		for k := range size {
			b := perm[i+k]
			p.addr[b] = next
			if size > 1 {
				p.nat.set(b)
			}
		}
		next++
		i += size
	}
	p.addrs = int(next)
	if uint64(p.addrs) > w.Hosts() {
		return fmt.Errorf("sim: %d bots need %d addresses; the demo world has %d", n, p.addrs, w.Hosts())
	}

	p.asnIndex = make(map[uint32]uint16, len(w.Networks))
	for i, nw := range w.Networks {
		p.asnIndex[nw.ASN] = uint16(i)
	}
	local := make([]int32, p.addrs)
	for f := range numFamilies {
		for a := range local {
			local[a] = -1
		}
		for b := range n {
			if p.fam[b] != f {
				continue
			}
			a := p.addr[b]
			if local[a] < 0 {
				local[a] = int32(len(p.famAddrs[f]))
				p.famAddrs[f] = append(p.famAddrs[f], a)
				if _, ok := w.NetworkOf(w.Addr(uint64(a))); !ok {
					return fmt.Errorf("sim: address %v is in no network of the demo world", w.Addr(uint64(a)))
				}
				p.famNets[f] = append(p.famNets[f], p.netOfAddr(a))
			}
			p.faddr[b] = uint32(local[a])
			p.fbot[b] = uint32(p.famBots[f])
			p.famBots[f]++
			p.botNets[f] = append(p.botNets[f], p.famNets[f][local[a]])
		}
	}
	return nil
}

// netOfAddr returns the index of the network of address index a.
func (p *population) netOfAddr(a uint32) uint16 {
	nw, _ := p.world.NetworkOf(p.world.Addr(uint64(a)))
	return p.asnIndex[nw.ASN]
}

// ip returns the bot's source address.
func (p *population) ip(bot uint32) netip.Addr { return p.world.Addr(uint64(p.addr[bot])) }

// netOf returns the index of the bot's network.
func (p *population) netOf(bot uint32) uint16 {
	return p.famNets[p.fam[bot]][p.faddr[bot]]
}

// botID returns the Waledac bot id of bot: base64 of 12 bytes, 8 from
// the seed and 4 of its index, so that it is the same on every callback
// and distinct between bots.
func (s *Sim) botID(bot uint32) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], hash(s.cfg.Seed, saltBotID, uint64(bot)))
	binary.BigEndian.PutUint32(b[8:], bot)
	return base64.StdEncoding.EncodeToString(b[:])
}

// helo returns the bot's EHLO argument, the same on every session: an
// address literal (its address, or a private one behind NAT) or a bare
// word of 4 to 15 letters and digits.
func (s *Sim) helo(bot uint32) string {
	h := hash(s.cfg.Seed, saltHelo, uint64(bot))
	r := rand.New(rand.NewPCG(h, 0))
	if h&1 == 0 {
		a := s.pop.ip(bot)
		if s.pop.nat.has(int(bot)) {
			a = netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(256)), byte(1 + r.IntN(254))})
		}
		return "[" + a.String() + "]"
	}
	return word(r, 4, 15, alnum)
}

const (
	lower = "abcdefghijklmnopqrstuvwxyz"
	alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// word returns a random word of min to max characters of set.
func word(r *rand.Rand, lo, hi int, set string) string {
	b := make([]byte, lo+r.IntN(hi-lo+1))
	for i := range b {
		b[i] = set[r.IntN(len(set))]
	}
	return string(b)
}
