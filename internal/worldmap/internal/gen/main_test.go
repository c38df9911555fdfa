package main

import (
	"fmt"
	"strings"
	"testing"
)

// topo is a small topology in the form of world-atlas: quantized,
// delta-encoded arcs shared by two shapes, one of them without an id.
const topo = `{"type": "Topology",
 "transform": {"scale": [0.5, 0.25], "translate": [-10, 5]},
 "arcs": [
  [[20, 0], [0, 40]],
  [[20, 40], [-20, 0], [0, -40], [20, 0]],
  [[20, 0], [20, 0], [0, 40], [-20, 0]]
 ],
 "objects": {"countries": {"type": "GeometryCollection", "geometries": [
  {"type": "Polygon", "id": "276", "properties": {"name": "Germany"}, "arcs": [[0, 1]]},
  {"type": "MultiPolygon", "properties": {"name": "Kosovo"}, "arcs": [[[2, -1]]]},
  {"type": null, "id": "010", "properties": {"name": "Nowhere"}}
 ]}}}`

func TestDecodeTopology(t *testing.T) {
	shapes, err := decodeTopology([]byte(topo))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(shapes)
	// Arc 0 is the shared border (0,5) (0,15); arc 1 (0,15) (-10,15)
	// (-10,5) (0,5); arc 2 (0,5) (10,5) (10,15) (0,15); ~0 (-1) is arc 0
	// backwards.
	want := "[{276 Germany [[[{0 5} {0 15} {-10 15} {-10 5} {0 5}]]]} " +
		"{ Kosovo [[[{0 5} {10 5} {10 15} {0 15} {0 5}]]]}]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	iso := isoTable{alpha2: map[string]string{"276": "DE"}, names: map[string]string{"DE": "Germany", "XK": "Kosovo"}}
	byName := map[string]string{"Kosovo": "XK"}
	for i, want := range []string{"DE", "XK"} {
		if code, err := shapes[i].code(iso, byName); code != want || err != nil {
			t.Errorf("%s: %q, %v", shapes[i].name, code, err)
		}
	}
	for _, tc := range []struct {
		s    shape
		want string
	}{
		{shape{id: "999", name: "Atlantis"}, `ISO numeric id "999" is not in iso3166.csv`},
		{shape{id: "-99", name: "Somewhere"}, `"Somewhere" has no ISO id and is not in noid.csv`},
	} {
		if _, err := tc.s.code(iso, byName); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", tc.s.name, err, tc.want)
		}
	}

	for _, bad := range []string{`{"type": "Feature"}`, `{"type": "Topology", "arcs": [], "objects": {"countries": {"geometries": [{"type": "Polygon", "arcs": [[5]]}]}}}`} {
		if _, err := decodeTopology([]byte(bad)); err == nil {
			t.Errorf("no error for %s", bad)
		}
	}
}

func TestSplitAntimeridian(t *testing.T) {
	// An island from 170°E to 170°W, clockwise.
	ring := []point{{170, 0}, {170, 10}, {-170, 10}, {-170, 0}, {170, 0}}
	polys, err := splitAntimeridian([][]point{ring})
	if err != nil {
		t.Fatal(err)
	}
	want := "[[[{180 0} {170 0} {170 10} {180 10} {180 0}]] [[{-180 0} {-180 10} {-170 10} {-170 0} {-180 0}]]]"
	if got := fmt.Sprint(polys); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Starting on the other side gives the same pieces.
	ring = []point{{-170, 10}, {-170, 0}, {170, 0}, {170, 10}, {-170, 10}}
	if polys, _ := splitAntimeridian([][]point{ring}); len(polys) != 2 {
		t.Errorf("from the west: %v", polys)
	}
	// A ring that does not cross, and one round the pole, are kept.
	for _, r := range [][]point{
		{{0, 0}, {0, 1}, {1, 1}, {0, 0}},
		{{-180, -80}, {0, -70}, {180, -80}, {-180, -80}},
	} {
		if polys, _ := splitAntimeridian([][]point{r}); len(polys) != 1 || len(polys[0][0]) != len(r) {
			t.Errorf("%v became %v", r, polys)
		}
	}
}
