package worldmap

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// demoHosts is a day of the demo world, give or take: big and small
// countries, one too small to see (Singapore), one inside another
// (Lesotho), codes without a shape (GF, RE) and hosts of unknown country.
var demoHosts = map[string]int64{
	"US": 15000, "GB": 7000, "DE": 6000, "FR": 5500, "IN": 5500, "ES": 5000, "BR": 5200, "CN": 5000,
	"RU": 4500, "PL": 4000, "it": 4000, "MX": 3000, "TR": 3000, "KR": 2000, "CA": 2000, "VN": 1800,
	"JP": 1500, "AR": 1500, "ID": 1500, "UA": 1500, "AU": 1200, "NL": 1200, "EG": 1000, "ZA": 800,
	"CL": 800, "NG": 600, "SG": 300, "HK": 40, "XK": 30, "CY": 30, "LU": 25, "MT": 12, "LS": 5,
	"SO": 5, "FJ": 3, "GF": 3, "RE": 2, "": 17, "NO": 0,
}

func demoOptions() Options {
	return Options{
		Hosts:    demoHosts,
		Title:    "Unique infected hosts per country — waledac — 2026-11-26",
		Subtitle: "FICTIONAL demo data: simulated bots in takedown's demo world",
		Source:   "Source: takedown sinkhole, test-1/Test CERT",
		Notes:    []string{"Hosts: distinct source addresses that called the sinkhole, 00:00 to 24:00 UTC."},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from line %d (go test -update rewrites it):\ngot  %s\nwant %s", path, i+1, g, w)
			}
		}
	}
}

// svgStructure parses an SVG (which must be well-formed XML) and sums up
// what it shows, without the coordinates: the countries with hosts, the
// number without, the dots, the legend, the text.
func svgStructure(t *testing.T, svg []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var (
		out              []string
		coloured, dots   []string
		grey             int
		legend, texts    []string
		stack            []xml.StartElement
		chars            strings.Builder
		head, desc, root string
	)
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	var pending string // legend swatch waiting for its label
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			stack = append(stack, e)
			chars.Reset()
			switch e.Name.Local {
			case "svg":
				root = fmt.Sprintf("svg width=%s height=%s viewBox=%q role=%s", attr(e, "width"), attr(e, "height"), attr(e, "viewBox"), attr(e, "role"))
			case "path":
				dd := attr(e, "d")
				if !strings.HasPrefix(dd, "M") || !strings.HasSuffix(dd, "Z") {
					t.Errorf("path %s: d=%.40q…", attr(e, "id"), dd)
				}
				if attr(e, "id") != "country-"+attr(e, "data-cc") {
					t.Errorf("path id %q and data-cc %q", attr(e, "id"), attr(e, "data-cc"))
				}
			case "rect":
				if strings.HasPrefix(attr(e, "class"), "legend ") {
					pending = strings.TrimPrefix(attr(e, "class"), "legend ") + " " + attr(e, "fill")
				}
			}
		case xml.CharData:
			chars.Write(e)
		case xml.EndElement:
			el := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			text := strings.TrimSpace(chars.String())
			switch el.Name.Local {
			case "title":
				parent := stack[len(stack)-1]
				switch parent.Name.Local {
				case "svg":
					head = text
				case "path":
					if attr(parent, "class") == "country none" {
						grey++
						if attr(parent, "fill") != hex(NoData) || attr(parent, "data-hosts") != "0" {
							t.Errorf("grey %s: %v", attr(parent, "data-cc"), parent.Attr)
						}
						break
					}
					coloured = append(coloured, fmt.Sprintf("  %s %s %s hosts=%s %q", attr(parent, "data-cc"),
						strings.TrimPrefix(attr(parent, "class"), "country "), attr(parent, "fill"), attr(parent, "data-hosts"), text))
				case "circle":
					dots = append(dots, fmt.Sprintf("  %s %s %s %q", attr(parent, "data-cc"), attr(parent, "class"), attr(parent, "fill"), text))
				}
			case "desc":
				desc = text
			case "text":
				if pending != "" {
					legend = append(legend, fmt.Sprintf("  %s %q", pending, text))
					pending = ""
				} else {
					texts = append(texts, fmt.Sprintf("  %s size=%s %q", attr(el, "id"), attr(el, "font-size"), text))
				}
			}
			chars.Reset()
		}
	}
	slices.Sort(coloured)
	slices.Sort(dots)
	out = append(out, root, "title: "+head, "desc: "+desc,
		fmt.Sprintf("countries: %d paths, %d with hosts, %d grey", len(coloured)+grey, len(coloured), grey))
	out = append(out, coloured...)
	out = append(out, fmt.Sprintf("dots: %d", len(dots)))
	out = append(out, dots...)
	out = append(out, "legend:")
	out = append(out, legend...)
	out = append(out, "text:")
	out = append(out, texts...)
	return strings.Join(out, "\n") + "\n"
}

