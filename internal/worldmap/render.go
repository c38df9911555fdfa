package worldmap

import (
	"cmp"
	"fmt"
	"image/color"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Options describe one map. The zero value of every field but Hosts works.
type Options struct {
	// Hosts maps ISO 3166-1 alpha-2 codes (either case) to the number of
	// hosts there. The key "" counts hosts of unknown country; they and
	// the hosts of countries without a shape (French Guiana, Gibraltar, …)
	// are in the totals and named in a note, but on no country.
	Hosts map[string]int64
	// Title is the first line, e.g. "Unique infected hosts per country —
	// waledac — 2026-11-26". Default "Unique infected hosts per country".
	Title string
	// Subtitle is a line under the totals, e.g. that the data is
	// fictional.
	Subtitle string
	// Source is the first line of the footer, e.g. "Source: takedown
	// sinkhole, fra-1/Example CERT"; the map adds the shapes' attribution
	// and the projection.
	Source string
	// Notes are more footer lines.
	Notes []string
	// Width and Height are the size in pixels, of the PNG and of the SVG's
	// view box. Default 1600×900; from 600×300 to 8000×8000, at most 36
	// megapixels (8000×4500: the PNG takes 4 bytes a pixel in memory).
	Width, Height int
	// Classes is the number of colours, 5 to 7; default DefaultClasses.
	Classes int
}

// maxPixels bounds the size of a map.
const maxPixels = 36_000_000

// DefaultTitle is the title of a map whose Options have none.
const DefaultTitle = "Unique infected hosts per country"

// HostsNote says what a day's map counts, for its Notes: what the
// dashboard and `takedown map` draw (eventstore.HostQuery.Infected).
const HostsNote = "Hosts: distinct source IP addresses of infected hosts that called the sinkhole from 00:00 to 24:00 UTC, counted in the country where the GeoIP database places them."

// Summary counts what a map shows.
type Summary struct {
	// Hosts is the sum of all counts, Countries the number of countries
	// with hosts (those not on the map included).
	Hosts     int64
	Countries int
	// Unknown is the count under "" (country unknown).
	Unknown int64
	// Unmapped are the countries with hosts but no shape, and their
	// counts.
	Unmapped map[string]int64
}

// Map is a map laid out at its size, ready to be written as SVG or PNG.
// Both show the same shapes, colours, legend and text. Its methods may be
// called from several goroutines at once.
type Map struct {
	w, h    int
	s       float64 // size relative to 1600×900
	k       float64 // pixels per unit of EqualEarth
	ox, oy  float64 // pixel position of EqualEarth's (0, 0)
	classes []Class
	shapes  []shape
	legend  []swatch
	texts   []text
	title   string
	desc    string
	sum     Summary
	fonts   *fonts
}

// shape is one country in pixels.
type shape struct {
	code, name string
	hosts      int64
	class      int // -1: no hosts
	fill       color.RGBA
	polys      [][][]pt // polygon → ring (open) → points
	area       float64  // px²
	x0, y0     float64  // bounding box
	x1, y1     float64
	// dot marks a country with hosts too small to see: a circle of radius
	// dotR at dotX, dotY, on its largest part, shows it.
	dot              bool
	dotX, dotY, dotR float64
}

// swatch is one entry of the legend.
type swatch struct {
	x, y, w, h float64
	fill       color.RGBA
	class      string // c1…cN or none
	label      text
}

// text is one line of text, its baseline starting at x, y.
type text struct {
	x, y  float64
	size  float64
	bold  bool
	color color.RGBA
	s     string
	id    string
}

type pt struct{ x, y float64 }

var (
	textColor  = color.RGBA{0x22, 0x22, 0x22, 0xff}
	mutedColor = color.RGBA{0x55, 0x55, 0x55, 0xff}
	border     = color.RGBA{0xff, 0xff, 0xff, 0xff}
	outline    = color.RGBA{0x33, 0x33, 0x33, 0xff}
	swatchLine = color.RGBA{0x88, 0x88, 0x88, 0xff}
	white      = color.RGBA{0xff, 0xff, 0xff, 0xff}
)

// New lays out the map of o.
func New(o Options) (*Map, error) {
	w, h := o.Width, o.Height
	if w == 0 {
		w = 1600
	}
	if h == 0 {
		h = 900
	}
	if w < 600 || w > 8000 || h < 300 || h > 8000 || w*h > maxPixels {
		return nil, fmt.Errorf("worldmap: size %d×%d: want a width from 600 to 8000 and a height from 300 to 8000, at most %d megapixels", w, h, maxPixels/1_000_000)
	}
	hosts := map[string]int64{}
	for code, n := range o.Hosts {
		if n < 0 {
			return nil, fmt.Errorf("worldmap: %d hosts in %q", n, code)
		}
		c := strings.ToUpper(code)
		if c != "" && (len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z') {
			return nil, fmt.Errorf("worldmap: %q is not an ISO 3166-1 alpha-2 country code", code)
		}
		hosts[c] += n
	}
	fs, err := newFonts()
	if err != nil {
		return nil, err
	}
	// Text and lines grow with the size, and shrink with it down to
	// three quarters, below which text gets hard to read.
	m := &Map{w: w, h: h, s: max(min(float64(w)/1600, float64(h)/900), 0.75), fonts: fs}
	m.title = cmp.Or(o.Title, DefaultTitle)

	countries := Countries()
	if err := m.count(countries, hosts, o.Classes); err != nil {
		return nil, err
	}
	top, bottom := m.layoutText(o)
	legendH := m.layoutLegend(24*m.s, float64(w)-48*m.s)
	if err := m.project(countries, hosts, top, bottom-legendH-10*m.s); err != nil {
		return nil, err
	}
	m.desc = m.describe(o)
	return m, nil
}

// count makes the classes of the countries on the map and the totals.
func (m *Map) count(countries []Country, hosts map[string]int64, classes int) error {
	have := map[string]bool{}
	var onMap []int64
	for _, c := range countries {
		if c.Code != "AQ" {
			have[c.Code] = true
			onMap = append(onMap, hosts[c.Code])
		}
	}
	var err error
	if m.classes, err = Classify(onMap, classes); err != nil {
		return err
	}
	m.sum.Unmapped = map[string]int64{}
	for code, n := range hosts {
		m.sum.Hosts += n
		switch {
		case code == "":
			m.sum.Unknown = n
		case n == 0:
		case !have[code]:
			m.sum.Unmapped[code] = n
			m.sum.Countries++
		default:
			m.sum.Countries++
		}
	}
	return nil
}

// layoutText places the header from the top and the footer from the
// bottom, and returns the space left between them.
func (m *Map) layoutText(o Options) (top, bottom float64) {
	margin := 24 * m.s
	maxW := float64(m.w) - 2*margin
	y := margin
	line := func(s string, size float64, bold bool, c color.RGBA, id string) {
		size = m.fit(s, size, bold, maxW)
		y += size
		m.texts = append(m.texts, text{x: margin, y: y, size: size, bold: bold, color: c, s: s, id: id})
		y += 0.4 * size
	}
	line(m.title, 30*m.s, true, textColor, "heading")
	line(m.totals(), 19*m.s, false, textColor, "totals")
	if o.Subtitle != "" {
		line(o.Subtitle, 17*m.s, false, mutedColor, "subtitle")
	}
	top = y + 6*m.s

	src := "Map: " + Attribution + ", Equal Earth projection"
	if o.Source != "" {
		src = o.Source + " · " + src
	}
	foot := []string{src}
	if len(m.sum.Unmapped) > 0 {
		foot = append(foot, m.unmappedNote())
	}
	foot = append(foot, o.Notes...)
	size, lineH := 13*m.s, 13*m.s*1.45
	bottom = float64(m.h) - margin - float64(len(foot))*lineH
	for i, s := range foot {
		m.texts = append(m.texts, text{x: margin, y: bottom + float64(i+1)*lineH, size: m.fit(s, size, false, maxW),
			color: mutedColor, s: s, id: fmt.Sprintf("footer-%d", i+1)})
	}
	return top, bottom
}

// project fits the countries (but Antarctica: nothing to count there) into
// the band from top to bottom, centred, and moves the legend under them.
func (m *Map) project(countries []Country, hosts map[string]int64, top, bottom float64) error {
	var shapes []shape
	bx0, by0, bx1, by1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, c := range countries {
		if c.Code == "AQ" {
			continue
		}
		sh := shape{code: c.Code, name: c.Name, hosts: hosts[c.Code], class: -1, fill: NoData}
		if sh.hosts > 0 {
			sh.class = classOf(m.classes, sh.hosts)
			sh.fill = m.classes[sh.class].Color
		}
		for _, p := range c.Polygons {
			var rings [][]pt
			for _, r := range p {
				ring := make([]pt, len(r)-1)
				for i, q := range r[:len(r)-1] {
					x, y := EqualEarth(q.Lon, q.Lat)
					ring[i] = pt{x, y}
					bx0, bx1 = min(bx0, x), max(bx1, x)
					by0, by1 = min(by0, y), max(by1, y)
				}
				rings = append(rings, ring)
			}
			sh.polys = append(sh.polys, rings)
		}
		shapes = append(shapes, sh)
	}
	boxH := bottom - top
	if boxH < 50*m.s {
		return fmt.Errorf("worldmap: size %d×%d leaves no room for the map under the text", m.w, m.h)
	}
	m.k = min((float64(m.w)-48*m.s)/(bx1-bx0), boxH/(by1-by0))
	m.ox = float64(m.w)/2 - m.k*(bx0+bx1)/2
	m.oy = top + boxH/2 + m.k*(by0+by1)/2

	// The legend, laid out from 0, goes right under the map.
	shift := m.oy - m.k*by0 + 10*m.s
	for i := range m.legend {
		m.legend[i].y += shift
		m.legend[i].label.y += shift
	}
	for i := range m.texts {
		if m.texts[i].id == "legend-title" {
			m.texts[i].y += shift
		}
	}

	for i := range shapes {
		m.toPixels(&shapes[i])
	}
	// Big countries first, so that small ones on top of them (Singapore
	// on Malaysia's coarse outline, San Marino in Italy) stay visible.
	slices.SortStableFunc(shapes, func(a, b shape) int {
		return cmp.Or(-cmp.Compare(a.area, b.area), strings.Compare(a.code, b.code))
	})
	m.shapes = shapes
	return nil
}

// toPixels turns a shape's points from EqualEarth units into pixels and
// measures it; a country with hosts too small to see gets a dot.
func (m *Map) toPixels(sh *shape) {
	sh.x0, sh.y0, sh.x1, sh.y1 = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	var bigArea float64
	var big [2]pt // bounding box of the largest polygon
	for _, p := range sh.polys {
		var area float64
		p0 := pt{math.Inf(1), math.Inf(1)}
		p1 := pt{math.Inf(-1), math.Inf(-1)}
		for j, r := range p {
			for k, q := range r {
				x, y := m.px(q.x, q.y)
				r[k] = pt{x, y}
				p0 = pt{min(p0.x, x), min(p0.y, y)}
				p1 = pt{max(p1.x, x), max(p1.y, y)}
			}
			if j == 0 {
				area += math.Abs(ringArea(r))
			} else {
				area -= math.Abs(ringArea(r))
			}
		}
		sh.area += area
		if area > bigArea {
			bigArea, big = area, [2]pt{p0, p1}
		}
		sh.x0, sh.y0 = min(sh.x0, p0.x), min(sh.y0, p0.y)
		sh.x1, sh.y1 = max(sh.x1, p1.x), max(sh.y1, p1.y)
	}
	if sh.hosts > 0 && sh.area < 30*m.s*m.s {
		sh.dot = true
		sh.dotX, sh.dotY, sh.dotR = (big[0].x+big[1].x)/2, (big[0].y+big[1].y)/2, 4*m.s
	}
}

// px turns EqualEarth coordinates into pixels.
func (m *Map) px(x, y float64) (float64, float64) {
	return m.ox + x*m.k, m.oy - y*m.k
}

// Project returns the pixel position of a point in degrees on the map.
func (m *Map) Project(lon, lat float64) (x, y float64) {
	return m.px(EqualEarth(lon, lat))
}

// Classes returns the colour classes, lightest first; none when no
// country has hosts.
func (m *Map) Classes() []Class { return slices.Clone(m.classes) }

// Summary returns the totals the map shows.
func (m *Map) Summary() Summary {
	s := m.sum
	s.Unmapped = maps.Clone(s.Unmapped)
	return s
}

// Size returns the map's size in pixels.
func (m *Map) Size() (w, h int) { return m.w, m.h }

func (m *Map) totals() string {
	s := m.sum
	if s.Hosts == 0 {
		return "No hosts counted"
	}
	known := s.Hosts - s.Unknown
	t := fmt.Sprintf("%s in %s", plural(known, "unique host", "unique hosts"), plural(int64(s.Countries), "country", "countries"))
	if s.Unknown > 0 {
		t += fmt.Sprintf(", and %s in no known country", plural(s.Unknown, "host", "hosts"))
	}
	return t
}

func (m *Map) unmappedNote() string {
	codes := make([]string, 0, len(m.sum.Unmapped))
	for c := range m.sum.Unmapped {
		codes = append(codes, c)
	}
	slices.SortFunc(codes, func(a, b string) int {
		return cmp.Or(-cmp.Compare(m.sum.Unmapped[a], m.sum.Unmapped[b]), strings.Compare(a, b))
	})
	var parts []string
	for i, c := range codes {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("and %d more", len(codes)-i))
			break
		}
		parts = append(parts, c+" "+Thousands(m.sum.Unmapped[c]))
	}
	return "Not on the map (no shape at this scale): " + strings.Join(parts, ", ")
}

