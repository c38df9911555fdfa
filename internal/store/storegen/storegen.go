// Package storegen generates deterministic synthetic sinkhole events with a
// realistic spread of infected hosts over networks and countries, for the
// benchmarks of the event store, and later for the simulator.
//
// The same configuration and seed always give the same events in the same
// order, so that two storage engines can be fed identical data.
package storegen

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// Waledac describes a week of a Waledac-like botnet calling the sinkhole:
// every host calls back CallbacksPerDay times a day over HTTP, spread evenly
// over the day; hosts are spread over ASNs and ASNs over countries with a
// skewed (Zipf) distribution, as real infections are; a few hosts share a
// public address behind a NAT and are told apart by their bot id.
//
// Zero fields take the defaults named in their comments.
type Waledac struct {
	// Hosts is the number of infected hosts (bots); 58,000 by default.
	Hosts int
	// Days is the number of days generated; 7 by default.
	Days int
	// CallbacksPerDay is how often each host calls back a day; 36 by default.
	CallbacksPerDay int
	// ASNs is the number of networks the hosts are spread over; 5,000 by
	// default.
	ASNs int
	// Countries is the number of countries the networks are spread over, at
	// most 150 (the default).
	Countries int
	// Start is the first instant generated, truncated to the day;
	// 2024-03-04 UTC by default.
	Start time.Time
	// Seed seeds the random generator; the same seed gives the same events.
	Seed uint64
	// BatchSize is the number of events handed to the callback at a time;
	// 10,000 by default.
	BatchSize int
	// NoPayload leaves out the payload hash and head, which are random and
	// so take most of the room on disk.
	NoPayload bool
}

// ForEvents returns the default configuration scaled to about n events by
// changing the number of hosts (n ≤ 0 keeps the default of 14,616,000).
func ForEvents(n int) Waledac {
	w := Waledac{}.withDefaults()
	if n > 0 {
		w.Hosts = max(1, (n+w.Days*w.CallbacksPerDay-1)/(w.Days*w.CallbacksPerDay))
	}
	return w
}

// Events returns the number of events Generate produces.
func (w Waledac) Events() int {
	w = w.withDefaults()
	return w.Hosts * w.Days * w.CallbacksPerDay
}

func (w Waledac) withDefaults() Waledac {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&w.Hosts, 58_000)
	def(&w.Days, 7)
	def(&w.CallbacksPerDay, 36)
	def(&w.ASNs, 5_000)
	def(&w.Countries, len(countryCodes))
	def(&w.BatchSize, 10_000)
	w.Countries = min(w.Countries, len(countryCodes))
	if w.Start.IsZero() {
		w.Start = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)
	}
	w.Start = w.Start.UTC().Truncate(24 * time.Hour)
	return w
}

// host is one infected machine, precomputed once.
type host struct {
	ip      netip.Addr
	port    uint16
	asn     uint32
	asName  string
	country string
	botID   string
	lat     float64
	lon     float64
	offset  time.Duration // within a callback slot
	agent   string
	domain  int
}

