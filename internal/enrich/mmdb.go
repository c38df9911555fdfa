package enrich

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Layout is the record structure of a MaxMind-format database, told by the
// database_type of its metadata.
type Layout string

// The layouts the enricher reads.
const (
	// LayoutASN: autonomous_system_number and autonomous_system_organization
	// at the top of the record: GeoLite2-ASN, GeoIP2-ASN, GeoIP2-ISP,
	// DBIP-ASN-Lite (compat=GeoLite2-ASN).
	LayoutASN Layout = "asn"
	// LayoutCountry: country.iso_code (registered_country.iso_code when the
	// country is missing): GeoLite2-Country, GeoIP2-Country,
	// DBIP-Country-Lite.
	LayoutCountry Layout = "country"
	// LayoutCity: the country fields plus subdivisions[0] (the region),
	// city.names.en and location.latitude/longitude: GeoLite2-City,
	// GeoIP2-City, GeoIP2-Enterprise, DBIP-City-Lite, DBIP-Location. ASN
	// fields at the top of the record or under traits are read too.
	LayoutCity Layout = "city"
	// LayoutIPinfo: IPinfo's flat records: asn ("AS13335"), as_name,
	// as_domain, country_code, country, continent_code, continent; the
	// legacy country_asn files (country holding the code) and, where
	// present, city, region, latitude and longitude.
	LayoutIPinfo Layout = "ipinfo"
	// LayoutIPtoASN is not an MMDB layout: it marks an iptoasn TSV file.
	LayoutIPtoASN Layout = "iptoasn"
)

// DetectLayout returns the layout of a database whose metadata names
// databaseType, and the vendor that the name implies ("MaxMind", "DB-IP",
// "IPinfo" or "" for anyone else). Unknown types are an error: the fields
// of such a database cannot be guessed.
func DetectLayout(databaseType string) (Layout, string, error) {
	t := strings.ToLower(databaseType)
	vendor := ""
	switch {
	case strings.HasPrefix(t, "geoip2") || strings.HasPrefix(t, "geolite2"):
		vendor = "MaxMind"
	case strings.HasPrefix(t, "dbip"):
		vendor = "DB-IP"
	case strings.HasPrefix(t, "ipinfo"):
		return LayoutIPinfo, "IPinfo", nil
	}
	// DB-IP names its compatible layout in parentheses.
	if i := strings.Index(t, "(compat="); i >= 0 {
		t = t[i:]
	}
	switch {
	case strings.Contains(t, "asn") || strings.Contains(t, "-isp"):
		return LayoutASN, vendor, nil
	case strings.Contains(t, "city") || strings.Contains(t, "enterprise") || strings.Contains(t, "location"):
		return LayoutCity, vendor, nil
	case strings.Contains(t, "country"):
		return LayoutCountry, vendor, nil
	}
	return "", vendor, fmt.Errorf("database type %q is not one the enricher reads (ASN, Country, City of MaxMind or DB-IP, or IPinfo)", databaseType)
}

// record is what one source knows of one address.
type record struct {
	ASN         uint32
	ASName      string
	CountryCode string
	Region      string
	City        string
	Latitude    float64
	Longitude   float64
}

func (r record) hasGeo() bool { return r.Latitude != 0 || r.Longitude != 0 }

// names decodes only the English name of a names map, so that decoding
// allocates no map.
type names struct {
	EN string `maxminddb:"en"`
}

