// Package demoworld makes the demo world database: a MaxMind-format file
// (City layout with AS fields) that maps the loopback range 127.0.0.0/8 to
// a realistic spread of countries and networks, so that the simulator's
// bots, bound to loopback source addresses, show up on the infection map
// as if they were spread over the world.
//
// All of it is FICTION, labelled as such in the data and in the database:
// the shares by country are rounded, plausible figures in the spirit of the
// public reporting on the Waledac botnet; the AS numbers are from the
// private-use ranges and their names say "(demo)"; only the city names and
// coordinates are real.
//
// Address plan: 127.0.0.0/16 stays unmapped (127.0.0.1 is plain loopback).
// The 65,280 /24 blocks from 127.1.0.0 to 127.255.255.0 are dealt out to
// the networks in proportion to their shares, each network one contiguous
// run of blocks, in the order of data/networks.csv.
package demoworld

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

//go:embed data/countries.csv
var countriesCSV []byte

//go:embed data/networks.csv
var networksCSV []byte

// DatabaseType is the database_type of the demo world's metadata; the
// enricher reads it as a City layout.
const DatabaseType = "Takedown-Demo-World-City"

// FileName is the name Write gives the database in a directory.
const FileName = "takedown-demo-world.mmdb"

const (
	firstBlock   = 1 << 8       // 127.1.0.0 in /24 blocks from 127.0.0.0
	totalBlocks  = 1<<16 - 1<<8 // 65,280
	hostsInBlock = 254          // .1 to .254
	buildEpoch   = 1265760000   // 2010-02-10, the week of the Waledac takedown
	demoNote     = "FICTIONAL demo data"
)

// Country is one country of the demo world.
type Country struct {
	Code  string // ISO 3166-1 alpha-2
	Name  string
	Share float64 // of all bots, from 0 to 1
}

// Network is one fictional network of the demo world.
type Network struct {
	CountryCode string
	ASN         uint32
	ASName      string
	Region      string
	City        string
	Latitude    float64
	Longitude   float64
	// Share is the network's share of all bots, from 0 to 1.
	Share float64
	// First and Last are the first and last address of its blocks.
	First, Last netip.Addr

	firstBlock, blocks int
}

// Prefixes returns the network's address blocks as CIDR prefixes.
func (n Network) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	b, end := n.firstBlock, n.firstBlock+n.blocks
	for b < end {
		size := 1
		for b%(size*2) == 0 && b+size*2 <= end {
			size *= 2
		}
		bits := 24
		for s := size; s > 1; s /= 2 {
			bits--
		}
		out = append(out, netip.PrefixFrom(blockAddr(b, 0), bits))
		b += size
	}
	return out
}

// World is the demo world: its countries and networks.
type World struct {
	Countries []Country
	Networks  []Network
	hosts     uint64 // usable addresses
	step      uint64 // of the permutation in Addr
}

// New builds the demo world from the embedded tables.
func New() (*World, error) {
	countries, err := readCSV("countries.csv", countriesCSV, 3)
	if err != nil {
		return nil, err
	}
	networks, err := readCSV("networks.csv", networksCSV, 8)
	if err != nil {
		return nil, err
	}
	w := &World{}
	weights := map[string]float64{}
	var total float64
	for _, r := range countries {
		wt, err := strconv.ParseFloat(r[2], 64)
		if err != nil || wt <= 0 {
			return nil, fmt.Errorf("demoworld: countries.csv: weight %q of %s is not a positive number", r[2], r[0])
		}
		if _, dup := weights[r[0]]; dup {
			return nil, fmt.Errorf("demoworld: countries.csv: %s is listed twice", r[0])
		}
		weights[r[0]] = wt
		total += wt
		w.Countries = append(w.Countries, Country{Code: r[0], Name: r[1]})
	}
	inCountry := map[string]float64{}
	for _, r := range networks {
		if _, ok := weights[r[0]]; !ok {
			return nil, fmt.Errorf("demoworld: networks.csv: country %q is not in countries.csv", r[0])
		}
		wt, err := strconv.ParseFloat(r[2], 64)
		if err != nil || wt <= 0 {
			return nil, fmt.Errorf("demoworld: networks.csv: weight %q of AS%s is not a positive number", r[2], r[1])
		}
		inCountry[r[0]] += wt
	}
	seen := map[uint32]bool{}
	for _, r := range networks {
		asn, err := strconv.ParseUint(r[1], 10, 32)
		if err != nil || !privateASN(uint32(asn)) || seen[uint32(asn)] {
			return nil, fmt.Errorf("demoworld: networks.csv: %q is not a private-use AS number used once", r[1])
		}
		seen[uint32(asn)] = true
		lat, err1 := strconv.ParseFloat(r[6], 64)
		lon, err2 := strconv.ParseFloat(r[7], 64)
		if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
			return nil, fmt.Errorf("demoworld: networks.csv: coordinates %s, %s of AS%d are not valid", r[6], r[7], asn)
		}
		wt, _ := strconv.ParseFloat(r[2], 64)
		w.Networks = append(w.Networks, Network{
			CountryCode: r[0], ASN: uint32(asn), ASName: r[3], Region: r[4], City: r[5],
			Latitude: lat, Longitude: lon,
			Share: weights[r[0]] / total * wt / inCountry[r[0]],
		})
	}
	for i := range w.Countries {
		c := &w.Countries[i]
		if inCountry[c.Code] == 0 {
			return nil, fmt.Errorf("demoworld: country %s has no network", c.Code)
		}
		c.Share = weights[c.Code] / total
	}
	w.allocate()
	return w, nil
}

