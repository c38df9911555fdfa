package exhibit

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// unknownFamily is the family counted for an event of the case that the
// classifier named no family for (as the rollup and the reports count it).
const unknownFamily = "unknown"

// Counts is counts.json: the unique hosts of the case's events per UTC day.
type Counts struct {
	// Counted says in words how the numbers were counted.
	Counted string `json:"counted"`
	Case    string `json:"case"`
	Family  string `json:"family,omitempty"`
	// From and To are the period, [From, To), RFC 3339 UTC.
	From string `json:"from"`
	To   string `json:"to"`
	// Events is the number of the case's events in the period, all of
	// them: the counts are over all, also when events.jsonl is a sample.
	Events int64 `json:"events"`
	// Sample describes events.jsonl when it holds a sample; nil when it
	// holds every event counted.
	Sample *Sample     `json:"sample,omitempty"`
	Days   []DayCounts `json:"days"`
}

// Sample says which events events.jsonl holds when not all.
type Sample struct {
	// Size is the number of events in events.jsonl.
	Size int64 `json:"size"`
	// Method says how they were chosen.
	Method string `json:"method"`
}

// DayCounts are the counts of one UTC day.
type DayCounts struct {
	Day       string `json:"day"` // YYYY-MM-DD
	Hosts     int64  `json:"hosts"`
	Events    int64  `json:"events"`
	Families  []Key  `json:"families"`
	Countries []Key  `json:"countries"`
	Networks  []Key  `json:"networks"`
}

// Key is the count of one family, country or network on a day.
type Key struct {
	// Key is the family, the ISO country code ("" unknown) or the AS
	// number in decimal ("0" unknown).
	Key string `json:"key"`
	// Name is the network's name (networks only).
	Name   string `json:"name,omitempty"`
	Hosts  int64  `json:"hosts"`
	Events int64  `json:"events"`
}

// countedText says how the hosts are counted.
func countedText(caseName, family string) string {
	which := fmt.Sprintf("whose case is %q", caseName)
	if family != "" {
		which += fmt.Sprintf(" or whose family is %q", family)
	}
	return "Unique hosts are distinct source addresses of the sinkhole's events " + which +
		", counted per UTC day of the event's time: in all, per malware family (\"unknown\" when the classifier named none), " +
		"per country and per network (AS number) of the address as enrichment placed it when the event was recorded. " +
		"An address seen on two days counts on each; behind one address (NAT) there may be several machines."
}

// counter counts the hosts of events per UTC day.
type counter struct {
	days map[int64]*dayCounter
}

type dayCounter struct {
	all                  keyCounter
	family, country, asn map[string]*keyCounter
	asName               map[string]string
}

type keyCounter struct {
	ips    map[netip.Addr]struct{}
	events int64
}

func (k *keyCounter) add(ip netip.Addr) {
	if k.ips == nil {
		k.ips = map[netip.Addr]struct{}{}
	}
	k.ips[ip] = struct{}{}
	k.events++
}

func newCounter() *counter { return &counter{days: map[int64]*dayCounter{}} }

// add counts e.
func (c *counter) add(e *event.Event) {
	day := e.Time.UTC().Truncate(24 * time.Hour).Unix()
	d := c.days[day]
	if d == nil {
		d = &dayCounter{family: map[string]*keyCounter{}, country: map[string]*keyCounter{}, asn: map[string]*keyCounter{}, asName: map[string]string{}}
		c.days[day] = d
	}
	d.all.add(e.SrcIP)
	fam := cmp.Or(e.Family, unknownFamily)
	asn := strconv.FormatUint(uint64(e.ASN), 10)
	for _, kv := range []struct {
		m map[string]*keyCounter
		k string
	}{{d.family, fam}, {d.country, e.CountryCode}, {d.asn, asn}} {
		k := kv.m[kv.k]
		if k == nil {
			k = &keyCounter{}
			kv.m[kv.k] = k
		}
		k.add(e.SrcIP)
	}
	if e.ASName != "" && d.asName[asn] == "" {
		d.asName[asn] = e.ASName
	}
}

// result returns the days counted, oldest first, each dimension by hosts
// descending and then by key.
func (c *counter) result() []DayCounts {
	days := make([]int64, 0, len(c.days))
	for d := range c.days {
		days = append(days, d)
	}
	slices.Sort(days)
	out := make([]DayCounts, 0, len(days))
	for _, day := range days {
		d := c.days[day]
		keys := func(m map[string]*keyCounter, names map[string]string) []Key {
			ks := make([]Key, 0, len(m))
			for k, v := range m {
				ks = append(ks, Key{Key: k, Name: names[k], Hosts: int64(len(v.ips)), Events: v.events})
			}
			slices.SortFunc(ks, func(a, b Key) int { return cmp.Or(cmp.Compare(b.Hosts, a.Hosts), cmp.Compare(a.Key, b.Key)) })
			return ks
		}
		out = append(out, DayCounts{
			Day:   time.Unix(day, 0).UTC().Format(time.DateOnly),
			Hosts: int64(len(d.all.ips)), Events: d.all.events,
			Families: keys(d.family, nil), Countries: keys(d.country, nil), Networks: keys(d.asn, d.asName),
		})
	}
	return out
}

// countsCSV renders counts.csv: a first line "# " and how the hosts were
// counted, the header, then per day a row of all hosts and one per family,
// country and network.
func countsCSV(c *Counts) []byte {
	var b bytes.Buffer
	b.WriteString("# " + c.Counted + "\n")
	b.WriteString("day,by,key,name,hosts,events\n")
	row := func(day, by string, k Key) {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%d,%d\n", day, by, csvField(k.Key), csvField(k.Name), k.Hosts, k.Events)
	}
	for _, d := range c.Days {
		row(d.Day, "all", Key{Hosts: d.Hosts, Events: d.Events})
		for _, by := range []struct {
			name string
			keys []Key
		}{{"family", d.Families}, {"country", d.Countries}, {"network", d.Networks}} {
			for _, k := range by.keys {
				row(d.Day, by.name, k)
			}
		}
	}
	return b.Bytes()
}

// countsJSON renders counts.json, indented, ending in a newline.
func countsJSON(c *Counts) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// csvField quotes s as RFC 4180 does when it must.
func csvField(s string) string {
	if !bytes.ContainsAny([]byte(s), ",\"\n\r") {
		return s
	}
	return `"` + string(bytes.ReplaceAll([]byte(s), []byte(`"`), []byte(`""`))) + `"`
}