// Generate calls fn with consecutive batches of events in time order. The
// batch slice is reused between calls: fn must copy what it keeps. Generate
// stops at the first error of fn and returns it.
func (w Waledac) Generate(fn func(batch []event.Event) error) error {
	w = w.withDefaults()
	r := rand.New(rand.NewPCG(w.Seed, 0x5741_4c45_4441_4321))
	hosts := w.hosts(r)
	slot := 24 * time.Hour / time.Duration(w.CallbacksPerDay)
	sinkIP := netip.AddrFrom4([4]byte{192, 0, 2, 53})

	batch := make([]event.Event, 0, w.BatchSize)
	var head []byte
	var sum [32]byte
	for d := range w.Days {
		day := w.Start.Add(time.Duration(d) * 24 * time.Hour)
		for s := range w.CallbacksPerDay {
			at := day.Add(time.Duration(s) * slot)
			for i := range hosts {
				h := &hosts[i]
				if len(batch) == 0 && !w.NoPayload {
					head = make([]byte, 0, w.BatchSize*32)
				}
				e := event.Event{
					Time:          at.Add(h.offset),
					Sensor:        "sink-1",
					Protocol:      event.ProtoHTTP,
					Transport:     event.TransportTCP,
					SrcIP:         h.ip,
					SrcPort:       h.port + uint16(s),
					DstIP:         sinkIP,
					DstPort:       80,
					Domain:        domains[h.domain],
					Zone:          domains[h.domain],
					Case:          "waledac-2024",
					Family:        "waledac",
					Tag:           "v2",
					BotID:         h.botID,
					HTTPMethod:    "POST",
					HTTPPath:      "/" + pages[(i+s)%len(pages)],
					HTTPUserAgent: h.agent,
					Bytes:         int64(400 + r.IntN(800)),
					ASN:           h.asn,
					ASName:        h.asName,
					CountryCode:   h.country,
					Latitude:      h.lat,
					Longitude:     h.lon,
				}
				if !w.NoPayload {
					for k := 0; k < len(sum); k += 8 {
						v := r.Uint64()
						for b := range 8 {
							sum[k+b] = byte(v >> (8 * b))
						}
					}
					e.PayloadSHA256 = hex.EncodeToString(sum[:])
					start := len(head)
					head = append(head, "a="...)
					head = append(head, sum[:30]...)
					e.PayloadHead = head[start:len(head):len(head)]
				}
				batch = append(batch, e)
				if len(batch) == w.BatchSize {
					if err := fn(batch); err != nil {
						return err
					}
					batch = batch[:0]
				}
			}
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// hosts draws the infected hosts: ASNs by Zipf, each ASN in one country
// drawn by Zipf, addresses inside a per-ASN block, and 3 % of hosts sharing
// the address of the host before them (NAT).
func (w Waledac) hosts(r *rand.Rand) []host {
	asnZipf := rand.NewZipf(r, 1.1, 2, uint64(w.ASNs-1))
	ccZipf := rand.NewZipf(r, 1.3, 1, uint64(w.Countries-1))
	type network struct {
		asn     uint32
		name    string
		country string
		prefix  [3]byte
		lat     float64
		lon     float64
	}
	nets := make([]network, w.ASNs)
	for i := range nets {
		asn := uint32(1000 + i*7 + r.IntN(7))
		cc := countryCodes[ccZipf.Uint64()]
		nets[i] = network{
			asn:     asn,
			name:    fmt.Sprintf("NET-%d-%s", asn, cc),
			country: cc,
			prefix:  [3]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256))},
			lat:     float64(r.IntN(120_000)-60_000) / 1000,
			lon:     float64(r.IntN(360_000)-180_000) / 1000,
		}
	}
	hs := make([]host, w.Hosts)
	var id [8]byte
	for i := range hs {
		n := &nets[asnZipf.Uint64()]
		for b := range id {
			id[b] = byte(r.Uint32())
		}
		h := host{
			ip:      netip.AddrFrom4([4]byte{n.prefix[0], n.prefix[1], n.prefix[2] ^ byte(r.IntN(64)), byte(r.IntN(256))}),
			port:    uint16(1024 + r.IntN(60_000)),
			asn:     n.asn,
			asName:  n.name,
			country: n.country,
			botID:   hex.EncodeToString(id[:]),
			lat:     n.lat + float64(r.IntN(2000)-1000)/1000,
			lon:     n.lon + float64(r.IntN(2000)-1000)/1000,
			offset:  time.Duration(r.Int64N(int64(24 * time.Hour / time.Duration(w.CallbacksPerDay)))),
			agent:   agents[r.IntN(len(agents))],
			domain:  r.IntN(len(domains)),
		}
		if i > 0 && r.IntN(100) < 3 { // behind the same NAT as the host before
			p := hs[i-1]
			h.ip, h.asn, h.asName, h.country, h.lat, h.lon = p.ip, p.asn, p.asName, p.country, p.lat, p.lon
		}
		hs[i] = h
	}
	// Order the hosts by their offset in the slot so that the events of a
	// slot come out in time order.
	slices.SortStableFunc(hs, func(a, b host) int { return int(a.offset - b.offset) })
	return hs
}

var domains = []string{
	"bestmirabella.example", "bestlovehome.example", "chatloveonline.example", "freeflashhome.example",
	"greatsnowblog.example", "happycloudinc.example", "kissflowerhome.example", "loveisaroundyou.example",
	"lovelifeportal.example", "mirabellaonline.example", "superchatonline.example", "youareonlyloveme.example",
}

var pages = []string{"index.php", "main.php", "default.php", "login.php", "page.php"}

var agents = []string{
	"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; .NET CLR 2.0.50727)",
	"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
	"Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
	"Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:1.9.0.10) Gecko/2009042316 Firefox/3.0.10",
}

// countryCodes holds 150 ISO 3166-1 alpha-2 codes, roughly by how many
// infected hosts such countries tend to have, so that Zipf draws put the
// most hosts in the first ones.
var countryCodes = [...]string{
	"US", "CN", "IN", "BR", "RU", "VN", "ID", "TR", "MX", "TH",
	"DE", "GB", "FR", "IT", "ES", "PL", "UA", "KR", "JP", "PH",
	"EG", "PK", "IR", "AR", "CO", "RO", "TW", "MY", "SA", "ZA",
	"CA", "AU", "NL", "BD", "VE", "CL", "PE", "MA", "DZ", "KZ",
	"HU", "CZ", "GR", "PT", "BG", "RS", "IL", "AE", "BY", "SE",
	"BE", "AT", "CH", "NG", "KE", "TN", "IQ", "SY", "JO", "LB",
	"EC", "BO", "PY", "UY", "GT", "HN", "SV", "NI", "CR", "PA",
	"DO", "CU", "PR", "JM", "TT", "HR", "SI", "SK", "LT", "LV",
	"EE", "FI", "NO", "DK", "IE", "IS", "LU", "MT", "CY", "AL",
	"MK", "BA", "ME", "MD", "GE", "AM", "AZ", "UZ", "TM", "KG",
	"TJ", "MN", "NP", "LK", "MM", "KH", "LA", "SG", "HK", "MO",
	"NZ", "FJ", "PG", "GH", "CI", "SN", "CM", "UG", "TZ", "ET",
	"SD", "LY", "AO", "MZ", "ZM", "ZW", "BW", "NA", "MG", "MU",
	"RW", "BJ", "TG", "BF", "ML", "NE", "TD", "GA", "CG", "CD",
	"QA", "KW", "BH", "OM", "YE", "AF", "BT", "MV", "BN", "TL",
}