func privateASN(a uint32) bool {
	return a >= 64512 && a <= 65534 || a >= 4200000000 && a <= 4294967294
}

func readCSV(name string, data []byte, fields int) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = fields
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("demoworld: %s: %w", name, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("demoworld: %s has no rows", name)
	}
	return recs[1:], nil // past the header
}

// allocate deals out the /24 blocks by the largest remainder method, at
// least one per network.
func (w *World) allocate() {
	n := len(w.Networks)
	rem := make([]float64, n)
	left := totalBlocks
	for i := range w.Networks {
		exact := w.Networks[i].Share * totalBlocks
		b := max(1, int(exact))
		w.Networks[i].blocks = b
		rem[i] = exact - float64(b)
		left -= b
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rem[order[a]] > rem[order[b]] })
	for i := 0; left > 0; i = (i + 1) % n {
		w.Networks[order[i]].blocks++
		left--
	}
	next := firstBlock
	for i := range w.Networks {
		nw := &w.Networks[i]
		nw.firstBlock = next
		next += nw.blocks
		nw.First = blockAddr(nw.firstBlock, 0)
		nw.Last = blockAddr(next-1, 255)
	}
	w.hosts = uint64(totalBlocks) * hostsInBlock
	// A step near the golden ratio of the range, coprime with it: the
	// first k bots spread evenly over the blocks, so over the networks in
	// proportion to their shares.
	w.step = uint64(float64(w.hosts) * 0.6180339887498949)
	for gcd(w.step, w.hosts) != 1 {
		w.step++
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// blockAddr returns host h of /24 block b (counted from 127.0.0.0).
func blockAddr(b, h int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(b >> 8), byte(b), byte(h)})
}

// Hosts is how many distinct addresses Addr hands out before repeating.
func (w *World) Hosts() uint64 { return w.hosts }

// Addr returns the loopback source address of bot i. Distinct bots below
// Hosts get distinct addresses; the networks get bots in proportion to
// their shares.
func (w *World) Addr(i uint64) netip.Addr {
	h := (i % w.hosts) * w.step % w.hosts
	return blockAddr(firstBlock+int(h/hostsInBlock), int(h%hostsInBlock)+1)
}

// NetworkOf returns the network that a belongs to.
func (w *World) NetworkOf(a netip.Addr) (Network, bool) {
	a = a.Unmap()
	if !a.Is4() {
		return Network{}, false
	}
	b4 := a.As4()
	if b4[0] != 127 {
		return Network{}, false
	}
	b := int(b4[1])<<8 | int(b4[2])
	i, found := slices.BinarySearchFunc(w.Networks, b, func(n Network, b int) int { return n.firstBlock - b })
	if !found {
		i--
	}
	if i < 0 || b >= w.Networks[i].firstBlock+w.Networks[i].blocks {
		return Network{}, false
	}
	return w.Networks[i], true
}

// Write writes the demo world database to out.
func (w *World) Write(out io.Writer) error {
	t, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: DatabaseType,
		Description: map[string]string{
			"en": demoNote + ": takedown's demo world, loopback 127.1.0.0-127.255.255.255 spread over fictional networks (private-use AS numbers) in real cities, by rounded, plausible Waledac-like shares; not measurements",
		},
		Languages:               []string{"en"},
		IncludeReservedNetworks: true,
		IPVersion:               6,
		RecordSize:              24,
		BuildEpoch:              buildEpoch,
	})
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, c := range w.Countries {
		names[c.Code] = c.Name
	}
	for _, n := range w.Networks {
		country := mmdbtype.Map{
			"iso_code": mmdbtype.String(n.CountryCode),
			"names":    mmdbtype.Map{"en": mmdbtype.String(names[n.CountryCode])},
		}
		rec := mmdbtype.Map{
			"country":            country,
			"registered_country": country,
			"subdivisions":       mmdbtype.Slice{mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.Region)}}},
			"city":               mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.City)}},
			"location": mmdbtype.Map{
				"latitude":        mmdbtype.Float64(n.Latitude),
				"longitude":       mmdbtype.Float64(n.Longitude),
				"accuracy_radius": mmdbtype.Uint16(50),
			},
			"autonomous_system_number":       mmdbtype.Uint32(n.ASN),
			"autonomous_system_organization": mmdbtype.String(n.ASName),
			"demo":                           mmdbtype.String(demoNote),
		}
		first, last := n.First.AsSlice(), n.Last.AsSlice()
		if err := t.InsertRange(net.IP(first), net.IP(last), rec); err != nil {
			return fmt.Errorf("demoworld: inserting AS%d: %w", n.ASN, err)
		}
	}
	_, err = t.WriteTo(out)
	return err
}

// WriteFile writes the database to path, through a temporary file and a
// rename, so that an enricher watching path never reads half of it.
func (w *World) WriteFile(path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".demo-world-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err := w.Write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Write writes the demo world database to out.
func Write(out io.Writer) error {
	w, err := New()
	if err != nil {
		return err
	}
	return w.Write(out)
}
