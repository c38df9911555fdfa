package dnssink

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
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
			{"refused", question("www.not-seized.example.", dns.TypeA)},
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

// BenchmarkAnswerSigned measures the packet handler on signed zones:
// queries with the DO bit on the fast path and on the general path (its
// reference), and one without DO beside them; events included, RRL off.
func BenchmarkAnswerSigned(b *testing.B) {
	cfg := testConfig()
	cfg.Listen = nil
	cfg.Recorder = discard{}
	zones := benchZones(276)
	keys := map[string][]dnssec.Key{}
	for i := range 8 {
		keys[fmt.Sprintf("case-%d", i)] = []dnssec.Key{testKey(b, dns.ECDSAP256SHA256)}
	}
	cfg.Served = signedSet(b, testSinkhole(), zones, keys)
	s, _ := startServer(b, cfg)
	waitSigned(b, s, int64(len(zones)))
	last := zones[len(zones)-1].Name + "."
	do := func(name string, qt uint16) *dns.Msg {
		m := question(name, qt)
		m.SetEdns0(1232, true)
		return m
	}
	for _, q := range []struct {
		name string
		m    *dns.Msg
	}{
		{"apexA-DO", do(last, dns.TypeA)},
		{"wildcardA-DO", do("Bot-1234."+last, dns.TypeA)},
		{"wildcardTXT-DO", do("bot."+last, dns.TypeTXT)},
		{"nodata-DO", do("bot."+last, dns.TypeSRV)},
		{"wildcardA-EDNS", func() *dns.Msg { m := question("bot."+last, dns.TypeA); m.SetEdns0(1232, false); return m }()},
	} {
		raw, _ := q.m.Pack()
		for _, path := range []string{"fast", "general"} {
			b.Run(fmt.Sprintf("zones=276/path=%s/q=%s", path, q.name), func(b *testing.B) {
				s.noFast = path == "general"
				b.ReportAllocs()
				pi := &packetInfo{src: netip.MustParseAddrPort("192.0.2.7:4242"), dst: netip.MustParseAddrPort("192.0.2.53:53")}
				out := make([]byte, 0, 4096)
				var n int
				for b.Loop() {
					resp := s.handlePacket(out, raw, pi)
					if resp == nil {
						b.Fatal("no answer")
					}
					n = len(resp)
				}
				b.ReportMetric(float64(n), "resp-bytes")
			})
		}
	}
	s.noFast = false
}

// BenchmarkSign measures the signing of one zone (13 RRsets: SOA, NS,
// DNSKEY, two NSEC, A, AAAA, MX and TXT at the apex and at the wildcard)
// with one key, and the memory each signed zone holds in the sinkhole:
// multiply by the zones of the signing cases (800,000 zones × B/zone).
func BenchmarkSign(b *testing.B) {
	for _, alg := range []uint8{dns.ECDSAP256SHA256, dns.ED25519} {
		b.Run("alg="+dns.AlgorithmToString[alg], func(b *testing.B) {
			sh := testSinkhole()
			ans, err := newAnswers(&sh)
			if err != nil {
				b.Fatal(err)
			}
			c := &servedset.Case{Name: "case", TXT: "sinkholed by order of the court, case-1", Keys: []dnssec.Key{testKey(b, alg)}}
			txt := splitTXT(c.TXT)
			zk := newZoneKeys(c, ans, txt, packTXT(txt))
			store := newSignedZones()
			names := make([]string, 0, 1<<16)
			now := time.Now()
			before := heapAlloc()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i == len(names) {
					names = append(names, fmt.Sprintf("d%07dx.example", i))
				}
				sz, err := zk.sign(names[i], 1, now)
				if err != nil {
					b.Fatal(err)
				}
				store.put(names[i], sz)
			}
			b.StopTimer()
			held := float64(heapAlloc()-before) - float64(len(names))*float64(len("d0000000x.example")+16)
			b.ReportMetric(held/float64(store.n.Load()), "B/zone")
			runtime.KeepAlive(store)
		})
	}
}