func render(t *testing.T, o Options, svg bool) []byte {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if svg {
		err = m.WriteSVG(&b)
	} else {
		err = m.WritePNG(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSVGGolden(t *testing.T) {
	svg := render(t, demoOptions(), true)
	if again := render(t, demoOptions(), true); !bytes.Equal(svg, again) {
		t.Error("two renderings of the same map differ")
	}
	if len(svg) > 400<<10 {
		t.Errorf("SVG of %d bytes", len(svg))
	}
	golden(t, "demo.svg.txt", []byte(svgStructure(t, svg)))

	empty := demoOptions()
	empty.Hosts = nil
	empty.Title = "Unique infected hosts per country — nosuchfamily — 2026-11-26"
	empty.Subtitle = ""
	empty.Notes = []string{`No host of family "nosuchfamily" was seen on 2026-11-26.`}
	golden(t, "empty.svg.txt", []byte(svgStructure(t, render(t, empty, true))))
}

func TestPNG(t *testing.T) {
	o := demoOptions()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := m.WritePNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X != 1600 || got.Y != 900 {
		t.Fatalf("size %v, want 1600×900", got)
	}
	rgba := func(x, y float64) color.RGBA {
		r, g, b, a := img.At(int(x), int(y)).RGBA()
		return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
	}
	seen := map[color.RGBA]int{}
	for y := range 900 {
		for x := range 1600 {
			seen[rgba(float64(x), float64(y))]++
		}
	}
	cs := m.Classes()
	if len(cs) != 6 {
		t.Fatalf("%d classes", len(cs))
	}
	for i, c := range append(cs, Class{Color: NoData}) {
		if seen[c.Color] < 100 {
			t.Errorf("colour %d %s is on %d pixels only", i+1, hex(c.Color), seen[c.Color])
		}
	}
	// Inside countries, away from their borders: the class colour.
	darkest, lightest := cs[len(cs)-1].Color, cs[0].Color
	for _, tc := range []struct {
		name     string
		lon, lat float64
		want     color.RGBA
	}{
		{"Brazil", -53, -10, darkest},
		{"United States", -98, 39, darkest},
		{"Lesotho, a hole in South Africa", 28.3, -29.5, lightest},
		{"South Africa", 22, -30, cs[3].Color},
		{"Greenland", -40, 72, NoData},
		{"Pacific Ocean", -140, -30, white},
	} {
		x, y := m.Project(tc.lon, tc.lat)
		if got := rgba(x, y); got != tc.want {
			t.Errorf("%s at %.0f, %.0f: %s, want %s", tc.name, x, y, hex(got), hex(tc.want))
		}
	}
	// Singapore, too small to see, has a dot of its class.
	x, y := m.Project(103.82, 1.35)
	if got := rgba(x, y); got != cs[3].Color {
		t.Errorf("Singapore's dot at %.0f, %.0f: %s, want %s", x, y, hex(got), hex(cs[3].Color))
	}

	// Other sizes.
	o.Width, o.Height = 800, 600
	img, err = png.Decode(bytes.NewReader(render(t, o, false)))
	if err != nil || img.Bounds().Dx() != 800 || img.Bounds().Dy() != 600 {
		t.Errorf("800×600: %v, %v", img.Bounds(), err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Hosts: map[string]int64{"USA": 1}}, `"USA" is not an ISO 3166-1 alpha-2`},
		{Options{Hosts: map[string]int64{"D1": 1}}, `"D1" is not`},
		{Options{Hosts: map[string]int64{"DE": -1}}, `-1 hosts in "DE"`},
		{Options{Width: 100}, "size 100×900"},
		{Options{Width: 9000, Height: 9000}, "size 9000×9000"},
		{Options{Width: 8000, Height: 8000}, "at most 36 megapixels"},
		{Options{Classes: 9}, "9 classes"},
	} {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestSummary(t *testing.T) {
	m, err := New(demoOptions())
	if err != nil {
		t.Fatal(err)
	}
	s := m.Summary()
	var sum int64
	for _, n := range demoHosts {
		sum += n
	}
	if s.Hosts != sum || s.Unknown != 17 || s.Countries != 37 || len(s.Unmapped) != 2 || s.Unmapped["GF"] != 3 {
		t.Errorf("%+v (sum %d)", s, sum)
	}
}

// TestConcurrentWrites writes one map from several goroutines: the fonts'
// caches are shared (go test -race).
func TestConcurrentWrites(t *testing.T) {
	m, err := New(demoOptions())
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	m.WriteSVG(&want)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			var b bytes.Buffer
			if i%2 == 0 {
				m.WritePNG(&b)
				return
			}
			m.WriteSVG(&b)
			if !bytes.Equal(b.Bytes(), want.Bytes()) {
				t.Error("concurrent SVG differs")
			}
		})
	}
	wg.Wait()
}

func BenchmarkRender(b *testing.B) {
	for _, format := range []string{"svg", "png"} {
		b.Run("format="+format, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := New(demoOptions())
				if err != nil {
					b.Fatal(err)
				}
				if format == "svg" {
					err = m.WriteSVG(io.Discard)
				} else {
					err = m.WritePNG(io.Discard)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("step=countries", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Countries()
		}
	})
}
