package enrich

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// fixtureNet is one network of the test world, on documentation ranges and
// private-use AS numbers.
type fixtureNet struct {
	cidr       string
	probe      string // an address inside it
	asn        uint32
	asName     string
	cc         string
	country    string
	continent  string
	regionCode string
	region     string
	city       string
	lat, lon   float64
}

var fixture = []fixtureNet{
	{"192.0.2.0/24", "192.0.2.10", 64500, "Example Transit (test)", "DE", "Germany", "EU", "HE", "Hesse", "Frankfurt am Main", 50.1109, 8.6821},
	{"198.51.100.0/24", "198.51.100.200", 64501, "Sample Cable (test)", "US", "United States", "NA", "CA", "California", "Los Angeles", 34.0522, -118.2437},
	{"203.0.113.0/24", "203.0.113.7", 4200000001, "Doc Net (test)", "JP", "Japan", "AS", "13", "Tokyo", "Tokyo", 35.6895, 139.6917},
	{"2001:db8::/32", "2001:db8:5::1", 64502, "V6 Test (test)", "FR", "France", "EU", "IDF", "Île-de-France", "Paris", 48.8566, 2.3522},
}

// fixtureLayouts are the database types the tests write, with the layout
// that DetectLayout must find and the record each network gets.
var fixtureLayouts = []struct {
	dbType string
	layout Layout
	vendor string
	record func(n fixtureNet) mmdbtype.Map
	want   func(n fixtureNet) Result // the fields the layout carries
}{
	{"GeoLite2-ASN", LayoutASN, "MaxMind", asnRecord, wantASN},
	{"GeoLite2-Country", LayoutCountry, "MaxMind", countryRecord, wantCountry},
	{"GeoLite2-City", LayoutCity, "MaxMind", cityRecord, wantCity},
	{"DBIP-ASN-Lite (compat=GeoLite2-ASN)", LayoutASN, "DB-IP", asnRecord, wantASN},
	{"DBIP-Country-Lite", LayoutCountry, "DB-IP", dbipCountryRecord, wantCountry},
	{"DBIP-City-Lite", LayoutCity, "DB-IP", dbipCityRecord, wantCity},
	{"ipinfo ipinfo_lite.mmdb", LayoutIPinfo, "IPinfo", ipinfoFixture, wantIPinfo},
}

func wantASN(n fixtureNet) Result     { return Result{ASN: n.asn, ASName: n.asName} }
func wantCountry(n fixtureNet) Result { return Result{CountryCode: n.cc} }
func wantCity(n fixtureNet) Result {
	return Result{CountryCode: n.cc, Region: n.region, City: n.city, Latitude: n.lat, Longitude: n.lon}
}
func wantIPinfo(n fixtureNet) Result {
	return Result{ASN: n.asn, ASName: n.asName, CountryCode: n.cc}
}

func namesOf(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en), "de": mmdbtype.String(en + " (de)")}
}

func asnRecord(n fixtureNet) mmdbtype.Map {
	return mmdbtype.Map{
		"autonomous_system_number":       mmdbtype.Uint32(n.asn),
		"autonomous_system_organization": mmdbtype.String(n.asName),
	}
}

func countryRecord(n fixtureNet) mmdbtype.Map {
	country := mmdbtype.Map{"iso_code": mmdbtype.String(n.cc), "geoname_id": mmdbtype.Uint32(1000), "names": namesOf(n.country)}
	return mmdbtype.Map{
		"continent":          mmdbtype.Map{"code": mmdbtype.String(n.continent), "geoname_id": mmdbtype.Uint32(6255148), "names": namesOf(n.continent)},
		"country":            country,
		"registered_country": country,
	}
}

func cityRecord(n fixtureNet) mmdbtype.Map {
	m := countryRecord(n)
	m["city"] = mmdbtype.Map{"geoname_id": mmdbtype.Uint32(2000), "names": namesOf(n.city)}
	m["subdivisions"] = mmdbtype.Slice{
		mmdbtype.Map{"iso_code": mmdbtype.String(n.regionCode), "geoname_id": mmdbtype.Uint32(3000), "names": namesOf(n.region)},
		mmdbtype.Map{"iso_code": mmdbtype.String("XX"), "names": namesOf("second level")},
	}
	m["location"] = mmdbtype.Map{
		"accuracy_radius": mmdbtype.Uint16(20),
		"latitude":        mmdbtype.Float64(n.lat),
		"longitude":       mmdbtype.Float64(n.lon),
		"time_zone":       mmdbtype.String("Etc/UTC"),
	}
	m["postal"] = mmdbtype.Map{"code": mmdbtype.String("12345")}
	return m
}

// DB-IP's lite files have names but no geoname ids or subdivision codes.
func dbipCountryRecord(n fixtureNet) mmdbtype.Map {
	return mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String(n.continent), "names": namesOf(n.continent)},
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String(n.cc), "names": namesOf(n.country), "is_in_european_union": mmdbtype.Bool(n.continent == "EU")},
	}
}

func dbipCityRecord(n fixtureNet) mmdbtype.Map {
	m := dbipCountryRecord(n)
	m["city"] = mmdbtype.Map{"names": namesOf(n.city)}
	m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"names": namesOf(n.region)}}
	m["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(n.lat), "longitude": mmdbtype.Float64(n.lon)}
	return m
}

func ipinfoFixture(n fixtureNet) mmdbtype.Map {
	return mmdbtype.Map{
		"asn":            mmdbtype.String("AS" + strconv.FormatUint(uint64(n.asn), 10)),
		"as_name":        mmdbtype.String(n.asName),
		"as_domain":      mmdbtype.String("example.net"),
		"country_code":   mmdbtype.String(n.cc),
		"country":        mmdbtype.String(n.country),
		"continent_code": mmdbtype.String(n.continent),
		"continent":      mmdbtype.String(n.continent + " continent"),
	}
}

// writeDB writes a database of dbType with a record per network of nets to
// a new file in dir, and returns its path.
func writeDB(t testing.TB, dir, name, dbType string, nets []fixtureNet, record func(fixtureNet) mmdbtype.Map) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "takedown test fixture"},
		IncludeReservedNetworks: true,
		BuildEpoch:              time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix(),
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, ipn, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(ipn, record(n)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	// Write then rename, as an updater should, so that a watcher never
	// sees half a file.
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
	return path
}
