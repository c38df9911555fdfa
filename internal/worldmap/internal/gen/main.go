// Command gen converts the Natural Earth country shapes of the npm package
// world-atlas (TopoJSON keyed by ISO 3166-1 numeric codes) into the compact
// file that package worldmap embeds. It runs at development time only:
//
//	go generate ./internal/worldmap
//
// fetches world-atlas with `npm pack` (unless -atlas names a copy), checks
// the tarball against the integrity npm published for it, and writes
// data/countries.bin.gz. The same input gives the same bytes.
//
// The shapes are the 1:110m countries, and for the countries too small to
// be in 1:110m (Singapore, Malta, Bahrain, Hong Kong, …) their 1:50m
// shapes. See ../../data/README.md for the file format.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// The world-atlas release and the integrity npm publishes for its tarball.
const (
	atlasPackage   = "world-atlas@2.0.2"
	atlasIntegrity = "sha512-IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ=="
)

// unitsPerDegree is the grid the coordinates are rounded to: 1/1000 of a
// degree, about 110 m, far finer than 1:110m or 1:50m data.
const unitsPerDegree = 1000

//go:embed iso3166.csv
var isoCSV []byte

//go:embed noid.csv
var noidCSV []byte

func main() {
	atlas := flag.String("atlas", "", "world-atlas tarball (.tgz) or unpacked package directory; default: fetch "+atlasPackage+" with npm pack")
	out := flag.String("out", "data/countries.bin.gz", "file to write")
	flag.Parse()
	if err := run(*atlas, *out); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

func run(atlas, out string) error {
	files, err := readAtlas(atlas, "countries-110m.json", "countries-50m.json")
	if err != nil {
		return err
	}
	iso, err := readISO()
	if err != nil {
		return err
	}
	noid, err := readCSV("noid.csv", noidCSV, 2)
	if err != nil {
		return err
	}
	byName := map[string]string{}
	for _, r := range noid {
		byName[r[0]] = r[1]
	}

	countries := map[string]*country{}
	for i, name := range []string{"countries-110m.json", "countries-50m.json"} {
		shapes, err := decodeTopology(files[name])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		added := map[string]bool{}
		for _, s := range shapes {
			code, err := s.code(iso, byName)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if code == "" {
				continue
			}
			c := countries[code]
			if i > 0 && c != nil && !added[code] {
				continue // 1:50m only fills in what 1:110m lacks
			}
			if c == nil {
				c = &country{code: code, name: iso.names[code]}
				countries[code] = c
				added[code] = true
			}
			c.polygons = append(c.polygons, s.polygons...)
		}
	}

	codes := make([]string, 0, len(countries))
	for code := range countries {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	var bin bytes.Buffer
	bin.WriteString("TDWM\x01")
	bin.Write(binary.AppendUvarint(nil, unitsPerDegree))
	bin.Write(binary.AppendUvarint(nil, uint64(len(codes))))
	points, fixed := 0, 0
	for _, code := range codes {
		c := countries[code]
		n, f := c.encode(&bin)
		points, fixed = points+n, fixed+f
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(bin.Bytes())
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(out, gz.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %s: %d countries, %d points, %d rings turned to the convention; %d bytes (%d before gzip)\n",
		out, len(codes), points, fixed, gz.Len(), bin.Len())
	return nil
}

// readAtlas returns the named files of the world-atlas package.
func readAtlas(atlas string, names ...string) (map[string][]byte, error) {
	if atlas != "" {
		if st, err := os.Stat(atlas); err == nil && st.IsDir() {
			out := map[string][]byte{}
			for _, n := range names {
				b, err := os.ReadFile(filepath.Join(atlas, n))
				if err != nil {
					return nil, err
				}
				out[n] = b
			}
			return out, nil
		}
	}
	var tgz []byte
	var err error
	if atlas != "" {
		tgz, err = os.ReadFile(atlas)
	} else {
		tgz, err = npmPack()
	}
	if err != nil {
		return nil, err
	}
	sum := sha512.Sum512(tgz)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != atlasIntegrity {
		return nil, fmt.Errorf("%s: integrity %s, want %s of %s", orNPM(atlas), got, atlasIntegrity, atlasPackage)
	}
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		n := strings.TrimPrefix(h.Name, "package/")
		if slices.Contains(names, n) {
			if out[n], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range names {
		if out[n] == nil {
			return nil, fmt.Errorf("%s: no %s in the package", orNPM(atlas), n)
		}
	}
	return out, nil
}

func orNPM(atlas string) string {
	if atlas == "" {
		return "npm pack " + atlasPackage
	}
	return atlas
}

// npmPack fetches the world-atlas tarball from the npm registry.
func npmPack() ([]byte, error) {
	dir, err := os.MkdirTemp("", "worldmap-gen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("npm", "pack", atlasPackage, "--silent", "--pack-destination", dir)
	cmd.Stderr = os.Stderr
	name, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("npm pack %s: %w", atlasPackage, err)
	}
	return os.ReadFile(filepath.Join(dir, strings.TrimSpace(string(name))))
}

// isoTable is ISO 3166-1.
type isoTable struct {
	alpha2 map[string]string // numeric → alpha-2
	names  map[string]string // alpha-2 → name
}

func readISO() (isoTable, error) {
	rows, err := readCSV("iso3166.csv", isoCSV, 3)
	if err != nil {
		return isoTable{}, err
	}
	t := isoTable{alpha2: map[string]string{}, names: map[string]string{}}
	for _, r := range rows {
		if r[0] != "" {
			t.alpha2[r[0]] = r[1]
		}
		t.names[r[1]] = r[2]
	}
	return t, nil
}

// readCSV reads a table with '#' comments and a header line.
func readCSV(name string, data []byte, fields int) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = fields
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rows[1:], nil
}

// point is a position in degrees.
type point struct{ lon, lat float64 }

// shape is one geometry of the TopoJSON countries collection.
type shape struct {
	id, name string
	polygons [][][]point // polygon → ring → points
}

// code is the alpha-2 code the shape is drawn as; "" drops it.
func (s shape) code(iso isoTable, byName map[string]string) (string, error) {
	if s.id == "" || s.id == "-99" {
		code, ok := byName[s.name]
		if !ok {
			return "", fmt.Errorf("shape %q has no ISO id and is not in noid.csv", s.name)
		}
		if code != "" && iso.names[code] == "" {
			return "", fmt.Errorf("noid.csv: %s of %q is not in iso3166.csv", code, s.name)
		}
		return code, nil
	}
	code, ok := iso.alpha2[s.id]
	if !ok {
		return "", fmt.Errorf("shape %q: ISO numeric id %q is not in iso3166.csv", s.name, s.id)
	}
	return code, nil
}

// topology is the part of a TopoJSON file that gen reads.
type topology struct {
	Type      string `json:"type"`
	Transform *struct {
		Scale     [2]float64 `json:"scale"`
		Translate [2]float64 `json:"translate"`
	} `json:"transform"`
	Arcs    [][][2]float64 `json:"arcs"`
	Objects struct {
		Countries struct {
			Geometries []struct {
				Type       string          `json:"type"`
				ID         json.RawMessage `json:"id"`
				Properties struct {
					Name string `json:"name"`
				} `json:"properties"`
				Arcs json.RawMessage `json:"arcs"`
			} `json:"geometries"`
		} `json:"countries"`
	} `json:"objects"`
}

// decodeTopology turns the countries of a TopoJSON topology into polygons:
// it undoes the delta encoding and quantization of the arcs and joins the
// arcs of each ring.
func decodeTopology(data []byte) ([]shape, error) {
	var t topology
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, err
	}
	if t.Type != "Topology" {
		return nil, fmt.Errorf("type %q is not Topology", t.Type)
	}
	arcs := make([][]point, len(t.Arcs))
	for i, a := range t.Arcs {
		arc := make([]point, len(a))
		var x, y float64
		for j, p := range a {
			if t.Transform == nil {
				arc[j] = point{p[0], p[1]}
				continue
			}
			x, y = x+p[0], y+p[1] // quantized arcs are delta-encoded
			arc[j] = point{x*t.Transform.Scale[0] + t.Transform.Translate[0], y*t.Transform.Scale[1] + t.Transform.Translate[1]}
		}
		arcs[i] = arc
	}
	ring := func(idx []int) ([]point, error) {
		var r []point
		for k, i := range idx {
			rev := i < 0
			if rev {
				i = ^i
			}
			if i >= len(arcs) {
				return nil, fmt.Errorf("arc %d of %d", i, len(arcs))
			}
			a := arcs[i]
			if rev {
				a = slices.Clone(a)
				slices.Reverse(a)
			}
			if k > 0 {
				a = a[1:] // the first point repeats the last of the arc before
			}
			r = append(r, a...)
		}
		return r, nil
	}
	var out []shape
	for _, g := range t.Objects.Countries.Geometries {
		s := shape{name: g.Properties.Name}
		if len(g.ID) > 0 && string(g.ID) != "null" {
			if err := json.Unmarshal(g.ID, &s.id); err != nil {
				var n json.Number
				if err2 := json.Unmarshal(g.ID, &n); err2 != nil {
					return nil, fmt.Errorf("%s: id %s: %w", s.name, g.ID, err)
				}
				s.id = fmt.Sprintf("%03s", n.String())
			}
		}
		var polys [][][]int
		switch g.Type {
		case "Polygon":
			var p [][]int
			if err := json.Unmarshal(g.Arcs, &p); err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			polys = [][][]int{p}
		case "MultiPolygon":
			if err := json.Unmarshal(g.Arcs, &polys); err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
		case "":
			continue // null geometry
		default:
			return nil, fmt.Errorf("%s: geometry type %q", s.name, g.Type)
		}
		for _, p := range polys {
			var rings [][]point
			for _, idx := range p {
				r, err := ring(idx)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", s.name, err)
				}
				rings = append(rings, r)
			}
			split, err := splitAntimeridian(rings)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			s.polygons = append(s.polygons, split...)
		}
		out = append(out, s)
	}
	return out, nil
}

type country struct {
	code, name string
	polygons   [][][]point
}

// encode appends the country to the file and returns the number of points
// written and of rings whose direction was turned.
func (c *country) encode(w *bytes.Buffer) (points, fixed int) {
	type q struct{ x, y int64 }
	var polys [][][]q
	for _, p := range c.polygons {
		var rings [][]q
		for i, r := range p {
			if i > 0 && len(rings) == 0 {
				break // the outer ring vanished
			}
			var qr []q
			for _, pt := range r {
				v := q{int64(math.Round(pt.lon * unitsPerDegree)), int64(math.Round(pt.lat * unitsPerDegree))}
				if len(qr) == 0 || qr[len(qr)-1] != v {
					qr = append(qr, v)
				}
			}
			if len(qr) > 1 && qr[0] == qr[len(qr)-1] {
				qr = qr[:len(qr)-1] // the closing point is implied
			}
			if len(qr) < 3 {
				continue
			}
			// Outer rings clockwise, holes counter-clockwise, with north
			// up: the convention of the source and of d3-geo.
			var area int64
			for j := range qr {
				a, b := qr[j], qr[(j+1)%len(qr)]
				area += a.x*b.y - b.x*a.y
			}
			if (i == 0) != (area < 0) {
				slices.Reverse(qr)
				fixed++
			}
			rings = append(rings, qr)
		}
		if len(rings) > 0 {
			polys = append(polys, rings)
		}
	}
	w.WriteString(c.code)
	w.Write(binary.AppendUvarint(nil, uint64(len(c.name))))
	w.WriteString(c.name)
	w.Write(binary.AppendUvarint(nil, uint64(len(polys))))
	for _, p := range polys {
		w.Write(binary.AppendUvarint(nil, uint64(len(p))))
		for _, r := range p {
			w.Write(binary.AppendUvarint(nil, uint64(len(r))))
			var prev q
			for _, v := range r {
				w.Write(binary.AppendVarint(nil, v.x-prev.x))
				w.Write(binary.AppendVarint(nil, v.y-prev.y))
				prev = v
			}
			points += len(r)
		}
	}
	return points, fixed
}

// splitAntimeridian cuts a polygon whose outer ring crosses the 180th
// meridian (Fiji, Chukotka and Wrangel Island in Russia) into a piece on
// either side, so that the polygons can be drawn on a plane. A ring that
// goes round a pole (Antarctica) crosses once and is left as it is.
func splitAntimeridian(rings [][]point) ([][][]point, error) {
	crossings := func(r []point) int {
		n := 0
		for i := 1; i < len(r); i++ {
			if math.Abs(r[i].lon-r[i-1].lon) > 180 {
				n++
			}
		}
		return n
	}
	n := crossings(rings[0])
	if n == 0 || n%2 == 1 {
		return [][][]point{rings}, nil
	}
	if len(rings) > 1 {
		return nil, errors.New("a polygon with holes crosses the antimeridian") // none does
	}
	// Unwrap the ring so that it runs on without jumps, past ±180.
	u := slices.Clone(rings[0])
	if len(u) > 1 && u[0] == u[len(u)-1] {
		u = u[:len(u)-1]
	}
	lo, hi := u[0].lon, u[0].lon
	for i := 1; i < len(u); i++ {
		for u[i].lon-u[i-1].lon > 180 {
			u[i].lon -= 360
		}
		for u[i].lon-u[i-1].lon < -180 {
			u[i].lon += 360
		}
		lo, hi = min(lo, u[i].lon), max(hi, u[i].lon)
	}
	edge := 180.0
	if lo < -180 {
		edge = -180
	} else if hi <= 180 {
		return [][][]point{rings}, nil
	}
	var out [][][]point
	for _, below := range []bool{true, false} {
		piece := clipAt(u, edge, below)
		if len(piece) < 3 {
			continue
		}
		// The piece beyond ±180 moves to the other end of the map.
		shift := 0.0
		if edge > 0 && !below {
			shift = -360
		} else if edge < 0 && below {
			shift = 360
		}
		for i := range piece {
			piece[i].lon += shift
		}
		out = append(out, [][]point{append(piece, piece[0])})
	}
	return out, nil
}

// clipAt clips a ring to the half-plane lon <= edge (below) or lon >= edge
// (Sutherland–Hodgman for one line).
func clipAt(r []point, edge float64, below bool) []point {
	in := func(p point) bool {
		if below {
			return p.lon <= edge
		}
		return p.lon >= edge
	}
	var out []point
	prev := r[len(r)-1]
	for _, p := range r {
		if in(p) != in(prev) {
			t := (edge - prev.lon) / (p.lon - prev.lon)
			out = append(out, point{edge, prev.lat + t*(p.lat-prev.lat)})
		}
		if in(p) {
			out = append(out, p)
		}
		prev = p
	}
	return out
}
