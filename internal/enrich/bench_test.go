package enrich

import (
	"net/netip"
	"testing"

	"github.com/takedown-project/takedown/internal/event"
)

// BenchmarkLookup measures an address lookup in a GeoLite2-City and a
// GeoLite2-ASN database, answered by the cache (cache=hit) or by the
// databases (cache=miss: the cache is off).
func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	dbs := []string{
		writeDB(b, dir, "asn.mmdb", "GeoLite2-ASN", fixture, asnRecord),
		writeDB(b, dir, "city.mmdb", "GeoLite2-City", fixture, cityRecord),
	}
	ip := netip.MustParseAddr("198.51.100.200")
	for _, bc := range []struct {
		name string
		size int
	}{{"cache=hit", 0}, {"cache=miss", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(Config{Databases: dbs, CacheSize: bc.size})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			ev := event.Event{SrcIP: ip}
			e.Enrich(&ev)
			if ev.City != "Los Angeles" || ev.ASN != 64501 {
				b.Fatalf("enriched %+v", ev)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Enrich(&ev)
			}
		})
	}
}
