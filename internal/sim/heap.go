package sim

import "math/bits"

// bitset is a set of small integers.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

// set adds i and reports whether it was new.
func (b bitset) set(i int) bool {
	w, m := i>>6, uint64(1)<<(i&63)
	if b[w]&m != 0 {
		return false
	}
	b[w] |= m
	return true
}

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// each calls fn for every member, in order.
func (b bitset) each(fn func(i int)) {
	for wi, w := range b {
		for w != 0 {
			fn(wi<<6 + bits.TrailingZeros64(w))
			w &= w - 1
		}
	}
}

// entry is a bot's next callback.
type entry struct {
	at  int64 // simulated time, ns
	bot uint32
}

// schedule is a min-heap of next callbacks by time, then bot.
type schedule []entry

func (h schedule) less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].bot < h[j].bot
}

func (h *schedule) push(e entry) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *schedule) pop() entry {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && q.less(l, m) {
			m = l
		}
		if l+1 < n && q.less(l+1, m) {
			m = l + 1
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// initSchedule gives every bot infected at from its first callback
// after from, if that comes before it is cleaned and before end.
func (s *Sim) initSchedule(from, end int64, r interface{ ExpFloat64() float64 }) schedule {
	h := make(schedule, 0, s.pop.n)
	for b := range s.pop.n {
		at := from + s.gap(r)
		if at < min(end, s.cleanAt(uint32(b))) {
			h = append(h, entry{at, uint32(b)})
		}
	}
	// Heapify.
	for i := len(h)/2 - 1; i >= 0; i-- {
		for j := i; ; {
			l, m := 2*j+1, j
			if l < len(h) && h.less(l, m) {
				m = l
			}
			if l+1 < len(h) && h.less(l+1, m) {
				m = l + 1
			}
			if m == j {
				break
			}
			h[j], h[m] = h[m], h[j]
			j = m
		}
	}
	return h
}
