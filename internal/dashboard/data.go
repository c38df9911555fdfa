package dashboard

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/users"
	"github.com/takedown-project/takedown/internal/worldmap"
)

// Every answer here but hosts' is safe for a viewer: the types hold no IP
// address, and the fields that could (a delegation's name server
// addresses, a subscriber's CIDRs and contacts) are filled for roles that
// see addresses only.

// params reads the query parameters the views share.
type params struct {
	q url.Values
}

func (p params) family() (string, error) {
	f := strings.TrimSpace(p.q.Get("family"))
	if f != "" && !event.ValidFamily(f) {
		return "", badf("family %q: want %s", f, event.FamilyRule)
	}
	return f, nil
}

// day reads ?day=YYYY-MM-DD; def when absent.
func (p params) day(def time.Time) (time.Time, error) {
	s := p.q.Get("day")
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, badf("day %q: want YYYY-MM-DD", s)
	}
	return t.UTC(), nil
}

// span reads ?span= in days: 1, 7 or 30; def when absent.
func (p params) span(def int) (int, error) {
	s := p.q.Get("span")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || (n != 1 && n != 7 && n != 30) {
		return 0, badf("span %q: want 1, 7 or 30 (days)", s)
	}
	return n, nil
}

func (p params) limit(def, most int) (int, error) {
	s := p.q.Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, badf("limit %q: want 1 to %d", s, most)
	}
	return n, nil
}

func parseASN(s string) (uint32, error) {
	s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "AS")
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, badf("network %q: want an AS number such as 64512", s)
	}
	return uint32(n), nil
}

func parseCountry(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return "", badf("country %q: want an ISO 3166-1 alpha-2 code such as DE", s)
	}
	return c, nil
}

// today is the current UTC day.
func (d *Dashboard) today() time.Time { return d.now().UTC().Truncate(24 * time.Hour) }

// spanRange is the days of the last n days up to today, [from, to).
func (d *Dashboard) spanRange(n int) (time.Time, time.Time) {
	t := d.today()
	return t.AddDate(0, 0, 1-n), t.AddDate(0, 0, 1)
}

type familyHosts struct {
	Family string  `json:"family"`
	Hosts  []int64 `json:"hosts"` // per span
}

// hourRow is one hour of the overview's chart: its events (DNS queries,
// HTTP requests, SMTP sessions), as the page names them.
type hourRow struct {
	Hour   time.Time `json:"hour"`
	Events int64     `json:"events"`
	// Callbacks is Events under the key of the previous version, for
	// scripts that read it; it goes in the next version.
	Callbacks int64 `json:"callbacks"`
}

type networkRow struct {
	ASN    uint32 `json:"asn"`
	ASName string `json:"as_name"`
	Hosts  int64  `json:"hosts"`
}

type countryRow struct {
	Code  string `json:"cc"`
	Name  string `json:"name"`
	Hosts int64  `json:"hosts"`
	// Class is the map's colour class, from 1 (lightest); 0 for a
	// country without a shape on the map.
	Class int `json:"class,omitempty"`
}

func (d *Dashboard) countryName(cc string) string {
	if cc == "" {
		return "unknown country"
	}
	if n, ok := d.names[cc]; ok {
		return n
	}
	return cc
}

type overviewData struct {
	AsOf     time.Time `json:"as_of"`
	Today    string    `json:"today"`
	Family   string    `json:"family,omitempty"`
	Families []string  `json:"families"`
	// Spans are the days counted by Totals and PerFamily: today, 7, 30.
	Spans     []int         `json:"spans"`
	Totals    []int64       `json:"totals"`
	PerFamily []familyHosts `json:"per_family"`
	// Hours are the events of the last 48 hours, hour by hour.
	Hours []hourRow `json:"hours"`
	// TopSpan is the days of the top lists.
	TopSpan      int          `json:"top_span"`
	TopNetworks  []networkRow `json:"top_networks"`
	TopCountries []countryRow `json:"top_countries"`
}

