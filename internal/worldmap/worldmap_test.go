package worldmap

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// isoTable reads the generator's ISO 3166-1 table: alpha-2 → name.
func isoTable(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("internal/gen/iso3166.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		out[row[1]] = row[2]
	}
	return out
}

// inside tells whether p is inside the polygon (even-odd over its rings).
func inside(p Point, poly Polygon) bool {
	in := false
	for _, r := range poly {
		for i, j := 0, len(r)-1; i < len(r); j, i = i, i+1 {
			a, b := r[i], r[j]
			if (a.Lat > p.Lat) != (b.Lat > p.Lat) && p.Lon < (b.Lon-a.Lon)*(p.Lat-a.Lat)/(b.Lat-a.Lat)+a.Lon {
				in = !in
			}
		}
	}
	return in
}

func countryAt(cs []Country, p Point) []string {
	var out []string
	for _, c := range cs {
		for _, poly := range c.Polygons {
			if inside(p, poly) {
				out = append(out, c.Code)
				break
			}
		}
	}
	return out
}

func signedArea(r Ring) float64 {
	var a float64
	for i := 0; i+1 < len(r); i++ {
		a += r[i].Lon*r[i+1].Lat - r[i+1].Lon*r[i].Lat
	}
	return a / 2
}

func TestCountriesData(t *testing.T) {
	if len(countriesGz) > 200<<10 {
		t.Errorf("data/countries.bin.gz is %d bytes, over 200 KB", len(countriesGz))
	}
	iso := isoTable(t)
	if len(iso) != 250 {
		t.Errorf("iso3166.csv has %d codes, want 249 and XK", len(iso))
	}
	cs := Countries()
	if len(cs) < 175 {
		t.Fatalf("%d countries, want 175 or more", len(cs))
	}
	code := regexp.MustCompile(`^[A-Z]{2}$`)
	var points int
	for i, c := range cs {
		if !code.MatchString(c.Code) || iso[c.Code] == "" {
			t.Errorf("%q is not an ISO 3166-1 alpha-2 code", c.Code)
		}
		if c.Name != iso[c.Code] {
			t.Errorf("%s: name %q, the table says %q", c.Code, c.Name, iso[c.Code])
		}
		if i > 0 && cs[i-1].Code >= c.Code {
			t.Errorf("%s after %s: not ordered by code, or twice", c.Code, cs[i-1].Code)
		}
		if len(c.Polygons) == 0 {
			t.Errorf("%s has no polygon", c.Code)
		}
		for _, p := range c.Polygons {
			for j, r := range p {
				points += len(r)
				if len(r) < 4 || r[0] != r[len(r)-1] {
					t.Errorf("%s: a ring of %d points is not closed", c.Code, len(r))
					continue
				}
				if a := signedArea(r); (j == 0) != (a < 0) {
					t.Errorf("%s: ring %d turns the wrong way (area %g)", c.Code, j, a)
				}
				for k, q := range r {
					if math.Abs(q.Lon) > 180 || math.Abs(q.Lat) > 90 {
						t.Errorf("%s: point %v out of range", c.Code, q)
						break
					}
					if k > 0 && math.Abs(q.Lon-r[k-1].Lon) > 180 && c.Code != "AQ" {
						t.Errorf("%s: ring jumps across the 180th meridian at %v", c.Code, q)
						break
					}
				}
			}
		}
	}
	t.Logf("%d countries, %d points, %d bytes embedded", len(cs), points, len(countriesGz))

	// Places and the one country they are in: Kosovo has its own code,
	// Northern Cyprus and Somaliland are drawn as CY and SO, Lesotho is a
	// hole in South Africa, small countries come from 1:50m, the pieces
	// cut at the 180th meridian are kept. A 1:50m shape may lie on a
	// coarser 1:110m one (Singapore on Malaysia's): the map draws the
	// small one on top.
	for _, tc := range []struct {
		name  string
		p     Point
		want  string
		under string
	}{
		{"Pristina", Point{21.17, 42.66}, "XK", ""},
		{"Belgrade", Point{20.46, 44.82}, "RS", ""},
		{"Kyrenia (N. Cyprus)", Point{33.6, 35.25}, "CY", ""},
		{"Hargeisa (Somaliland)", Point{44.06, 9.56}, "SO", ""},
		{"Maseru", Point{27.7, -29.5}, "LS", ""},
		{"Bloemfontein", Point{26.2, -29.1}, "ZA", ""},
		{"Singapore", Point{103.82, 1.35}, "SG", "MY"},
		{"Valletta", Point{14.45, 35.88}, "MT", ""},
		{"Manama", Point{50.55, 26.1}, "BH", ""},
		{"Brasília", Point{-47.93, -15.78}, "BR", ""},
		{"Kansas", Point{-98, 39}, "US", ""},
		{"Chukotka east of 180°", Point{-175, 66.5}, "RU", ""},
		{"Taveuni (Fiji)", Point{-179.95, -16.3}, "FJ", ""},
	} {
		want := []string{tc.want}
		if tc.under != "" {
			want = append(want, tc.under)
			slices.Sort(want)
		}
		if got := countryAt(cs, tc.p); !slices.Equal(got, want) {
			t.Errorf("%s %v is in %v, want %s", tc.name, tc.p, got, tc.want)
		}
	}
	if got := countryAt(cs, Point{-140, -40}); got != nil {
		t.Errorf("the South Pacific is in %v", got)
	}

	// Each call gives a fresh copy.
	cs[0].Polygons[0][0][0].Lon = 999
	if Countries()[0].Polygons[0][0][0].Lon == 999 {
		t.Error("Countries returns shared data")
	}
}

