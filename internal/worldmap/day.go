package worldmap

import (
	"fmt"
	"strings"
	"time"
)

// DemoNote heads a map of the demo world's fictional bots.
const DemoNote = "FICTIONAL demo data: simulated bots placed in countries by takedown's demo world"

// Day is the world map of one UTC day's unique infected hosts, as
// `takedown map` and the dashboard draw it: the one place that says what
// such a map's title, source and notes are.
type Day struct {
	Day time.Time
	// Family is the family mapped; "" all families.
	Family string
	// Hosts maps country codes to unique infected hosts; "" counts the
	// hosts of no known country.
	Hosts map[string]int64
	// Source names who saw the hosts, e.g. the sensor and the operator;
	// empty parts are left out.
	Source []string
	// Demo marks a map of the fictional demo world.
	Demo bool
}

// What names the families of the map: the family, or "all families".
func (d Day) What() string {
	if d.Family == "" {
		return "all families"
	}
	return d.Family
}

// Options returns the map's options (Hosts, Title, Subtitle, Source,
// Notes); the caller sets the size, the classes, and may change the rest.
// A day without hosts says so in a note.
func (d Day) Options() Options {
	date := d.Day.Format(time.DateOnly)
	o := Options{
		Hosts: d.Hosts,
		Title: fmt.Sprintf("%s — %s — %s", DefaultTitle, d.What(), date),
		Notes: []string{HostsNote},
	}
	var src []string
	for _, s := range d.Source {
		if s != "" {
			src = append(src, s)
		}
	}
	o.Source = "Source: takedown sinkhole, " + strings.Join(src, "/")
	if d.Demo {
		o.Subtitle = DemoNote
	}
	if len(d.Hosts) == 0 {
		note := fmt.Sprintf("No infected host was seen on %s.", date)
		if d.Family != "" {
			note = fmt.Sprintf("No infected host of family %q was seen on %s.", d.Family, date)
		}
		o.Notes = append(o.Notes, note)
	}
	return o
}
