package worldmap

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDayOptions: the map of a day says what it counts, for which
// families, from whom; an empty day and the demo world say so.
func TestDayOptions(t *testing.T) {
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	o := Day{Day: day, Family: "waledac", Hosts: map[string]int64{"DE": 3}, Source: []string{"ns1", "", "CERT"}}.Options()
	if o.Title != DefaultTitle+" — waledac — 2026-11-26" || o.Source != "Source: takedown sinkhole, ns1/CERT" ||
		!slices.Equal(o.Notes, []string{HostsNote}) || o.Subtitle != "" || o.Hosts["DE"] != 3 {
		t.Fatalf("options %+v", o)
	}
	o = Day{Day: day, Demo: true}.Options()
	if !strings.Contains(o.Title, "all families") || o.Subtitle != DemoNote || len(o.Notes) != 2 ||
		o.Notes[1] != "No infected host was seen on 2026-11-26." {
		t.Fatalf("empty demo day: %+v", o)
	}
}
