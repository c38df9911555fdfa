package uniq

import (
	"encoding/binary"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

var day0 = time.Date(2010, 2, 24, 0, 0, 0, 0, time.UTC)

func ev(day int, hour int, ip, family, bot string) *event.Event {
	return &event.Event{
		Time:  day0.AddDate(0, 0, day).Add(time.Duration(hour) * time.Hour),
		SrcIP: netip.MustParseAddr(ip), Family: family, BotID: bot, Protocol: event.ProtoHTTP,
	}
}

func TestExactCounts(t *testing.T) {
	c := New(Config{})
	for _, e := range []*event.Event{
		ev(0, 1, "198.51.100.1", "waledac", "b1"),
		ev(0, 2, "198.51.100.1", "waledac", "b2"), // NAT: one host, two bots
		ev(0, 3, "::ffff:198.51.100.1", "waledac", "b1"),
		ev(0, 4, "198.51.100.2", "waledac", ""),
		ev(0, 5, "2001:db8::1", "waledac", ""),
		ev(0, 6, "198.51.100.1", "", ""),
		ev(1, 1, "198.51.100.1", "waledac", "b1"),
		ev(1, 2, "198.51.100.3", "waledac", "b3"),
	} {
		c.Observe(e)
	}
	got := c.Day(day0)
	want := []Count{
		{From: day0, To: day0, Family: "unknown", Hosts: 1, Exact: true},
		{From: day0, To: day0, Family: "waledac", Hosts: 3, BotIDs: 2, Exact: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("day 0:\n got %+v\nwant %+v", got, want)
	}
	r := c.Range(day0, day0.AddDate(0, 0, 1))
	if len(r) != 2 || r[1].Hosts != 4 || r[1].BotIDs != 3 || !r[1].Exact {
		t.Fatalf("two days: %+v; want waledac 4 hosts 3 bots", r)
	}
}

// TestSketchBeyondLimit checks the switch to a sketch and its error.
func TestSketchBeyondLimit(t *testing.T) {
	c := New(Config{ExactLimit: 1000})
	const n = 200_000
	for i := range n {
		c.Observe(&event.Event{Time: day0, SrcIP: addr(i), Family: "conficker"})
	}
	got := c.Day(day0)
	if len(got) != 1 || got[0].Exact {
		t.Fatalf("%+v: want one inexact count", got)
	}
	if rel := math.Abs(float64(got[0].Hosts)-n) / n; rel > 0.0125 {
		t.Fatalf("estimate %d for %d hosts: error %.2f%% beyond 3 standard errors", got[0].Hosts, n, rel*100)
	}
	// The same hosts again the next day: the union over both days is
	// still about n, and merging an exact day into a sketch works.
	for i := range n {
		c.Observe(&event.Event{Time: day0.AddDate(0, 0, 1), SrcIP: addr(i), Family: "conficker"})
	}
	c.Observe(&event.Event{Time: day0.AddDate(0, 0, 2), SrcIP: addr(n), Family: "conficker"})
	r := c.Range(day0, day0.AddDate(0, 0, 2))
	if rel := math.Abs(float64(r[0].Hosts)-(n+1)) / n; len(r) != 1 || rel > 0.0125 {
		t.Fatalf("three days: %+v", r)
	}
}

func addr(i int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(0x0a000000+i))
	return netip.AddrFrom4(b)
}

func TestOldDaysDropped(t *testing.T) {
	c := New(Config{Days: 3})
	c.Observe(ev(0, 0, "198.51.100.1", "w", ""))
	c.Observe(ev(5, 0, "198.51.100.1", "w", ""))
	c.Observe(ev(1, 0, "198.51.100.1", "w", "")) // too old now: ignored
	if got := c.Range(day0, day0.AddDate(0, 0, 2)); len(got) != 0 {
		t.Fatalf("days outside the window kept: %+v", got)
	}
	if got := c.Day(day0.AddDate(0, 0, 5)); len(got) != 1 || got[0].Hosts != 1 {
		t.Fatalf("newest day: %+v", got)
	}
}

func TestConcurrentObserve(t *testing.T) {
	c := New(Config{ExactLimit: 500})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				c.Observe(&event.Event{Time: day0, SrcIP: addr(g*2000 + i), Family: "w"})
				if i%100 == 0 {
					c.Day(day0)
				}
			}
		}()
	}
	wg.Wait()
	if got := c.Day(day0); len(got) != 1 || math.Abs(float64(got[0].Hosts)-8000)/8000 > 0.0125 {
		t.Fatalf("%+v: want about 8000", got)
	}
}

// BenchmarkConficker is the Conficker-scale day: 7 million unique
// addresses of one family. It reports the heap the counters hold and their
// error against the exact answer. (-benchtime=1x: one op is the whole day.)
func BenchmarkConficker(b *testing.B) {
	const n = 7_000_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := New(Config{})
		e := event.Event{Time: day0, Family: "conficker"}
		start := time.Now()
		for i := range n {
			e.SrcIP = addr(i)
			c.Observe(&e)
		}
		took := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		got := c.Day(day0)[0].Hosts
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric(100*math.Abs(float64(got)-n)/n, "error-%")
		b.ReportMetric(float64(took.Nanoseconds())/n, "ns/observe")
		runtime.KeepAlive(c)
	}
}

func BenchmarkObserve(b *testing.B) {
	c := New(Config{})
	e := event.Event{Time: day0, Family: "waledac", BotID: "bot-1"}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		e.SrcIP = addr(i % 58000)
		c.Observe(&e)
		i++
	}
}