// overview is GET /ui/api/overview?family=&span=: unique hosts today, in
// 7 and 30 days per family; events per hour; the top 20 networks and
// countries of the span (default 7 days).
func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, _ *users.Session) error {
	p := params{r.URL.Query()}
	fam, err := p.family()
	if err != nil {
		return err
	}
	span, err := p.span(7)
	if err != nil {
		return err
	}
	ctx := r.Context()
	now := d.now().UTC()
	out := overviewData{AsOf: d.cfg.Rollup.AsOf(), Today: d.today().Format(time.DateOnly), Family: fam,
		Spans: []int{1, 7, 30}, TopSpan: span, PerFamily: []familyHosts{}, Hours: []hourRow{},
		TopNetworks: []networkRow{}, TopCountries: []countryRow{}}
	if out.Families, err = d.cfg.Rollup.Families(ctx); err != nil {
		return err
	}
	out.Families = orEmpty(out.Families)
	spans, err := d.cfg.Rollup.Spans(ctx, now, out.Spans, fam)
	if err != nil {
		return err
	}
	for _, s := range spans {
		if s.Family == "" {
			out.Totals = s.IPs
		} else {
			out.PerFamily = append(out.PerFamily, familyHosts{Family: s.Family, Hosts: s.IPs})
		}
	}
	hours, err := d.cfg.Rollup.Hours(ctx, eventstore.HourQuery{From: now.Truncate(time.Hour).Add(-47 * time.Hour), Family: fam})
	if err != nil {
		return err
	}
	for _, h := range hours {
		out.Hours = append(out.Hours, hourRow{Hour: h.Hour, Events: h.Events, Callbacks: h.Events})
	}
	from, to := d.spanRange(span)
	nets, err := d.cfg.Rollup.Hosts(ctx, eventstore.HostQuery{From: from, To: to, Family: fam, GroupBy: []eventstore.Dimension{eventstore.DimASN}, Limit: 20})
	if err != nil {
		return err
	}
	for _, n := range nets {
		out.TopNetworks = append(out.TopNetworks, networkRow{ASN: n.ASN, ASName: n.ASName, Hosts: n.IPs})
	}
	ccs, err := d.cfg.Rollup.Hosts(ctx, eventstore.HostQuery{From: from, To: to, Family: fam, GroupBy: []eventstore.Dimension{eventstore.DimCountry}, Limit: 20})
	if err != nil {
		return err
	}
	for _, c := range ccs {
		out.TopCountries = append(out.TopCountries, countryRow{Code: c.Country, Name: d.countryName(c.Country), Hosts: c.IPs})
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// The map.

type mapKey struct {
	day    time.Time
	family string
	asOf   time.Time
}

type mapEntry struct {
	data mapData
	svg  []byte
}

type classRow struct {
	Min       int64  `json:"min"`
	Max       int64  `json:"max"`
	Color     string `json:"color"`
	Countries int    `json:"countries"`
}

type cityRow struct {
	Country string  `json:"cc"`
	City    string  `json:"city"`
	Hosts   int64   `json:"hosts"`
	X       float64 `json:"x"`
	Y       float64 `json:"y"`
	R       float64 `json:"r"`
}

type mapData struct {
	AsOf     time.Time `json:"as_of"`
	Day      string    `json:"day"`
	Family   string    `json:"family,omitempty"`
	Families []string  `json:"families"`
	// Days are the days the slider offers, oldest first.
	Days []string `json:"days"`
	// Total is every host of the day; Unknown those of no known
	// country; Coloured the countries coloured on the map.
	Total    int64 `json:"total"`
	Unknown  int64 `json:"unknown"`
	Coloured int   `json:"coloured"`
	// Countries are the countries with hosts, most first.
	Countries []countryRow `json:"countries"`
	Classes   []classRow   `json:"classes"`
	Width     int          `json:"width"`
	Height    int          `json:"height"`
	// SVG is the map as `takedown map` draws it (worldmap): one <path
	// data-cc> per country, legend, totals.
	SVG string `json:"svg"`
	// Cities are proportional symbols in the SVG's coordinates, biggest
	// first.
	Cities []cityRow `json:"cities"`
}

// mapSize is the size of the dashboard's map: that of `takedown map`'s
// PNG at three quarters.
const mapW, mapH = 1200, 675

// renderMap builds (or takes from the cache) the map of a day and family.
func (d *Dashboard) renderMap(r *http.Request, day time.Time, fam string) (*mapEntry, error) {
	ctx := r.Context()
	key := mapKey{day, fam, d.cfg.Rollup.AsOf()}
	d.mapMu.Lock()
	if e, ok := d.mapCache[key]; ok {
		d.mapMu.Unlock()
		return e, nil
	}
	d.mapMu.Unlock()

	rows, err := d.cfg.Rollup.Hosts(ctx, eventstore.HostQuery{From: day, To: day.AddDate(0, 0, 1), Family: fam, GroupBy: []eventstore.Dimension{eventstore.DimCountry}})
	if err != nil {
		return nil, err
	}
	hosts := map[string]int64{}
	for _, c := range rows {
		hosts[c.Country] += c.IPs
	}
	o := worldmap.Day{Day: day, Family: fam, Hosts: hosts, Source: []string{d.cfg.Sensor, d.cfg.Operator}, Demo: d.cfg.Demo}.Options()
	o.Width, o.Height = mapW, mapH
	m, err := worldmap.New(o)
	if err != nil {
		return nil, err
	}
	var svg bytes.Buffer
	if err := m.WriteSVG(&svg); err != nil {
		return nil, err
	}
	out := mapData{AsOf: key.asOf, Day: day.Format(time.DateOnly), Family: fam, Width: mapW, Height: mapH,
		Countries: []countryRow{}, Classes: []classRow{}, Cities: []cityRow{}}
	classes := m.Classes()
	for _, c := range classes {
		out.Classes = append(out.Classes, classRow{Min: c.Min, Max: c.Max, Color: c.Hex(), Countries: c.Countries})
	}
	shaped := map[string]bool{}
	for _, c := range worldmap.Countries() {
		if c.Code != "AQ" {
			shaped[c.Code] = true
		}
	}
	for cc, n := range hosts {
		out.Total += n
		if cc == "" {
			out.Unknown += n
			continue
		}
		row := countryRow{Code: cc, Name: d.countryName(cc), Hosts: n}
		if shaped[cc] {
			for i, c := range classes {
				if n >= c.Min && n <= c.Max {
					row.Class = i + 1
				}
			}
			if row.Class > 0 {
				out.Coloured++
			}
		}
		out.Countries = append(out.Countries, row)
	}
	slices.SortFunc(out.Countries, func(a, b countryRow) int { return cmp.Or(cmp.Compare(b.Hosts, a.Hosts), cmp.Compare(a.Code, b.Code)) })

	cities, err := d.cfg.Rollup.Cities(ctx, eventstore.CityQuery{From: day, To: day.AddDate(0, 0, 1), Family: fam, Limit: 300})
	if err != nil {
		return nil, err
	}
	if len(cities) > 0 {
		biggest := float64(cities[0].IPs)
		for _, c := range cities {
			if c.Latitude == 0 && c.Longitude == 0 {
				continue // no position
			}
			x, y := m.Project(c.Longitude, c.Latitude)
			// Area in proportion to the hosts: the radius grows with the
			// square root; the biggest city gets 16 px, none less than 2.
			rad := math.Max(2, 16*math.Sqrt(float64(c.IPs)/biggest))
			out.Cities = append(out.Cities, cityRow{Country: c.Country, City: c.City, Hosts: c.IPs,
				X: math.Round(x*10) / 10, Y: math.Round(y*10) / 10, R: math.Round(rad*10) / 10})
		}
	}
	out.SVG = svg.String()
	e := &mapEntry{data: out, svg: svg.Bytes()}
	d.mapMu.Lock()
	defer d.mapMu.Unlock()
	// Keep the maps of the newest rollup only, and few of them.
	for k := range d.mapCache {
		if !k.asOf.Equal(key.asOf) || len(d.mapCache) > 64 {
			delete(d.mapCache, k)
		}
	}
	d.mapCache[key] = e
	return e, nil
}

// orEmpty makes a nil slice empty, for JSON's [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// mapParams reads ?day= (default today) and ?family=.
func (d *Dashboard) mapParams(r *http.Request) (time.Time, string, error) {
	p := params{r.URL.Query()}
	fam, err := p.family()
	if err != nil {
		return time.Time{}, "", err
	}
	day, err := p.day(d.today())
	if err != nil {
		return time.Time{}, "", err
	}
	if oldest := d.today().AddDate(0, 0, 1-d.cfg.Rollup.Days()); day.Before(oldest) || day.After(d.today().AddDate(0, 0, 1)) {
		return time.Time{}, "", badf("day %s: the dashboard has the days from %s to %s", day.Format(time.DateOnly),
			oldest.Format(time.DateOnly), d.today().Format(time.DateOnly))
	}
	return day, fam, nil
}

// worldMap is GET /ui/api/map?day=&family=: the choropleth of the day's
// unique hosts per country, as SVG, with its numbers and the cities.
func (d *Dashboard) worldMap(w http.ResponseWriter, r *http.Request, _ *users.Session) error {
	day, fam, err := d.mapParams(r)
	if err != nil {
		return err
	}
	e, err := d.renderMap(r, day, fam)
	if err != nil {
		return err
	}
	out := e.data
	if out.Families, err = d.cfg.Rollup.Families(r.Context()); err != nil {
		return err
	}
	out.Families = orEmpty(out.Families)
	days, err := d.cfg.Rollup.RollupDays(r.Context())
	if err != nil {
		return err
	}
	out.Days = []string{}
	for _, t := range days {
		out.Days = append(out.Days, t.Format(time.DateOnly))
	}
	if today := d.today().Format(time.DateOnly); !slices.Contains(out.Days, today) {
		out.Days = append(out.Days, today)
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// mapSVG is GET /ui/api/map.svg?day=&family=: the map alone, to save.
func (d *Dashboard) mapSVG(w http.ResponseWriter, r *http.Request, _ *users.Session) error {
	day, fam, err := d.mapParams(r)
	if err != nil {
		return err
	}
	e, err := d.renderMap(r, day, fam)
	if err != nil {
		return err
	}
	name := "hosts-" + day.Format(time.DateOnly)
	if fam != "" {
		name += "-" + fam
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.svg"`)
	w.Write(e.svg)
	return nil
}

type countryData struct {
	Code     string       `json:"cc"`
	Name     string       `json:"name"`
	Day      string       `json:"day"`
	Family   string       `json:"family,omitempty"`
	Hosts    int64        `json:"hosts"`
	Networks []networkRow `json:"networks"`
	Cities   []cityCount  `json:"cities"`
}

type cityCount struct {
	City  string `json:"city"`
	Hosts int64  `json:"hosts"`
}

// country is GET /ui/api/countries/{cc}?day=&family=: a country's
// networks and cities of the day.
func (d *Dashboard) country(w http.ResponseWriter, r *http.Request, _ *users.Session) error {
	cc, err := parseCountry(r.PathValue("cc"))
	if err != nil {
		return err
	}
	day, fam, err := d.mapParams(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	q := eventstore.HostQuery{From: day, To: day.AddDate(0, 0, 1), Family: fam, Country: cc}
	out := countryData{Code: cc, Name: d.countryName(cc), Day: day.Format(time.DateOnly), Family: fam, Networks: []networkRow{}, Cities: []cityCount{}}
	tot, err := d.cfg.Rollup.Hosts(ctx, q)
	if err != nil {
		return err
	}
	if len(tot) > 0 {
		out.Hosts = tot[0].IPs
	}
	q.GroupBy = []eventstore.Dimension{eventstore.DimASN}
	q.Limit = 200
	nets, err := d.cfg.Rollup.Hosts(ctx, q)
	if err != nil {
		return err
	}
	for _, n := range nets {
		out.Networks = append(out.Networks, networkRow{ASN: n.ASN, ASName: n.ASName, Hosts: n.IPs})
	}
	cities, err := d.cfg.Rollup.Cities(ctx, eventstore.CityQuery{From: q.From, To: q.To, Family: fam, Country: cc, Limit: 50})
	if err != nil {
		return err
	}
	for _, c := range cities {
		out.Cities = append(out.Cities, cityCount{City: c.City, Hosts: c.IPs})
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// Networks.

// subscriberView is a subscriber as the dashboard shows it: its name and
// organisation for everyone; its scope's addresses and its contacts
// (personal data) for roles that see addresses.
type subscriberView struct {
	Name      string   `json:"name"`
	Org       string   `json:"org"`
	ASNs      []uint32 `json:"asns,omitempty"`
	Countries []string `json:"countries,omitempty"`
	CIDRs     []string `json:"cidrs,omitempty"`
	Contacts  []string `json:"contacts,omitempty"`
	Formats   []string `json:"formats,omitempty"`
	SendAt    string   `json:"send_at,omitempty"`
	TLP       string   `json:"tlp,omitempty"`
}

func subscriberOf(s registry.Subscriber, full bool) subscriberView {
	v := subscriberView{Name: s.Name, Org: s.Org}
	if !full {
		v.Org = redactAddrs(s.Org)
	}
	if full {
		v.ASNs, v.Countries, v.Contacts, v.Formats, v.SendAt, v.TLP = s.Scope.ASNs, s.Scope.Countries, s.Contacts, s.Formats, s.SendAt, s.TLP
		for _, p := range s.Scope.Prefixes {
			v.CIDRs = append(v.CIDRs, p.String())
		}
	}
	return v
}

// subscribersByASN maps each AS number in a subscriber's scope to its
// subscribers.
func (d *Dashboard) subscribersByASN(r *http.Request, full bool) (map[uint32][]subscriberView, error) {
	subs, err := d.cfg.Registry.ListSubscribers(r.Context())
	if err != nil {
		return nil, err
	}
	out := map[uint32][]subscriberView{}
	for _, s := range subs {
		for _, a := range s.Scope.ASNs {
			out[a] = append(out[a], subscriberOf(s, full))
		}
	}
	return out, nil
}

type dayHosts struct {
	Day   string `json:"day"`
	Hosts int64  `json:"hosts"`
}

// trendOf gives every day of [from, to) its hosts, 0 for days without.
func trendOf(rows []eventstore.DailyHosts, from, to time.Time) []dayHosts {
	by := map[time.Time]int64{}
	for _, r := range rows {
		by[r.Day] = r.IPs
	}
	out := []dayHosts{}
	for t := from; t.Before(to); t = t.AddDate(0, 0, 1) {
		out = append(out, dayHosts{Day: t.Format(time.DateOnly), Hosts: by[t]})
	}
	return out
}

type networkListRow struct {
	networkRow
	Today       int64            `json:"today"`
	Trend       []dayHosts       `json:"trend"`
	Subscribers []subscriberView `json:"subscribers"`
}

type networksData struct {
	AsOf     time.Time        `json:"as_of"`
	Span     int              `json:"span"`
	Family   string           `json:"family,omitempty"`
	Networks []networkListRow `json:"networks"`
}

// networks is GET /ui/api/networks?span=&family=&limit=: the networks
// with the most hosts over the span (default 7 days), with today's, a
// 14-day trend and their subscribers.
func (d *Dashboard) networks(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	p := params{r.URL.Query()}
	fam, err := p.family()
	if err != nil {
		return err
	}
	span, err := p.span(7)
	if err != nil {
		return err
	}
	limit, err := p.limit(100, 1000)
	if err != nil {
		return err
	}
	ctx := r.Context()
	from, to := d.spanRange(span)
	rows, err := d.cfg.Rollup.Hosts(ctx, eventstore.HostQuery{From: from, To: to, Family: fam, GroupBy: []eventstore.Dimension{eventstore.DimASN}, Limit: limit})
	if err != nil {
		return err
	}
	asns := make([]uint32, len(rows))
	for i, n := range rows {
		asns[i] = n.ASN
	}
	tfrom, tto := d.spanRange(14)
	trends, err := d.cfg.Rollup.DailyByASN(ctx, tfrom, tto, asns)
	if err != nil {
		return err
	}
	subs, err := d.subscribersByASN(r, s.User.Role.SeesAddresses())
	if err != nil {
		return err
	}
	out := networksData{AsOf: d.cfg.Rollup.AsOf(), Span: span, Family: fam, Networks: []networkListRow{}}
	today := d.today()
	for _, n := range rows {
		tr := trendOf(trends[n.ASN], tfrom, tto)
		row := networkListRow{networkRow: networkRow{ASN: n.ASN, ASName: n.ASName, Hosts: n.IPs}, Trend: tr,
			Subscribers: orEmpty(subs[n.ASN])}
		if len(tr) > 0 && tr[len(tr)-1].Day == today.Format(time.DateOnly) {
			row.Today = tr[len(tr)-1].Hosts
		}
		out.Networks = append(out.Networks, row)
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

type networkData struct {
	networkRow
	Trend       []dayHosts       `json:"trend"`
	Countries   []countryRow     `json:"countries"`
	Subscribers []subscriberView `json:"subscribers"`
}

// network is GET /ui/api/networks/{asn}: one network's remediation trend
// over the rollup's days, its countries and its subscribers.
func (d *Dashboard) network(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	asn, err := parseASN(r.PathValue("asn"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	from, to := d.spanRange(d.cfg.Rollup.Days())
	out := networkData{networkRow: networkRow{ASN: asn}, Countries: []countryRow{}}
	trends, err := d.cfg.Rollup.DailyByASN(ctx, from, to, []uint32{asn})
	if err != nil {
		return err
	}
	out.Trend = trendOf(trends[asn], from, to)
	rows, err := d.cfg.Rollup.Hosts(ctx, eventstore.HostQuery{From: from, To: to, ASN: asn, GroupBy: []eventstore.Dimension{eventstore.DimASN, eventstore.DimCountry}})
	if err != nil {
		return err
	}
	for _, c := range rows {
		out.ASName = cmp.Or(out.ASName, c.ASName)
		out.Hosts += c.IPs
		out.Countries = append(out.Countries, countryRow{Code: c.Country, Name: d.countryName(c.Country), Hosts: c.IPs})
	}
	subs, err := d.subscribersByASN(r, s.User.Role.SeesAddresses())
	if err != nil {
		return err
	}
	out.Subscribers = orEmpty(subs[asn])
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// Hosts: infected addresses, for analysts and admins.

type hostRow struct {
	IP        string    `json:"ip"`
	Family    string    `json:"family"`
	ASN       uint32    `json:"asn"`
	ASName    string    `json:"as_name"`
	Country   string    `json:"cc"`
	City      string    `json:"city"`
	Events    int64     `json:"events"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// hosts is GET /ui/api/hosts?asn=|country=&day=|span=&family=&limit=:
// the infected addresses of a network or country. Each answer is written
// to the audit log: infected-host lists are personal data.
func (d *Dashboard) hosts(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	p := params{r.URL.Query()}
	fam, err := p.family()
	if err != nil {
		return err
	}
	limit, err := p.limit(500, 5000)
	if err != nil {
		return err
	}
	q := eventstore.HostListQuery{Family: fam, Limit: limit}
	var object string
	if v := p.q.Get("asn"); v != "" {
		if q.ASN, err = parseASN(v); err != nil {
			return err
		}
		object = fmt.Sprintf("asn:%d", q.ASN)
	}
	if v := p.q.Get("country"); v != "" {
		if q.Country, err = parseCountry(v); err != nil {
			return err
		}
		object = strings.TrimPrefix(object+" country:"+q.Country, " ")
	}
	if object == "" {
		return badf("give a network (asn=) or a country (country=)")
	}
	if p.q.Has("day") {
		day, err := p.day(time.Time{})
		if err != nil {
			return err
		}
		q.From, q.To = day, day.AddDate(0, 0, 1)
	} else {
		span, err := p.span(1)
		if err != nil {
			return err
		}
		q.From, q.To = d.spanRange(span)
	}
	list, err := d.cfg.Rollup.HostList(r.Context(), q)
	if err != nil {
		return err
	}
	detail := map[string]any{"from": q.From.Format(time.DateOnly), "to": q.To.Format(time.DateOnly), "hosts": len(list)}
	if fam != "" {
		detail["family"] = fam
	}
	if err := d.cfg.Registry.RecordAccess(r.Context(), actor(r, s), "dashboard.hosts", object, detail); err != nil {
		return fmt.Errorf("recording the access: %w", err)
	}
	out := make([]hostRow, len(list))
	for i, h := range list {
		out[i] = hostRow{IP: h.IP.String(), Family: h.Family, ASN: h.ASN, ASName: h.ASName, Country: h.Country, City: h.City,
			Events: h.Events, FirstSeen: h.FirstSeen, LastSeen: h.LastSeen}
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"hosts": out, "limit": limit})
	return nil
}

// Cases and domains.

type casesData struct {
	Now       time.Time           `json:"now"`
	Cases     []registry.Case     `json:"cases"`
	Deadlines []registry.Deadline `json:"deadlines"`
	// StaleDS are the domains (not released) whose last check found
	// stale DS records at the parent: a warning beside the deadlines.
	StaleDS []staleDS `json:"stale_ds"`
}

type staleDS struct {
	Name string `json:"name"`
	Case string `json:"case"`
}

// cases is GET /ui/api/cases: the cases with their orders and domain
// counts per state, and the deadlines of the next year.
func (d *Dashboard) cases(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	ctx := r.Context()
	now := d.now().UTC()
	cs, err := d.cfg.Registry.ListCases(ctx)
	if err != nil {
		return err
	}
	dl, err := d.cfg.Registry.Deadlines(ctx, now, 366*24*time.Hour)
	if err != nil {
		return err
	}
	if !s.User.Role.SeesAddresses() {
		// Free text may name an address (a C2 server in the notes).
		for i := range cs {
			c := &cs[i]
			c.Title, c.Notes, c.Court, c.Docket = redactAddrs(c.Title), redactAddrs(c.Notes), redactAddrs(c.Court), redactAddrs(c.Docket)
			for j := range c.Orders {
				o := &c.Orders[j]
				o.Reference, o.Notes = redactAddrs(o.Reference), redactAddrs(o.Notes)
			}
		}
		for i := range dl {
			dl[i].Reference = redactAddrs(dl[i].Reference)
		}
	}
	all, err := d.cfg.Registry.ListDomains(ctx, registry.DomainFilter{})
	if err != nil {
		return err
	}
	stale := []staleDS{}
	for _, dm := range all {
		if dm.DSState == registry.DSStale && dm.State != registry.StateReleased {
			stale = append(stale, staleDS{Name: dm.Name, Case: dm.Case})
		}
	}
	writeJSON(w, r, http.StatusOK, casesData{Now: now, Cases: orEmpty(cs), Deadlines: orEmpty(dl), StaleDS: stale})
	return nil
}

// delegationView is a delegation check; Addrs (name server addresses)
// only for roles that see addresses.
type delegationView struct {
	CheckedAt time.Time `json:"checked_at"`
	Verified  bool      `json:"verified"`
	NS        []string  `json:"ns"`
	Addrs     []string  `json:"addrs,omitempty"`
	Problem   string    `json:"problem,omitempty"`
	// DSState, DS and DSProblem: the DS records at the parent (see
	// registry.DelegationCheck).
	DSState   registry.DSState `json:"ds_state,omitempty"`
	DS        []string         `json:"ds,omitempty"`
	DSProblem string           `json:"ds_problem,omitempty"`
}

type domainRow struct {
	Name       string           `json:"name"`
	Case       string           `json:"case"`
	Family     string           `json:"family,omitempty"`
	Registrar  string           `json:"registrar,omitempty"`
	State      registry.State   `json:"state"`
	StateSince time.Time        `json:"state_since"`
	Next       []registry.State `json:"next"`
	// LastQuery is the newest event naming the domain in the rollup's
	// days; Queries their number.
	LastQuery  time.Time       `json:"last_query,omitzero"`
	Queries    int64           `json:"queries"`
	Delegation *delegationView `json:"delegation,omitempty"`
}

type domainsData struct {
	Domains []domainRow      `json:"domains"`
	Offset  int              `json:"offset"`
	More    bool             `json:"more"`
	States  []registry.State `json:"states"`
	Days    int              `json:"days"`
}

var allStates = []registry.State{registry.StateListed, registry.StateRestrained, registry.StateSinkholed, registry.StateTransferred, registry.StateReleased}

// domains is GET /ui/api/domains?case=&state=&q=&offset=&limit=: domains
// by name with their state, last query and delegation check.
func (d *Dashboard) domains(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	p := params{r.URL.Query()}
	limit, err := p.limit(100, 1000)
	if err != nil {
		return err
	}
	offset := 0
	if v := p.q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return badf("offset %q: want a number from 0", v)
		}
	}
	f := registry.DomainFilter{Case: p.q.Get("case"), State: registry.State(p.q.Get("state"))}
	search := strings.ToLower(strings.TrimSpace(p.q.Get("q")))
	if search == "" {
		f.Limit = offset + limit + 1
	}
	ctx := r.Context()
	list, err := d.cfg.Registry.ListDomains(ctx, f)
	if err != nil {
		return err
	}
	if search != "" {
		list = slices.DeleteFunc(list, func(dm registry.Domain) bool { return !strings.Contains(dm.Name, search) })
	}
	out := domainsData{Offset: offset, States: allStates, Days: d.cfg.Rollup.Days(), Domains: []domainRow{}}
	if offset < len(list) {
		list = list[offset:]
	} else {
		list = nil
	}
	if len(list) > limit {
		list, out.More = list[:limit], true
	}
	names := make([]string, len(list))
	for i, dm := range list {
		names[i] = dm.Name
	}
	dels, err := d.cfg.Registry.LastDelegations(ctx, names)
	if err != nil {
		return err
	}
	zones, err := d.cfg.Rollup.Zones(ctx, names)
	if err != nil {
		return err
	}
	sees := s.User.Role.SeesAddresses()
	for _, dm := range list {
		row := domainRow{Name: dm.Name, Case: dm.Case, Family: dm.Family, Registrar: dm.Registrar, State: dm.State,
			StateSince: dm.StateSince, Next: orEmpty(registry.NextStates(dm.State))}
		if z, ok := zones[dm.Name]; ok {
			row.LastQuery, row.Queries = z.Last, z.Queries
		}
		if c, ok := dels[dm.Name]; ok {
			v := &delegationView{CheckedAt: c.CheckedAt, Verified: c.Verified, NS: orEmpty(c.NS), Problem: c.Problem,
				DSState: c.DSState, DS: c.DS, DSProblem: c.DSProblem}
			if sees {
				v.Addrs = c.Addrs
			} else {
				v.Problem = redactAddrs(c.Problem)
			}
			row.Delegation = v
		}
		out.Domains = append(out.Domains, row)
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// addrRE finds IPv4 addresses and IPv6-looking words in free text.
var addrRE = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b|\b[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}\b`)

// redactAddrs hides the addresses in a delegation problem ("NS points
// elsewhere: 192.0.2.1") from roles that see none.
func redactAddrs(s string) string { return addrRE.ReplaceAllString(s, "[address]") }

type stateRequest struct {
	Names  []string `json:"names"`
	To     string   `json:"to"`
	Reason string   `json:"reason"`
}

// setState is POST /ui/api/domains/state {names, to, reason}: moves
// domains through the lifecycle, with the user as the audit log's actor.
func (d *Dashboard) setState(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	var req stateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if len(req.Names) == 0 {
		return badf("names: give the domains to change")
	}
	if len(req.Names) > 10_000 {
		return badf("names: %d domains; at most 10,000 at once", len(req.Names))
	}
	to, err := registry.ParseState(req.To)
	if err != nil {
		return err
	}
	ch := actor(r, s)
	ch.Reason = req.Reason
	ds, err := d.cfg.Registry.SetState(r.Context(), req.Names, to, ch)
	if err != nil {
		return err
	}
	d.log.Info("domain state changed", "user", s.User.Name, "domains", len(ds), "to", to)
	writeJSON(w, r, http.StatusOK, map[string]any{"domains": ds})
	return nil
}
