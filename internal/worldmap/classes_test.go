package worldmap

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	seq := func(lo, hi int64) []int64 {
		var out []int64
		for v := lo; v <= hi; v++ {
			out = append(out, v)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		values []int64
		n      int
		want   string // min-max:countries, lightest first
	}{
		{"demo world shares", []int64{150, 70, 60, 55, 55, 50, 50, 50, 45, 40, 40, 30, 30, 20, 20, 18, 15, 15, 15, 15, 12, 12, 12, 12, 12, 10, 10, 10, 10, 8, 8, 8, 8, 8, 8, 7, 7, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 3},
			0, "3-4:7 5-9:19 10-19:14 20-49:7 50-99:7 100-150:1"},
		{"six orders of magnitude", []int64{1, 3, 8, 40, 90, 700, 4000, 30000, 250000}, 6,
			"1-9:3 10-49:1 50-499:1 500-4999:2 5000-19999:0 20000-250000:2"},
		{"seven classes", []int64{1, 3, 8, 40, 90, 700, 4000, 30000, 250000}, 7,
			"1-4:2 5-49:2 50-199:1 200-999:1 1000-9999:1 10000-49999:1 50000-250000:1"},
		{"five classes", []int64{1, 3, 8, 40, 90, 700, 4000, 30000, 250000}, 5,
			"1-9:3 10-199:2 200-1999:1 2000-19999:1 20000-250000:2"},
		{"narrow range: integer breaks", seq(1, 12), 6, "1-1:1 2-2:1 3-4:2 5-7:3 8-12:5"},
		{"few distinct values: one class each", []int64{5, 5, 9, 300}, 6, "5-8:2 9-299:1 300-300:1"},
		{"one value", []int64{42}, 6, "42-42:1"},
		{"zeros are no data", []int64{0, 0, 7, -1}, 6, "7-7:1"},
		{"nothing", nil, 6, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := Classify(tc.values, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cs {
				got = append(got, fmt.Sprintf("%d-%d:%d", c.Min, c.Max, c.Countries))
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("got  %s\nwant %s", g, tc.want)
			}
			// Classes are contiguous, and the largest is the darkest.
			for i := 1; i < len(cs); i++ {
				if cs[i].Min != cs[i-1].Max+1 {
					t.Errorf("gap between %d and %d", cs[i-1].Max, cs[i].Min)
				}
				if lum(cs[i].Hex()) >= lum(cs[i-1].Hex()) {
					t.Errorf("class %d (%s) is not darker than class %d (%s)", i+1, cs[i].Hex(), i, cs[i-1].Hex())
				}
			}
			if len(cs) > 0 && cs[len(cs)-1].Hex() != "#440154" {
				t.Errorf("top class is %s, not viridis' darkest", cs[len(cs)-1].Hex())
			}
		})
	}
	for _, n := range []int{4, 8, -1} {
		if _, err := Classify([]int64{1, 2}, n); err == nil {
			t.Errorf("no error for %d classes", n)
		}
	}
}

// lum is the relative luminance of #rrggbb (WCAG).
func lum(hex string) float64 {
	c := parseHex(hex)
	lin := func(v uint8) float64 {
		s := float64(v) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.R) + 0.7152*lin(c.G) + 0.0722*lin(c.B)
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