// layoutLegend places the legend, one row or more, from the top of a
// band; New moves it under the map. It returns the band's height.
func (m *Map) layoutLegend(x0, maxW float64) float64 {
	s := m.s
	size := 14 * s
	sw, sh := 22*s, 14*s
	rowH := 24 * s
	gap := 18 * s
	title := "Unique hosts per country:"
	m.texts = append(m.texts, text{x: x0, y: size, size: size, bold: true, color: textColor, s: title, id: "legend-title"})
	// Widths have a sixth to spare for an SVG viewer that draws the text
	// in a wider font than Go's and ignores textLength.
	const spare = 7.0 / 6
	x, y := x0+spare*m.width(title, size, true)+gap, 0.0
	add := func(label, class string, fill color.RGBA) {
		w := sw + 6*s + spare*m.width(label, size, false)
		if x+w > x0+maxW {
			x, y = x0, y+rowH
		}
		m.legend = append(m.legend, swatch{
			x: x, y: y + (size-sh)/2 + 1*s, w: sw, h: sh, fill: fill, class: class,
			label: text{x: x + sw + 6*s, y: y + size, size: size, color: textColor, s: label},
		})
		x += w + gap
	}
	for i, c := range m.classes {
		label := Thousands(c.Min)
		if c.Max != c.Min {
			label += " – " + Thousands(c.Max)
		}
		add(label, "c"+strconv.Itoa(i+1), c.Color)
	}
	add("no hosts", "none", NoData)
	return y + rowH
}

