package cli_test

import (
	"bytes"
	"context"
	"image/png"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
)

// storeEvents writes a few callbacks of 2026-11-26 into the store of cfg:
// waledac from 3 addresses in Germany, 2 in Brazil (one calling twice),
// 1 in Singapore and 1 of unknown country; conficker from 1 in Germany; a
// scanner in Germany (no family, no case); and one waledac callback of the
// day before.
func storeEvents(t *testing.T, cfgPath string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var batch []event.Event
	add := func(at time.Time, ip, family, country string) {
		batch = append(batch, event.Event{
			Time: at, Sensor: "test-1", Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP: netip.MustParseAddr(ip), SrcPort: 5353, Domain: "bad.example.com", Family: family,
			DNSQType: "A", DNSRcode: "NOERROR", CountryCode: country,
		})
	}
	for i, c := range []struct{ ip, family, country string }{
		{"198.51.100.1", "waledac", "DE"}, {"198.51.100.2", "waledac", "DE"}, {"198.51.100.3", "waledac", "DE"},
		{"203.0.113.1", "waledac", "BR"}, {"203.0.113.2", "waledac", "BR"}, {"203.0.113.2", "waledac", "BR"},
		{"192.0.2.1", "waledac", "SG"}, {"192.0.2.2", "waledac", ""},
		{"198.51.100.9", "conficker", "DE"},
		{"198.51.100.50", "", "DE"}, // a scanner: no family, no case
	} {
		add(day.Add(time.Duration(i+1)*time.Hour), c.ip, c.family, c.country)
	}
	add(day.Add(-time.Hour), "198.51.100.77", "waledac", "FR")
	if err := l.Store.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMap(t *testing.T) {
	cfg, _, addr := setup(t)
	storeEvents(t, cfg)
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	read := func(name string) string {
		b, err := os.ReadFile(out(name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// SVG of one family: the day's hosts by country, nothing of the day
	// before, nothing of the other family.
	stdout := mustRun(t, cfg, "--mode", "local", "map", "--date", "2026-11-26", "--family", "waledac", "--out", out("waledac.svg"))
	if !regexp.MustCompile(`waledac\.svg: 1600×900, 6 unique hosts in 3 countries and 1 in no known country \(waledac, 2026-11-26\), in [0-9.]+(µs|ms|s)\n$`).MatchString(stdout) {
		t.Errorf("stdout: %q", stdout)
	}
	svg := read("waledac.svg")
	for _, want := range []string{
		`<title id="map-title">Unique infected hosts per country — waledac — 2026-11-26</title>`,
		`data-cc="DE" data-hosts="3"`, `data-cc="BR" data-hosts="2"`, `data-cc="SG" data-hosts="1"`,
		`data-cc="FR" data-hosts="0"`, `<title>Germany: 3 hosts</title>`, `<circle class="dot`,
		`>6 unique hosts in 3 countries, and 1 host in no known country</text>`,
		`>Source: takedown sinkhole, test-1/Test CERT · Map: Natural Earth (public domain), Equal Earth projection</text>`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("waledac.svg lacks %s", want)
		}
	}
	if n := strings.Count(svg, `<path id="country-`); n < 175 {
		t.Errorf("%d country paths", n)
	}
	if strings.Contains(svg, "FICTIONAL") {
		t.Error("a map of real data says it is fictional")
	}

	// All families: the infected hosts, as the dashboard counts them; the
	// scanner is left out (and counted by stats hosts --all only).
	mustRun(t, cfg, "--mode", "local", "map", "--date", "2026-11-26", "--out", out("all.svg"))
	if svg := read("all.svg"); !strings.Contains(svg, `data-cc="DE" data-hosts="4"`) {
		t.Errorf("all.svg: Germany is not 4 hosts (3 waledac, 1 conficker, no scanner)")
	}
	for flags, want := range map[string]string{"": `"ips": 8`, "--all": `"ips": 9`} {
		args := []string{"--mode", "local", "stats", "hosts", "--from", "2026-11-26", "--to", "2026-11-27", "--json"}
		if flags != "" {
			args = append(args, flags)
		}
		if js := mustRun(t, cfg, args...); !strings.Contains(js, want) {
			t.Errorf("stats hosts %s: want %s in %s", flags, want, js)
		}
	}

	// PNG of all families, another size.
	mustRun(t, cfg, "--mode", "local", "map", "--date", "2026-11-26", "--out", out("all.PNG"), "--width", "1200", "--height", "700")
	img, err := png.Decode(strings.NewReader(read("all.PNG")))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 700 {
		t.Errorf("PNG of %v", b)
	}

	// A family nobody saw: an empty map that says so, and a warning.
	r := run(t, cfg, "--mode", "local", "map", "--date", "2026-11-26", "--family", "walledac", "--out", out("none.svg"))
	if r.code != 0 || !strings.Contains(r.stderr, `warning: no hosts of walledac on 2026-11-26: the map is empty (is the family's name spelt`) {
		t.Errorf("unknown family: exit %d, stderr %q", r.code, r.stderr)
	}
	if svg := read("none.svg"); !strings.Contains(svg, `No infected host of family &#34;walledac&#34; was seen on 2026-11-26.`) ||
		!strings.Contains(svg, ">No hosts counted</text>") || strings.Contains(svg, `class="country c`) {
		t.Error("the empty map does not say it is empty, or colours a country")
	}

	// Bad input: errors that name the flag, and no file.
	for _, tc := range []struct {
		args []string
		want string
		code int // 2: a usage error
	}{
		{[]string{"--date", "2026-11-26", "--out", out("map.jpg")}, "--out " + out("map.jpg") + ": the name must end in .svg or .png", 2},
		{[]string{"--date", "2026-11-26"}, "--out: give the file", 2},
		{[]string{"--date", "26.11.2026", "--out", out("x.svg")}, `--date: "26.11.2026" is not a day (YYYY-MM-DD)`, 2},
		{[]string{"--date", "2026-11-26", "--out", out("x.svg"), "--width", "10"}, "size 10×900", 1},
		{[]string{"--date", "2026-11-26", "--out", out("x.svg"), "--classes", "9"}, "9 classes: want 5 to 7", 1},
		{[]string{"--date", "2026-11-26", "--out", filepath.Join(dir, "no", "such", "dir.svg")}, "no such file or directory", 1},
	} {
		r := run(t, cfg, append([]string{"--mode", "local", "map"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d (want %d), stderr %q, want %q", tc.args, r.code, tc.code, r.stderr, tc.want)
		}
	}
	if _, err := os.Stat(out("x.svg")); err == nil {
		t.Error("a failed run left a file")
	}

	// Through a running server's API: the same map, byte for byte.
	startServer(t, cfg, addr)
	mustRun(t, cfg, "--mode", "remote", "map", "--date", "2026-11-26", "--family", "waledac", "--out", out("remote.svg"))
	if remote := read("remote.svg"); remote != read("waledac.svg") {
		t.Error("the map through the API differs from the map of the database file")
	}
}

// TestMapDemoNote checks that a map of the demo world says that its data
// is fictional.
func TestMapDemoNote(t *testing.T) {
	cfg, dataDir, _ := setup(t)
	storeEvents(t, cfg)
	if err := os.WriteFile(filepath.Join(dataDir, "takedown-demo-world.mmdb"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.svg")
	mustRun(t, cfg, "--mode", "local", "map", "--date", "2026-11-26", "--out", path, "--subtitle", "Exhibit 12")
	svg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`>FICTIONAL demo data: simulated bots placed in countries by takedown&#39;s demo world · Exhibit 12</text>`,
		`>Source: takedown demo sinkhole · Map:`,
	} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("demo map lacks %s", want)
		}
	}
}
