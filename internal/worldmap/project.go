package worldmap

import "math"

// Equal Earth's polynomial coefficients.
const (
	eeA1 = 1.340264
	eeA2 = -0.081106
	eeA3 = 0.000893
	eeA4 = 0.003796
)

// EqualEarth projects a point in degrees with the Equal Earth projection
// (Bojan Šavrič, Tom Patterson, Bernhard Jenny: "The Equal Earth map
// projection", International Journal of Geographical Information Science,
// 2018) on a sphere of radius 1, centred on the Greenwich meridian. x grows
// to the east, y to the north; the whole world spans x in ±2.70663 and y in
// ±1.31736. It is the projection of d3-geo's geoEqualEarth at scale 1,
// with y up.
func EqualEarth(lon, lat float64) (x, y float64) {
	lam := lon * math.Pi / 180
	phi := lat * math.Pi / 180
	theta := math.Asin(math.Sqrt(3) / 2 * math.Sin(phi))
	t2 := theta * theta
	t6 := t2 * t2 * t2
	y = theta * (eeA1 + eeA2*t2 + t6*(eeA3+eeA4*t2))
	x = 2 * math.Sqrt(3) * lam * math.Cos(theta) / (3 * (eeA1 + 3*eeA2*t2 + t6*(7*eeA3+9*eeA4*t2)))
	return x, y
}
