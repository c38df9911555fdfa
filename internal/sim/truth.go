package sim

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/enrich/demoworld"
)

// Truth is what the sinkhole demonstrably got from the simulation: a DNS
// answer other than REFUSED, an HTTP response, the reply to the end of an
// SMTP message. It counts as the store does (eventstore.HostCount): IPs are
// distinct source addresses, Bots distinct non-empty bot ids (only
// Waledac's HTTP callbacks carry one), Events the events recorded (a
// Waledac callback is two: its DNS query and its POST).
//
// Days are UTC days of simulated time: backfilled events carry it, live
// events carry the sinkhole's clock, so the by-day counts of a live run
// match the store only at Speed 1.
//
// The truth is exact as long as Errors is 0: a callback that failed half
// way (a DNS timeout, a connection cut in an SMTP session) may or may not
// have left an event at the sinkhole and is not counted.
type Truth struct {
	Seed uint64 `json:"seed"`
	// Infected bots at From; Active of them were not yet cleaned at To.
	Infected int `json:"infected"`
	Active   int `json:"active"`
	// From is when simulated time began (the backfill's start), To the
	// simulated time reached.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Notified lists the networks that clean faster.
	Notified []uint32 `json:"notified_asns,omitempty"`

	Counts
	// Errors counts callbacks that failed; Refused those the sinkhole
	// refused (DGA names it does not serve).
	Errors  int64 `json:"errors"`
	Refused int64 `json:"refused"`
	// MaxLagSeconds is how late the live run started a callback at worst.
	MaxLagSeconds float64 `json:"max_lag_seconds"`

	// ByCountry counts over all families, by IPs descending.
	ByCountry []CountryCount `json:"by_country"`
	// Families are by name; a family without bots is left out.
	Families map[string]FamilyTruth `json:"families"`
	// Sensors count, with Config.Sensors, what each sensor got of the
	// live run, in the order of Config.Sensors.
	Sensors []SensorTruth `json:"sensors,omitempty"`
}

// SensorTruth is what one sensor got of the live run: the callbacks it
// answered and the events it recorded for them.
type SensorTruth struct {
	Bots      int   `json:"bots"`
	Callbacks int64 `json:"callbacks"`
	Events    int64 `json:"events"`
}

// Counts are the unique hosts and callbacks of one group.
type Counts struct {
	IPs int64 `json:"ips"`
	// Bots counts distinct bot ids, as the store's Bots does.
	Bots      int64 `json:"bots"`
	Callbacks int64 `json:"callbacks"`
	Events    int64 `json:"events"`
}

// FamilyTruth is the truth of one family.
type FamilyTruth struct {
	Family string `json:"family"`
	// Infected bots of the family at the start.
	Infected int `json:"infected"`
	Counts
	Errors  int64 `json:"errors"`
	Refused int64 `json:"refused"`
	// ByASN and ByCountry are by IPs descending; ByDay in date order.
	ByASN     []NetworkCount `json:"by_asn"`
	ByCountry []CountryCount `json:"by_country"`
	ByDay     []DayCount     `json:"by_day"`
}

// NetworkCount is a network's share of a family.
type NetworkCount struct {
	ASN     uint32 `json:"asn"`
	ASName  string `json:"as_name"`
	Country string `json:"country"`
	Counts
}

// CountryCount is a country's share.
type CountryCount struct {
	Country string `json:"country"`
	Counts
}

// DayCount is one UTC day of simulated time.
type DayCount struct {
	Day string `json:"day"` // YYYY-MM-DD
	Counts
}