// describe is the text equivalent of the map, for the SVG's <desc>.
func (m *Map) describe(o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "World map, Equal Earth projection, of %s. %s.", lowerFirst(m.title), m.totals())
	if o.Subtitle != "" {
		fmt.Fprintf(&b, " %s.", strings.TrimSuffix(o.Subtitle, "."))
	}
	if len(m.classes) > 0 {
		b.WriteString(" Colour classes, light to dark:")
		for i, c := range m.classes {
			if i > 0 {
				b.WriteString(";")
			}
			fmt.Fprintf(&b, " %s to %s hosts (%s)", Thousands(c.Min), Thousands(c.Max), plural(int64(c.Countries), "country", "countries"))
		}
		b.WriteString("; grey: no hosts.")
		ranked := slices.Clone(m.shapes)
		slices.SortFunc(ranked, func(a, b shape) int {
			return cmp.Or(-cmp.Compare(a.hosts, b.hosts), strings.Compare(a.name, b.name))
		})
		b.WriteString(" Hosts by country:")
		first := true
		for _, sh := range ranked {
			if sh.hosts == 0 {
				break
			}
			if !first {
				b.WriteString(";")
			}
			first = false
			fmt.Fprintf(&b, " %s %s", sh.name, Thousands(sh.hosts))
		}
		b.WriteString(".")
	}
	if len(m.sum.Unmapped) > 0 {
		fmt.Fprintf(&b, " %s.", m.unmappedNote())
	}
	return b.String()
}

