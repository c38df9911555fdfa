package worldmap

import (
	"fmt"
	"image/color"
	"math"
	"slices"
)

// Class is one colour of the map: the countries whose count is from Min to
// Max, both included.
type Class struct {
	Min, Max int64
	Color    color.RGBA
	// Countries is the number of values in the class.
	Countries int
}

// Hex is the class colour as #rrggbb.
func (c Class) Hex() string { return hex(c.Color) }

func hex(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// NoData is the colour of the countries without hosts.
var NoData = color.RGBA{0xd6, 0xd6, 0xd6, 0xff}

// DefaultClasses is the number of classes when Options.Classes is 0.
const DefaultClasses = 6

// viridis(n) of matplotlib and R's viridisLite, from dark to light.
var viridis = map[int][]string{
	5: {"#440154", "#3b528b", "#21908c", "#5dc863", "#fde725"},
	6: {"#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725"},
	7: {"#440154", "#443a83", "#31688e", "#21908c", "#35b779", "#8fd744", "#fde725"},
}

// Classify divides the positive values into at most n classes (5 to 7)
// and colours them, lightest first.
//
// The breaks are logarithmic: the range from the smallest to the largest
// value is cut into n equal steps on a log scale and each cut is rounded
// to the nearest 1, 2 or 5 times a power of ten; cuts that round to the
// same number merge, so there may be a class less than asked for. Only
// when two or more would be lost do the cuts round to integers with two
// significant digits instead. Counts of infected hosts span several
// orders of magnitude, so equal steps would put almost every country in
// the first class; quantile breaks would follow every day's data and
// make the maps of two days incomparable and their legends odd numbers.
// Round log breaks read well (100 – 499) and stay put from day to day.
// When there are at most n distinct values, each has its own class.
//
// Values of 0 or less are no data and in no class. The lightest class
// starts at the smallest value and the darkest ends at the largest.
func Classify(values []int64, n int) ([]Class, error) {
	if n == 0 {
		n = DefaultClasses
	}
	if viridis[n] == nil {
		return nil, fmt.Errorf("worldmap: %d classes: want 5 to 7", n)
	}
	var vs []int64
	for _, v := range values {
		if v > 0 {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return nil, nil
	}
	slices.Sort(vs)
	distinct := slices.Compact(slices.Clone(vs))
	var bounds []int64 // lower bounds of the classes
	if len(distinct) <= n {
		bounds = distinct
	} else {
		bounds = logBreaks(vs[0], vs[len(vs)-1], n, niceRound)
		if len(bounds) < n-1 {
			if b := logBreaks(vs[0], vs[len(vs)-1], n, intRound); len(b) > len(bounds) {
				bounds = b
			}
		}
	}
	classes := make([]Class, len(bounds))
	for i, lo := range bounds {
		classes[i].Min = lo
		if i+1 < len(bounds) {
			classes[i].Max = bounds[i+1] - 1
		} else {
			classes[i].Max = vs[len(vs)-1]
		}
	}
	// Fewer classes than asked for take the viridis of their number, or
	// below 5 colours spread over the whole scale: the largest class is
	// always the darkest.
	pal := viridis[n]
	if p := viridis[len(classes)]; p != nil {
		pal = p
	}
	for i := range classes {
		k := len(pal) - 1
		if len(classes) > 1 {
			k = int(math.Round(float64(i) * float64(len(pal)-1) / float64(len(classes)-1)))
		}
		classes[i].Color = parseHex(pal[len(pal)-1-k])
	}
	for _, v := range vs {
		classes[classOf(classes, v)].Countries++
	}
	return classes, nil
}

// logBreaks returns the lower bounds of up to n classes from lo to hi.
func logBreaks(lo, hi int64, n int, round func(float64) int64) []int64 {
	bounds := []int64{lo}
	l0, l1 := math.Log(float64(lo)), math.Log(float64(hi))
	for i := 1; i < n; i++ {
		b := round(math.Exp(l0 + (l1-l0)*float64(i)/float64(n)))
		if b > bounds[len(bounds)-1] && b <= hi {
			bounds = append(bounds, b)
		}
	}
	return bounds
}

// niceRound rounds x to the nearest (on a log scale) 1, 2 or 5 times a
// power of ten.
func niceRound(x float64) int64 {
	if x < 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	best, dist := p, math.Inf(1)
	for _, m := range []float64{1, 2, 5, 10} {
		if d := math.Abs(math.Log(x / (m * p))); d < dist {
			best, dist = m*p, d
		}
	}
	return int64(best)
}

// intRound rounds x to an integer with two significant digits.
func intRound(x float64) int64 {
	if x < 100 {
		return int64(math.Round(x))
	}
	p := math.Pow(10, math.Floor(math.Log10(x))-1)
	return int64(math.Round(x/p) * p)
}

// classOf returns the index of the class of v, or -1 for none.
func classOf(classes []Class, v int64) int {
	for i, c := range classes {
		if v >= c.Min && v <= c.Max {
			return i
		}
	}
	return -1
}

func parseHex(s string) color.RGBA {
	var c color.RGBA
	fmt.Sscanf(s, "#%02x%02x%02x", &c.R, &c.G, &c.B)
	c.A = 0xff
	return c
}