// WriteJSON writes t as indented JSON.
func (t *Truth) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// WriteFile writes t as JSON to path, through a temporary file and a
// rename.
func (t *Truth) WriteFile(path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".truth-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = t.WriteJSON(f); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// tally keeps the truth as it comes: bitsets by family-local address and
// bot index, counters by network and day.
type tally struct {
	mu  sync.Mutex
	pop *population
	f   [numFamilies]famTally
	any bitset // addresses seen in any family
}

type famTally struct {
	ips, bots                          bitset
	callbacks, events, errors, refused int64
	netCallbacks, netEvents            []int64 // by network
	days                               map[int64]*dayTally
}

type dayTally struct {
	ips, bots         bitset
	callbacks, events int64
}

func newTally(p *population, networks int) *tally {
	t := &tally{pop: p, any: newBitset(p.addrs)}
	for f := range t.f {
		ft := &t.f[f]
		ft.ips = newBitset(len(p.famAddrs[f]))
		ft.bots = newBitset(p.famBots[f])
		ft.netCallbacks = make([]int64, networks)
		ft.netEvents = make([]int64, networks)
		ft.days = map[int64]*dayTally{}
	}
	return t
}

// record counts a callback of bot at simulated time at that left events
// at the sinkhole; withID says one of them carried its bot id.
func (t *tally) record(bot uint32, at int64, events int, withID bool) {
	p := t.pop
	f := p.fam[bot]
	fa, fb := int(p.faddr[bot]), int(p.fbot[bot])
	t.mu.Lock()
	defer t.mu.Unlock()
	ft := &t.f[f]
	ft.ips.set(fa)
	t.any.set(int(p.addr[bot]))
	ft.callbacks++
	ft.events += int64(events)
	nw := p.famNets[f][fa]
	ft.netCallbacks[nw]++
	ft.netEvents[nw] += int64(events)
	d := floorDiv(at, day)
	dt := ft.days[d]
	if dt == nil {
		dt = &dayTally{ips: newBitset(len(p.famAddrs[f]))}
		if f == famWaledac {
			dt.bots = newBitset(p.famBots[f])
		}
		ft.days[d] = dt
	}
	dt.ips.set(fa)
	dt.callbacks++
	dt.events += int64(events)
	if withID {
		ft.bots.set(fb)
		dt.bots.set(fb)
	}
}

func (t *tally) fail(bot uint32) {
	t.mu.Lock()
	t.f[t.pop.fam[bot]].errors++
	t.mu.Unlock()
}

func (t *tally) refuse(bot uint32) {
	t.mu.Lock()
	t.f[t.pop.fam[bot]].refused++
	t.mu.Unlock()
}

// totals returns callbacks, errors and refusals so far.
func (t *tally) totals() (callbacks, errors, refused int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ft := range t.f {
		callbacks += ft.callbacks
		errors += ft.errors
		refused += ft.refused
	}
	return
}

// Truth returns what the sinkhole got so far. It may be called during Run.
func (s *Sim) Truth() *Truth {
	t, p, w := s.tally, &s.pop, s.world
	origin, to := s.origin.Load(), s.reached.Load()
	tr := &Truth{
		Seed: s.cfg.Seed, Infected: p.n,
		From: time.Unix(0, origin).UTC(), To: time.Unix(0, to).UTC(),
		Notified:      s.Notified(),
		MaxLagSeconds: math.Round(time.Duration(s.maxLag.Load()).Seconds()*1000) / 1000,
		Families:      map[string]FamilyTruth{},
	}
	for b := range p.n {
		if s.cleanAt(uint32(b)) > to {
			tr.Active++
		}
	}
	if len(s.cfg.Sensors) > 0 {
		tr.Sensors = make([]SensorTruth, len(s.perSensor))
		for i := range tr.Sensors {
			st := &s.perSensor[i]
			tr.Sensors[i] = SensorTruth{Bots: (p.n + len(tr.Sensors) - 1 - i) / len(tr.Sensors),
				Callbacks: st.callbacks.Load(), Events: st.events.Load()}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	nn := len(w.Networks)
	allByNet := make([]Counts, nn)
	t.any.each(func(a int) { allByNet[p.netOfAddr(uint32(a))].IPs++ })
	tr.IPs = int64(t.any.count())
	for f := range numFamilies {
		ft := &t.f[f]
		if p.famBots[f] == 0 && ft.callbacks == 0 {
			continue
		}
		out := FamilyTruth{
			Family: familyNames[f], Infected: p.famBots[f],
			Counts: Counts{
				IPs: int64(ft.ips.count()), Bots: int64(ft.bots.count()),
				Callbacks: ft.callbacks, Events: ft.events,
			},
			Errors: ft.errors, Refused: ft.refused,
			ByASN: []NetworkCount{}, ByCountry: []CountryCount{}, ByDay: []DayCount{},
		}
		byNet := make([]Counts, nn)
		ft.ips.each(func(i int) { byNet[p.famNets[f][i]].IPs++ })
		ft.bots.each(func(i int) { byNet[p.botNets[f][i]].Bots++ })
		for i := range byNet {
			byNet[i].Callbacks, byNet[i].Events = ft.netCallbacks[i], ft.netEvents[i]
			allByNet[i].Bots += byNet[i].Bots
			allByNet[i].Callbacks += byNet[i].Callbacks
			allByNet[i].Events += byNet[i].Events
			if byNet[i] != (Counts{}) {
				nw := w.Networks[i]
				out.ByASN = append(out.ByASN, NetworkCount{ASN: nw.ASN, ASName: nw.ASName, Country: nw.CountryCode, Counts: byNet[i]})
			}
		}
		sort.SliceStable(out.ByASN, func(i, j int) bool {
			a, b := out.ByASN[i], out.ByASN[j]
			return a.IPs > b.IPs || a.IPs == b.IPs && a.ASN < b.ASN
		})
		out.ByCountry = byCountry(w.Networks, byNet)
		days := make([]int64, 0, len(ft.days))
		for d := range ft.days {
			days = append(days, d)
		}
		sort.Slice(days, func(i, j int) bool { return days[i] < days[j] })
		for _, d := range days {
			dt := ft.days[d]
			c := Counts{IPs: int64(dt.ips.count()), Callbacks: dt.callbacks, Events: dt.events}
			if dt.bots != nil {
				c.Bots = int64(dt.bots.count())
			}
			out.ByDay = append(out.ByDay, DayCount{Day: time.Unix(0, d*day).UTC().Format(time.DateOnly), Counts: c})
		}
		tr.Bots += out.Bots
		tr.Callbacks += out.Callbacks
		tr.Events += out.Events
		tr.Errors += out.Errors
		tr.Refused += out.Refused
		tr.Families[out.Family] = out
	}
	tr.ByCountry = byCountry(w.Networks, allByNet)
	return tr
}

// byCountry sums network counts by country; IPs and bot ids add up since
// every address is in one network.
func byCountry(networks []demoworld.Network, byNet []Counts) []CountryCount {
	idx := map[string]int{}
	var out []CountryCount
	for i, c := range byNet {
		if c == (Counts{}) {
			continue
		}
		cc := networks[i].CountryCode
		j, ok := idx[cc]
		if !ok {
			j = len(out)
			idx[cc] = j
			out = append(out, CountryCount{Country: cc})
		}
		o := &out[j].Counts
		o.IPs += c.IPs
		o.Bots += c.Bots
		o.Callbacks += c.Callbacks
		o.Events += c.Events
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].IPs > out[j].IPs || out[i].IPs == out[j].IPs && out[i].Country < out[j].Country
	})
	if out == nil {
		out = []CountryCount{}
	}
	return out
}
