// Package worldmap draws choropleth world maps of counts per country — the
// unique infected hosts of a day — as SVG and PNG, for press releases and
// court exhibits, and gives the country shapes to whoever else draws maps
// (the web dashboard).
//
// Shapes: Natural Earth's Admin 0 countries (public domain) at 1:110m, as
// redistributed by the npm package world-atlas 2.0.2, with the 1:50m shapes
// of the countries too small for 1:110m (Singapore, Malta, Bahrain, …). A
// generator (internal/gen, run by go generate) turns them into the embedded
// file data/countries.bin.gz; data/README.md describes it.
//
// Projection: Equal Earth (Šavrič, Patterson and Jenny, 2018), an
// equal-area projection, so that the area coloured is in proportion to the
// land and a big country does not look worse than it is.
//
// Colours: viridis, light (few hosts) to dark (many): told apart by people
// with the common colour-vision deficiencies, and still in order when
// printed in grey. Countries without hosts are light grey. The classes have
// logarithmic breaks rounded to 1, 2 and 5 times a power of ten (see
// Classify).
package worldmap

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Attribution names the source of the shapes, for the map's footer.
const Attribution = "Natural Earth (public domain)"

//go:generate go run ./internal/gen -out data/countries.bin.gz

//go:embed data/countries.bin.gz
var countriesGz []byte

// Point is a position in degrees: longitude east, latitude north (WGS 84).
type Point struct{ Lon, Lat float64 }

// Ring is a closed line: its last point repeats its first.
type Ring []Point

// Polygon is an outer ring, clockwise with north up, followed by its holes
// (counter-clockwise), as in the Natural Earth source and as d3-geo wants
// them. GeoJSON (RFC 7946) wants the opposite: reverse each ring for it.
// No polygon crosses the 180th meridian: those that did are cut there.
type Polygon []Ring

// Country is one country or territory.
type Country struct {
	// Code is the ISO 3166-1 alpha-2 code, upper case; XK for Kosovo.
	Code string
	// Name is the short English name, e.g. "Czechia", "DR Congo".
	Name string
	// Polygons are the country's parts.
	Polygons []Polygon
}

// Countries returns the countries and territories with a shape, ordered by
// code. Each call decodes a fresh copy, which the caller may change.
//
// Countries without an ISO code of their own in the source are drawn as the
// country the GeoIP databases report for them: Northern Cyprus as CY,
// Somaliland as SO. Territories the source includes in another country's
// shape (French Guiana and Réunion in France, Svalbard in Norway, …) have
// none of their own.
func Countries() []Country {
	cs, err := decode(countriesGz)
	if err != nil {
		// The file is generated, embedded and checked by the tests.
		panic("worldmap: embedded data/countries.bin.gz: " + err.Error())
	}
	return cs
}

// decode reads the file format of data/README.md.
func decode(gz []byte) ([]Country, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	const magic = "TDWM\x01"
	if !bytes.HasPrefix(data, []byte(magic)) {
		return nil, errors.New("not a TDWM version 1 file")
	}
	d := decoder{b: data[len(magic):]}
	units := float64(d.uvarint())
	n := d.count()
	cs := make([]Country, 0, n)
	for range n {
		var c Country
		c.Code = string(d.bytes(2))
		c.Name = string(d.bytes(d.count()))
		c.Polygons = make([]Polygon, d.count())
		for i := range c.Polygons {
			p := make(Polygon, d.count())
			for j := range p {
				k := d.count()
				r := make(Ring, k+1)
				var x, y int64
				for m := range k {
					x += d.varint()
					y += d.varint()
					r[m] = Point{float64(x) / units, float64(y) / units}
				}
				if k > 0 {
					r[k] = r[0]
				}
				p[j] = r
			}
			c.Polygons[i] = p
		}
		if d.err != nil {
			break
		}
		cs = append(cs, c)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.b))
	}
	return cs, d.err
}

// decoder reads varints and keeps the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated at a %s", what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("count")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count, bounded by what is left so that a bad file cannot
// make a huge allocation.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.fail("count")
		return 0
	}
	return int(v)
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("coordinate")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if n > len(d.b) {
		d.fail("string")
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}
