package dnssink

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/servedset"
)

// benchZones returns n zones of a few cases, like a large takedown.
func benchZones(n int) []testZone {
	zones := make([]testZone, n)
	for i := range zones {
		c := fmt.Sprintf("case-%d", i%8)
		zones[i] = testZone{Name: fmt.Sprintf("d%07dx.example", i), Case: c, TXT: "sinkholed by order of the court, " + c}
	}
	return zones
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkAnswer measures the raw packet handler, events included (to a
// recorder that drops them), with RRL off.
func BenchmarkAnswer(b *testing.B) {
	for _, n := range []int{276, 1_000_000} {
		cfg := testConfig()
		cfg.Listen = nil
		cfg.Recorder = discard{}
		cfg.Served = servedSet(b, testSinkhole(), nil)
		s, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		before := heapAlloc()
		zones := benchZones(n)
		start := time.Now()
		setZones(b, cfg.Served, nil, zones)
		load := time.Since(start)
		zones = nil
		heap := heapAlloc() - before
		last := fmt.Sprintf("d%07dx.example.", n-1)
		for _, q := range []struct {
			name string
			m    *dns.Msg
		}{
			{"apexA", question(last, dns.TypeA)},
			{"wildcardA", question("Bot-1234."+last, dns.TypeA)},
			{"wildcardA-EDNS", func() *dns.Msg { m := question("bot."+last, dns.TypeA); m.SetEdns0(1232, false); return m }()},
			{"refused", question("www.google.com.", dns.TypeA)},
		} {
			raw, _ := q.m.Pack()
			b.Run(fmt.Sprintf("zones=%d/q=%s", n, q.name), func(b *testing.B) {
				b.ReportAllocs()
				pi := &packetInfo{src: netip.MustParseAddrPort("192.0.2.7:4242"), dst: netip.MustParseAddrPort("192.0.2.53:53")}
				out := make([]byte, 0, 4096)
				for b.Loop() {
					if s.handlePacket(out, raw, pi) == nil {
						b.Fatal("no answer")
					}
				}
				b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
				b.ReportMetric(load.Seconds(), "load-s")
			})
		}
		runtime.KeepAlive(s)
	}
}

// BenchmarkFollow measures one step of a served set of a million zones as
// the sinkhole takes it: one zone released or restrained in turn, applied
// to the set, and the sinkhole's view of it made.
func BenchmarkFollow(b *testing.B) {
	cfg := testConfig()
	cfg.Listen = nil
	cfg.Served = servedSet(b, testSinkhole(), benchZones(1_000_000))
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	one := "d0000007x.example"
	b.Run("zones=1000000/change=1", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			cur := cfg.Served.Load()
			d := &servedset.Delta{From: cur.Serial(), To: cur.Serial() + 1}
			if i%2 == 0 {
				d.Remove = []string{one}
			} else {
				d.Put = []servedset.Zone{{Name: one, Case: "case-7"}}
			}
			if err := cfg.Served.Apply(d); err != nil {
				b.Fatal(err)
			}
		}
		if s.Serial() != cfg.Served.Load().Serial() {
			b.Fatal("the sinkhole did not follow")
		}
	})
}

// BenchmarkAnswerRRL measures the packet handler with the rate limiter on
// at a rate that never limits, so that the cost of the check shows: one
// name asked again and again, and a resolver farm's /24 asking 277
// different seized names in turn (fast path: A; general path: MX).
func BenchmarkAnswerRRL(b *testing.B) {
	cfg := testConfig()
	cfg.Listen = nil
	cfg.Recorder = discard{}
	cfg.RRL = RRLConfig{ResponsesPerSecond: 1_000_000_000, Slip: 2}
	zones := benchZones(277)
	cfg.Served = servedSet(b, testSinkhole(), zones)
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
		names int
	}{
		{"wildcardA/names=1", dns.TypeA, 1},
		{"wildcardA/names=277", dns.TypeA, 277},
		{"wildcardMX/names=277", dns.TypeMX, 277},
		{"refused/names=277", dns.TypeA, 0},
	} {
		var raws [][]byte
		for i := range max(q.names, 277) {
			name := "bot." + zones[i%len(zones)].Name + "."
			if q.names == 0 {
				name = fmt.Sprintf("www.notseized%d.example.", i)
			}
			raw, _ := question(name, q.qtype).Pack()
			raws = append(raws, raw)
			if q.names == 1 {
				break
			}
		}
		b.Run("rrl=on/q="+q.name, func(b *testing.B) {
			b.ReportAllocs()
			pi := &packetInfo{src: netip.MustParseAddrPort("192.0.2.7:4242"), dst: netip.MustParseAddrPort("192.0.2.53:53")}
			out := make([]byte, 0, 4096)
			for i := 0; b.Loop(); i++ {
				if s.handlePacket(out, raws[i%len(raws)], pi) == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}

// BenchmarkRRLCheck measures the rate limiter's verdict alone: a client
// asking for 277 different names (each a bucket of its own), and a client
// in a list of exempt prefixes.
func BenchmarkRRLCheck(b *testing.B) {
	var names [][]byte
	for i := range 277 {
		names = append(names, []byte(fmt.Sprintf("seized-%03d.example.", i)))
	}
	for _, tc := range []struct {
		name   string
		exempt []netip.Prefix
	}{
		{"client=limited", nil},
		{"client=exempt", []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("2001:db8::/32")}},
	} {
		r := newRateLimiter(RRLConfig{ResponsesPerSecond: 1_000_000_000, Slip: 2, IPv4PrefixLen: 24, IPv6PrefixLen: 56, Exempt: tc.exempt}, DefaultRRLTableSize)
		a := netip.MustParseAddr("192.0.2.7")
		now := time.Unix(1_700_000_000, 0)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if r.check(a, rrlAnswer, dns.TypeA, names[i%len(names)], now) != rrlAllow {
					b.Fatal("limited")
				}
			}
		})
	}
}