// lowerFirst lower-cases the first letter of s unless it starts an
// acronym ("DNS queries").
func lowerFirst(s string) string {
	if len(s) < 2 || s[0] < 'A' || s[0] > 'Z' || s[1] >= 'A' && s[1] <= 'Z' {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// ringArea is the signed area of an open ring (shoelace).
func ringArea(r []pt) float64 {
	var a float64
	for i := range r {
		p, q := r[i], r[(i+1)%len(r)]
		a += p.x*q.y - q.x*p.y
	}
	return a / 2
}

// Thousands formats n with thousands separators: 1,234,567.
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Thousands(n) + " " + many
}

// fonts are the Go fonts, which x/image embeds; both formats measure text
// with them, and the PNG draws with them.
type fonts struct {
	regular, bold *opentype.Font
	mu            sync.Mutex // over faces, and over the use of each face
	faces         map[faceKey]font.Face
}

type faceKey struct {
	bold bool
	size float64
}

func newFonts() (*fonts, error) {
	r, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, err
	}
	b, err := opentype.Parse(gobold.TTF)
	if err != nil {
		return nil, err
	}
	return &fonts{regular: r, bold: b, faces: map[faceKey]font.Face{}}, nil
}

// face returns the face of a style and size; the caller holds f.mu.
func (f *fonts) face(bold bool, size float64) font.Face {
	k := faceKey{bold, size}
	if fc, ok := f.faces[k]; ok {
		return fc
	}
	ft := f.regular
	if bold {
		ft = f.bold
	}
	fc, err := opentype.NewFace(ft, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		panic(err) // only for a size <= 0
	}
	f.faces[k] = fc
	return fc
}

func (m *Map) width(s string, size float64, bold bool) float64 {
	m.fonts.mu.Lock()
	defer m.fonts.mu.Unlock()
	return fixedFloat(font.MeasureString(m.fonts.face(bold, size), s))
}

// fit shrinks size until s fits in maxW.
func (m *Map) fit(s string, size float64, bold bool, maxW float64) float64 {
	if w := m.width(s, size, bold); w > maxW {
		size = math.Floor(size*maxW/w*10) / 10
	}
	return size
}

func fixedFloat(v fixed.Int26_6) float64 { return float64(v) / 64 }