// maxmindRecord covers the ASN, Country and City layouts: a field that a
// layout lacks stays empty.
type maxmindRecord struct {
	ASN     uint32 `maxminddb:"autonomous_system_number"`
	ASOrg   string `maxminddb:"autonomous_system_organization"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Subdivisions []struct {
		ISOCode string `maxminddb:"iso_code"`
		Names   names  `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"city"`
	Location struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
	Traits struct {
		ASN   uint32 `maxminddb:"autonomous_system_number"`
		ASOrg string `maxminddb:"autonomous_system_organization"`
	} `maxminddb:"traits"`
}

func (m *maxmindRecord) record() record {
	r := record{ASN: m.ASN, ASName: m.ASOrg, City: m.City.Names.EN}
	if r.ASN == 0 {
		r.ASN, r.ASName = m.Traits.ASN, m.Traits.ASOrg
	}
	r.CountryCode = normCountry(m.Country.ISOCode)
	if r.CountryCode == "" {
		r.CountryCode = normCountry(m.RegisteredCountry.ISOCode)
	}
	if len(m.Subdivisions) > 0 {
		r.Region = m.Subdivisions[0].Names.EN
		if r.Region == "" {
			r.Region = m.Subdivisions[0].ISOCode
		}
	}
	if validCoords(m.Location.Latitude, m.Location.Longitude) {
		r.Latitude, r.Longitude = m.Location.Latitude, m.Location.Longitude
	}
	return r
}

// ipinfoRecord covers IPinfo's flat layouts. Coordinates are numbers in
// some of its products and strings in others.
type ipinfoRecord struct {
	ASN         string `maxminddb:"asn"`
	ASName      string `maxminddb:"as_name"`
	Name        string `maxminddb:"name"` // generic_asn files
	CountryCode string `maxminddb:"country_code"`
	Country     string `maxminddb:"country"`
	Region      string `maxminddb:"region"`
	City        string `maxminddb:"city"`
	Latitude    any    `maxminddb:"latitude"`
	Longitude   any    `maxminddb:"longitude"`
}

func (m *ipinfoRecord) record() record {
	r := record{ASN: parseASN(m.ASN), ASName: m.ASName, Region: m.Region, City: m.City}
	if r.ASName == "" {
		r.ASName = m.Name
	}
	if r.ASN == 0 {
		r.ASName = ""
	}
	r.CountryCode = normCountry(m.CountryCode)
	if r.CountryCode == "" {
		r.CountryCode = normCountry(m.Country) // legacy country_asn: country is the code
	}
	lat, ok1 := anyFloat(m.Latitude)
	lon, ok2 := anyFloat(m.Longitude)
	if ok1 && ok2 && validCoords(lat, lon) {
		r.Latitude, r.Longitude = lat, lon
	}
	return r
}

// parseASN reads "AS13335", "as13335" or "13335"; 0 when it is none.
func parseASN(s string) uint32 {
	s = strings.TrimSpace(s)
	if len(s) > 2 && (s[0] == 'A' || s[0] == 'a') && (s[1] == 'S' || s[1] == 's') {
		s = s[2:]
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

func anyFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// validCoords reports whether (lat, lon) is a known position on Earth;
// (0, 0) means unknown.
func validCoords(lat, lon float64) bool {
	if math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return false
	}
	return lat != 0 || lon != 0
}

// mmdbSource is one opened MaxMind-format database.
type mmdbSource struct {
	r      *maxminddb.Reader
	layout Layout
}

func (s *mmdbSource) lookup(a netip.Addr) (record, bool, error) {
	res := s.r.Lookup(a)
	if err := res.Err(); err != nil {
		return record{}, false, err
	}
	if !res.Found() {
		return record{}, false, nil
	}
	if s.layout == LayoutIPinfo {
		var m ipinfoRecord
		if err := res.Decode(&m); err != nil {
			return record{}, false, err
		}
		return m.record(), true, nil
	}
	var m maxmindRecord
	if err := res.Decode(&m); err != nil {
		return record{}, false, err
	}
	return m.record(), true, nil
}

// openMMDB opens a database held in data (the reader keeps data) and checks
// its structure.
func openMMDB(data []byte) (*mmdbSource, maxminddb.Metadata, string, int, error) {
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, maxminddb.Metadata{}, "", 0, fmt.Errorf("not a readable MaxMind DB: %w", err)
	}
	if err := r.Verify(); err != nil {
		return nil, r.Metadata, "", 0, fmt.Errorf("MaxMind DB is corrupt: %w", err)
	}
	layout, vendor, err := DetectLayout(r.Metadata.DatabaseType)
	if err != nil {
		return nil, r.Metadata, vendor, 0, err
	}
	n := 0
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, r.Metadata, vendor, 0, fmt.Errorf("MaxMind DB is corrupt: %w", err)
		}
		n++
	}
	return &mmdbSource{r: r, layout: layout}, r.Metadata, vendor, n, nil
}