func TestDecodeBadData(t *testing.T) {
	if _, err := decode([]byte("not gzip")); err == nil {
		t.Error("no error for a file that is not gzip")
	}
	// Every truncation of the real file fails cleanly.
	raw := gunzip(t, countriesGz)
	for _, n := range []int{0, 4, 5, 6, 9, 100, len(raw) / 2, len(raw) - 1} {
		if _, err := decode(regzip(t, raw[:n])); err == nil {
			t.Errorf("no error for the file cut at %d of %d bytes", n, len(raw))
		}
	}
	if _, err := decode(regzip(t, append(slices.Clone(raw), 0))); err == nil || !strings.Contains(err.Error(), "left over") {
		t.Errorf("a byte too many: %v", err)
	}
}

func TestEqualEarth(t *testing.T) {
	// Reference values from d3-geo 3's geoEqualEarth().scale(1).translate([0, 0]),
	// with y negated (d3's y grows down).
	for _, tc := range []struct{ lon, lat, x, y float64 }{
		{0, 0, 0, 0},
		{180, 0, 2.706629984, 0},
		{-180, 0, -2.706629984, 0},
		{0, 90, 0, 1.317362759},
		{0, -90, 0, -1.317362759},
		{180, 90, 1.603588648, 1.317362759},
		{-74.006, 40.7128, -0.981861450, 0.787064220},   // New York
		{13.405, 52.52, 0.162797185, 0.980669964},       // Berlin
		{151.2093, -33.8688, 2.087106438, -0.664683777}, // Sydney
		{-47.93, -15.78, -0.707704152, -0.317549930},    // Brasília
		{139.69, 35.69, 1.909434453, 0.697853766},       // Tokyo
		{-180, -60, -2.039060088, -1.088300836},
	} {
		x, y := EqualEarth(tc.lon, tc.lat)
		if math.Abs(x-tc.x) > 1e-8 || math.Abs(y-tc.y) > 1e-8 {
			t.Errorf("EqualEarth(%g, %g) = %.9f, %.9f, want %.9f, %.9f", tc.lon, tc.lat, x, y, tc.x, tc.y)
		}
	}
	// Equal area: two cells of 10° × 10° at different latitudes cover the
	// same area of the sphere in proportion to sin(lat1) − sin(lat0).
	// Parallels are straight in Equal Earth; meridians curve so little
	// over 10° that a chord does.
	cell := func(lat0 float64) float64 {
		var poly []pt
		for i := 0; i <= 100; i++ {
			x, y := EqualEarth(float64(i)/10, lat0)
			poly = append(poly, pt{x, y})
		}
		for i := 100; i >= 0; i-- {
			x, y := EqualEarth(float64(i)/10, lat0+10)
			poly = append(poly, pt{x, y})
		}
		return math.Abs(ringArea(poly))
	}
	sphere := func(lat0 float64) float64 {
		return math.Sin((lat0+10)*math.Pi/180) - math.Sin(lat0*math.Pi/180)
	}
	r0, r1 := cell(0)/sphere(0), cell(60)/sphere(60)
	if math.Abs(r0/r1-1) > 1e-3 {
		t.Errorf("not equal-area: %g vs %g per unit of sphere", r0, r1)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func regzip(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}
