package xfr

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/testnet"
)

// sinkSource is a Source of sinkhole-like zones, as dnssink serves them.
type sinkSource struct {
	mu    sync.Mutex
	zones map[string][]dns.RR
}

func (s *sinkSource) ZoneRecords(name string) ([]dns.RR, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rrs, ok := s.zones[name]
	return rrs, ok
}

func (s *sinkSource) set(name string, rrs []dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[name] = rrs
}

// sinkZone builds a seized zone the way the sinkhole serves it: apex SOA,
// NS, A, AAAA, MX, TXT naming the case, and the same below the apex by
// wildcard.
func sinkZone(t *testing.T, zone string, serial uint32, txt string) []dns.RR {
	var lines []string
	lines = append(lines,
		fmt.Sprintf("%s 300 IN SOA ns1.sinkhole.test. hostmaster.sinkhole.test. %d 3600 600 604800 60", zone, serial),
		zone+" 300 IN NS ns1.sinkhole.test.",
		zone+" 300 IN NS ns2.sinkhole.test.",
	)
	for _, owner := range []string{zone, "*." + zone} {
		lines = append(lines,
			owner+" 300 IN A 192.0.2.53",
			owner+" 300 IN A 192.0.2.54",
			owner+" 300 IN AAAA 2001:db8::53",
			owner+" 300 IN MX 10 mx."+zone,
			owner+` 300 IN TXT "`+txt+`" "operator Example CERT"`,
		)
	}
	lines = append(lines, "mx."+zone+" 300 IN A 192.0.2.25")
	return zoneText(t, lines...)
}

// expected answers name/qtype from zone records the way an authoritative
// server does: exact owner, else the wildcard, NODATA when the type is
// missing.
func expected(zone []dns.RR, apex, name string, qtype uint16) []string {
	var exact, wild []string
	owners := map[string]bool{}
	for _, rr := range zone {
		owners[rr.Header().Name] = true
	}
	for _, rr := range zone {
		h := rr.Header()
		if h.Rrtype != qtype {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Name = name
		switch {
		case h.Name == name:
			exact = append(exact, c.String())
		case h.Name == "*."+apex && !owners[name]:
			wild = append(wild, c.String())
		}
	}
	if owners[name] {
		return sorted(exact)
	}
	return sorted(wild)
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func answerStrings(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		out = append(out, rr.String())
	}
	return sorted(out)
}

// TestNSDSecondary runs NSD 4.6 as a secondary of sinkhole zones, by AXFR
// with TSIG, and checks that it answers exactly what the zones hold, then
// that a NOTIFY brings a changed zone over.
func TestNSDSecondary(t *testing.T) {
	nsd := needBinary(t, "nsd", "nsd")
	dir := t.TempDir()
	nsdPort := testnet.FreePort(t)
	nsdAddr := fmt.Sprintf("127.0.0.1:%d", nsdPort)

	src := &sinkSource{zones: map[string][]dns.RR{}}
	zones := []string{"waledac-cc1.test.", "waledac-cc2.test.", "avalanche-x.test."}
	for i, z := range zones {
		src.set(z, sinkZone(t, z, uint32(100+i), "sinkholed by order of E.D. Va. 1:10-cv-00156"))
	}
	s, xfrAddr := startServer(t, Config{Fallback: src, Notify: []string{nsdAddr}, NotifyKey: testKey})
	_, xfrPort, _ := splitHostPort(xfrAddr)

	if err := os.MkdirAll(filepath.Join(dir, "xfr"), 0o755); err != nil {
		t.Fatal(err)
	}
	var zc strings.Builder
	for _, z := range zones {
		fmt.Fprintf(&zc, "zone:\n\tname: %q\n\trequest-xfr: AXFR 127.0.0.1@%s %s\n\tallow-notify: 127.0.0.1 %s\n", z, xfrPort, testKey, testKey)
	}
	conf := filepath.Join(dir, "nsd.conf")
	writeFile(t, conf, testnet.NSDConfig(dir, nsdPort, testKey, testSecret, zc.String()))
	d := startDaemon(t, nsd, "-d", "-c", conf)

	for i, z := range zones {
		waitFor(t, 20*time.Second, "NSD to transfer "+z, d, func() error {
			r, err := ask(nsdAddr, z, dns.TypeSOA, false)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != uint32(100+i) {
				return fmt.Errorf("SOA %s: %s %v", z, dns.RcodeToString[r.Rcode], r.Answer)
			}
			return nil
		})
	}

	compare := func(z string) {
		t.Helper()
		rrs, _ := src.ZoneRecords(z)
		for _, name := range []string{z, "www." + z, "a.b.c." + z, "mx." + z, "CaSe." + z} {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS, dns.TypeSOA, dns.TypeSRV} {
				r, err := ask(nsdAddr, name, qt, false)
				if err != nil {
					t.Errorf("%s %s: %v", name, dns.TypeToString[qt], err)
					continue
				}
				want := expected(rrs, z, strings.ToLower(name), qt)
				got := answerStrings(r)
				for i := range got { // NSD preserves the query's case
					got[i] = strings.Replace(got[i], name, strings.ToLower(name), 1)
				}
				if r.Rcode != dns.RcodeSuccess || !r.Authoritative || !slices.Equal(got, want) {
					t.Errorf("%s %s: %s aa=%v\n got %q\nwant %q", name, dns.TypeToString[qt], dns.RcodeToString[r.Rcode], r.Authoritative, got, want)
				}
			}
		}
	}
	for _, z := range zones {
		compare(z)
	}

	// A changed sinkhole zone reaches NSD through NOTIFY (signed, as
	// allow-notify requires the key).
	z := zones[1]
	src.set(z, sinkZone(t, z, 200, "sinkholed by order of W.D. Pa. 2:16-cv-01553"))
	s.Notify(z)
	waitFor(t, 10*time.Second, "NSD to pick up the change", d, func() error {
		r, err := ask(nsdAddr, "x."+z, dns.TypeTXT, false)
		if err != nil {
			return err
		}
		if len(r.Answer) == 0 || !strings.Contains(r.Answer[0].String(), "2:16-cv-01553") {
			return fmt.Errorf("TXT %v", r.Answer)
		}
		return nil
	})
	compare(z)
	for _, z := range zones {
		if want := "zone " + z + " received update to serial "; !strings.Contains(d.out.String(), want) ||
			!strings.Contains(d.out.String(), "TSIG verified with key "+testKey) {
			t.Errorf("NSD log lacks %q ... TSIG verified", want)
		}
	}
	if v := value(s.met.transfers.WithLabelValues("axfr", "full")); v != 4 {
		t.Errorf("server counted %v full AXFRs, want 4", v)
	}
}
