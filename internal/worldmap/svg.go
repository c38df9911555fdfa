package worldmap

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
)

// svgFonts is the font list of the SVG's text: the Go font that the PNG
// uses where it is installed, else a common sans-serif.
const svgFonts = "Go, 'DejaVu Sans', Arial, Helvetica, sans-serif"

// WriteSVG writes the map as an SVG document. The same map gives the same
// bytes. Each country is one <path> with id="country-XX", data-cc="XX",
// data-hosts and class "country cN" (N from 1, the lightest, to the number
// of classes) or "country none", and a <title> with its name and count;
// countries too small to see that have hosts get a <circle class="dot cN">
// too. The legend is <rect>s and <text>s; <desc> says it all in words.
func (m *Map) WriteSVG(w io.Writer) error {
	var b bytes.Buffer
	b.Grow(256 << 10)
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="map-title map-desc" font-family="%s">
`, m.w, m.h, m.w, m.h, svgFonts)
	b.WriteString(`<title id="map-title">`)
	esc(&b, m.title)
	b.WriteString("</title>\n<desc id=\"map-desc\">")
	esc(&b, m.desc)
	b.WriteString("</desc>\n")
	fmt.Fprintf(&b, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", m.w, m.h)

	fmt.Fprintf(&b, "<g id=\"countries\" stroke=\"%s\" stroke-width=\"%s\" stroke-linejoin=\"round\">\n", hex(border), num(m.borderWidth()))
	for i := range m.shapes {
		sh := &m.shapes[i]
		fmt.Fprintf(&b, `<path id="country-%s" class="country %s" data-cc="%s" data-hosts="%d" fill="%s" d="`,
			sh.code, m.className(sh), sh.code, sh.hosts, hex(sh.fill))
		for _, p := range sh.polys {
			for _, r := range p {
				pathRing(&b, r)
			}
		}
		b.WriteString(`"><title>`)
		esc(&b, sh.label())
		b.WriteString("</title></path>\n")
	}
	b.WriteString("</g>\n")

	fmt.Fprintf(&b, "<g id=\"dots\" stroke=\"%s\" stroke-width=\"%s\">\n", hex(outline), num(m.dotLine()))
	for i := range m.shapes {
		sh := &m.shapes[i]
		if !sh.dot {
			continue
		}
		fmt.Fprintf(&b, `<circle class="dot %s" data-cc="%s" data-hosts="%d" cx="%s" cy="%s" r="%s" fill="%s"><title>`,
			m.className(sh), sh.code, sh.hosts, num(sh.dotX), num(sh.dotY), num(sh.dotR), hex(sh.fill))
		esc(&b, sh.label())
		b.WriteString("</title></circle>\n")
	}
	b.WriteString("</g>\n")

	b.WriteString("<g id=\"legend\">\n")
	for _, sw := range m.legend {
		fmt.Fprintf(&b, `<rect class="legend %s" x="%s" y="%s" width="%s" height="%s" fill="%s" stroke="%s" stroke-width="%s"/>`+"\n",
			sw.class, num(sw.x), num(sw.y), num(sw.w), num(sw.h), hex(sw.fill), hex(swatchLine), num(m.dotLine()))
		m.svgText(&b, sw.label)
	}
	b.WriteString("</g>\n<g id=\"text\">\n")
	for _, t := range m.texts {
		m.svgText(&b, t)
	}
	b.WriteString("</g>\n</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func (m *Map) className(sh *shape) string {
	if sh.class < 0 {
		return "none"
	}
	return "c" + strconv.Itoa(sh.class+1)
}

func (m *Map) borderWidth() float64 { return math.Max(0.6*m.s, 0.4) }
func (m *Map) dotLine() float64     { return math.Max(0.8*m.s, 0.5) }

// label is the country's text: "Germany: 1,234 hosts".
func (sh *shape) label() string {
	if sh.hosts == 0 {
		return sh.name + ": no hosts"
	}
	return sh.name + ": " + plural(sh.hosts, "host", "hosts")
}

// svgText writes a line of text stretched or squeezed to the width it has
// in the Go font, so that the layout holds in whatever font draws it.
func (m *Map) svgText(b *bytes.Buffer, t text) {
	b.WriteString("<text")
	if t.id != "" {
		fmt.Fprintf(b, ` id="%s"`, t.id)
	}
	fmt.Fprintf(b, ` x="%s" y="%s" font-size="%s" textLength="%s" lengthAdjust="spacingAndGlyphs"`,
		num(t.x), num(t.y), num(t.size), num(m.width(t.s, t.size, t.bold)))
	if t.bold {
		b.WriteString(` font-weight="bold"`)
	}
	if t.color != (color.RGBA{}) {
		fmt.Fprintf(b, ` fill="%s"`, hex(t.color))
	}
	b.WriteString(">")
	esc(b, t.s)
	b.WriteString("</text>\n")
}

// pathRing appends an open ring as "Mx,y x,y …Z", in tenths of a pixel,
// leaving out points that round to the one before.
func pathRing(b *bytes.Buffer, r []pt) {
	var last [2]int64
	for i, p := range r {
		q := [2]int64{int64(math.Round(p.x * 10)), int64(math.Round(p.y * 10))}
		if i > 0 && q == last {
			continue
		}
		if i == 0 {
			b.WriteByte('M')
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(tenths(q[0]))
		b.WriteByte(',')
		b.WriteString(tenths(q[1]))
		last = q
	}
	b.WriteByte('Z')
}

// tenths formats v/10 with at most one decimal.
func tenths(v int64) string {
	s := strconv.FormatInt(v/10, 10)
	if v < 0 && v/10 == 0 {
		s = "-0"
	}
	if d := v % 10; d != 0 {
		if d < 0 {
			d = -d
		}
		s += "." + strconv.FormatInt(d, 10)
	}
	return s
}

func num(v float64) string { return tenths(int64(math.Round(v * 10))) }

func esc(b *bytes.Buffer, s string) { xml.EscapeText(b, []byte(s)) }
