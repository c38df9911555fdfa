package worldmap

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// WritePNG writes the map as a PNG image, anti-aliased.
func (m *Map) WritePNG(w io.Writer) error {
	return png.Encode(w, m.Image())
}

// Image draws the map: what WritePNG encodes.
func (m *Map) Image() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, m.w, m.h))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	r := &raster{img: img, z: vector.NewRasterizer(1, 1)}
	bw := m.borderWidth()
	for i := range m.shapes {
		sh := &m.shapes[i]
		r.begin(sh.x0-bw, sh.y0-bw, sh.x1+bw, sh.y1+bw)
		for _, p := range sh.polys {
			for _, ring := range p {
				r.ring(ring)
			}
		}
		r.fill(sh.fill)
		r.begin(sh.x0-bw, sh.y0-bw, sh.x1+bw, sh.y1+bw)
		for _, p := range sh.polys {
			for _, ring := range p {
				r.stroke(ring, bw)
			}
		}
		r.fill(border)
	}
	lw := m.dotLine()
	for i := range m.shapes {
		sh := &m.shapes[i]
		if !sh.dot {
			continue
		}
		pad := sh.dotR + lw
		r.begin(sh.dotX-pad, sh.dotY-pad, sh.dotX+pad, sh.dotY+pad)
		r.ring(circle(sh.dotX, sh.dotY, sh.dotR))
		r.fill(sh.fill)
		r.begin(sh.dotX-pad, sh.dotY-pad, sh.dotX+pad, sh.dotY+pad)
		r.stroke(circle(sh.dotX, sh.dotY, sh.dotR), lw)
		r.fill(outline)
	}
	for _, sw := range m.legend {
		r.begin(sw.x-lw, sw.y-lw, sw.x+sw.w+lw, sw.y+sw.h+lw)
		box := []pt{{sw.x, sw.y}, {sw.x + sw.w, sw.y}, {sw.x + sw.w, sw.y + sw.h}, {sw.x, sw.y + sw.h}}
		r.ring(box)
		r.fill(sw.fill)
		r.begin(sw.x-lw, sw.y-lw, sw.x+sw.w+lw, sw.y+sw.h+lw)
		r.stroke(box, lw)
		r.fill(swatchLine)
		m.drawText(img, sw.label)
	}
	for _, t := range m.texts {
		m.drawText(img, t)
	}
	return img
}

func (m *Map) drawText(img *image.RGBA, t text) {
	m.fonts.mu.Lock() // a face caches glyphs: one user at a time
	defer m.fonts.mu.Unlock()
	d := font.Drawer{
		Dst:  img,
		Src:  image.NewUniform(t.color),
		Face: m.fonts.face(t.bold, t.size),
		Dot:  fixed.Point26_6{X: fixed.Int26_6(math.Round(t.x * 64)), Y: fixed.Int26_6(math.Round(t.y * 64))},
	}
	d.DrawString(t.s)
}

// raster fills paths, one small rectangle of the image at a time: the
// rasterizer's cost grows with its area, not with the image's.
type raster struct {
	img    *image.RGBA
	z      *vector.Rasterizer
	rect   image.Rectangle
	dx, dy float32
}

// begin starts a path that stays within the box.
func (r *raster) begin(x0, y0, x1, y1 float64) {
	r.rect = image.Rect(int(math.Floor(x0)), int(math.Floor(y0)), int(math.Ceil(x1)), int(math.Ceil(y1))).Intersect(r.img.Bounds())
	r.dx, r.dy = float32(r.rect.Min.X), float32(r.rect.Min.Y)
	r.z.Reset(max(r.rect.Dx(), 1), max(r.rect.Dy(), 1))
}

// ring adds a closed polygon. Rings of opposite directions cancel: holes.
func (r *raster) ring(ring []pt) {
	for i, p := range ring {
		x, y := float32(p.x)-r.dx, float32(p.y)-r.dy
		if i == 0 {
			r.z.MoveTo(x, y)
		} else {
			r.z.LineTo(x, y)
		}
	}
	r.z.ClosePath()
}

// stroke adds the outline of a closed ring, width w: a quadrilateral per
// side, all turning the same way so that where they overlap they add up
// instead of cancelling.
func (r *raster) stroke(ring []pt, w float64) {
	h := w / 2
	for i, a := range ring {
		b := ring[(i+1)%len(ring)]
		dx, dy := b.x-a.x, b.y-a.y
		l := math.Hypot(dx, dy)
		if l == 0 {
			continue
		}
		// Lengthen each side by half the width, so that corners close.
		ex, ey := dx/l*h, dy/l*h
		nx, ny := -ey, ex
		r.ring([]pt{
			{a.x - ex + nx, a.y - ey + ny}, {b.x + ex + nx, b.y + ey + ny},
			{b.x + ex - nx, b.y + ey - ny}, {a.x - ex - nx, a.y - ey - ny},
		})
	}
}

// fill paints the path added since begin.
func (r *raster) fill(c color.RGBA) {
	if r.rect.Empty() {
		return
	}
	r.z.Draw(r.img, r.rect, image.NewUniform(c), image.Point{})
}

// circle is a polygon close enough to a circle of radius rad.
func circle(cx, cy, rad float64) []pt {
	const n = 32
	out := make([]pt, n)
	for i := range out {
		a := 2 * math.Pi * float64(i) / n
		out[i] = pt{cx + rad*math.Cos(a), cy + rad*math.Sin(a)}
	}
	return out
}
