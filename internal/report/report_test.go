package report

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/scope"
	"github.com/takedown-project/takedown/internal/store"
)

var countries = []string{"DE", "FR", "US", "BR", "IN", ""}

// randomAddr draws from a few small blocks so that prefixes catch hosts.
func randomAddr(r *rand.Rand) netip.Addr {
	if r.IntN(4) == 0 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[4], b[14], b[15] = byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(8)), byte(r.IntN(256))})
}

func randomRow(r *rand.Rand) eventstore.HostRow {
	first := fxDay.Add(time.Duration(r.IntN(86400)) * time.Second)
	row := eventstore.HostRow{
		IP: randomAddr(r), Family: []string{"waledac", "kelihos", eventstore.UnknownFamily}[r.IntN(3)],
		FirstSeen: first, LastSeen: first.Add(time.Duration(r.IntN(3600)) * time.Second),
		Events: int64(1 + r.IntN(100)), BotIDs: int64(r.IntN(3)),
		SrcPort: uint16(r.IntN(65536)), DstPort: 80, Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
		Domain: []string{"", "a.example", "b.example"}[r.IntN(3)], Case: "c1", Tag: []string{"", "v2"}[r.IntN(2)],
		ASN: uint32(r.IntN(40)), Country: countries[r.IntN(len(countries))],
		Latitude: float64(r.IntN(180_000_000)-90_000_000) / 1e6, Longitude: float64(r.IntN(360_000_000)-180_000_000) / 1e6,
		DstPorts: [][]uint16{{80}, {80, 443}, nil, {25}}[r.IntN(4)], OtherPorts: r.IntN(5) == 0,
	}
	if row.ASN != 0 {
		row.ASName = "AS-NAME"
	}
	return row
}

func randomScope(r *rand.Rand) scope.Scope {
	var s scope.Scope
	for range r.IntN(3) {
		s.ASNs = append(s.ASNs, uint32(1+r.IntN(45)))
	}
	for range r.IntN(3) {
		a := randomAddr(r)
		bits := 8 + r.IntN(25)
		if a.Is6() {
			bits = 32 + r.IntN(97)
		}
		p, _ := a.Prefix(bits)
		s.Prefixes = append(s.Prefixes, p)
	}
	if r.IntN(6) == 0 {
		s.Countries = append(s.Countries, countries[r.IntN(len(countries)-1)])
	}
	return s
}

// TestBuildIsolation: for random subscribers over random rows, every
// report holds exactly the rows in its subscriber's scope, in order —
// nothing of another network, nothing of its own left out.
func TestBuildIsolation(t *testing.T) {
	for seed := range uint64(5) {
		r := rand.New(rand.NewPCG(seed, 7))
		rows := make([]eventstore.HostRow, 3000)
		for i := range rows {
			rows[i] = randomRow(r)
		}
		subs := make([]Subscriber, 60)
		for i := range subs {
			subs[i] = Subscriber{Name: "s", Scope: randomScope(r)}
		}
		set, err := Build(t.Context(), rowSource(rows), subs, fxDay, fxDay.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if set.Hosts != len(rows) || set.Len() != len(subs) {
			t.Fatalf("hosts %d, reports %d", set.Hosts, set.Len())
		}
		kept := 0
		for _, row := range rows {
			for _, s := range subs {
				if s.Scope.Contains(row.IP, row.ASN, row.Country) {
					kept++
					break
				}
			}
		}
		if set.Kept != kept {
			t.Errorf("kept %d rows, %d are in some scope", set.Kept, kept)
		}
		for i, s := range subs {
			var want []eventstore.HostRow
			for _, row := range rows {
				if s.Scope.Contains(row.IP, row.ASN, row.Country) {
					want = append(want, row)
				}
			}
			var got []eventstore.HostRow
			for row := range set.Report(i).Rows() {
				if !s.Scope.Contains(row.IP, row.ASN, row.Country) {
					t.Fatalf("seed %d: report %d (%s) holds %s AS%d %s", seed, i, s.Scope, row.IP, row.ASN, row.Country)
				}
				c := *row
				c.DstPorts = slices.Clone(row.DstPorts)
				got = append(got, c)
			}
			if len(got) != len(want) {
				t.Fatalf("seed %d: report %d (%s) has %d rows, its scope %d", seed, i, s.Scope, len(got), len(want))
			}
			for j := range want {
				w := want[j]
				if len(w.DstPorts) == 0 {
					w.DstPorts = nil
				}
				if len(got[j].DstPorts) == 0 {
					got[j].DstPorts = nil
				}
				if !reflect.DeepEqual(got[j], w) {
					t.Fatalf("seed %d: report %d row %d:\n got %+v\nwant %+v", seed, i, j, got[j], w)
				}
			}
		}
	}
}

// TestBuildFromStore: Build on the DuckDB store gives the store's rows to
// the subscribers that see them, and the CSV of one matches its golden.
func TestBuildFromStore(t *testing.T) {
	db, err := dbfile.Open(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := store.Open(t.Context(), store.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var evs []event.Event
	for _, row := range fixtureRows() {
		// One event at first seen, one at last seen, as the row says.
		for i, at := range []time.Time{row.FirstSeen, row.LastSeen} {
			e := event.Event{Time: at, Protocol: row.Protocol, Transport: row.Transport, SrcIP: row.IP, SrcPort: row.SrcPort,
				DstIP: netip.MustParseAddr("192.0.2.53"), DstPort: row.DstPort, Domain: row.Domain, Zone: row.Domain, Case: row.Case,
				Family: row.Family, Tag: row.Tag, ASN: row.ASN, ASName: row.ASName, CountryCode: row.Country, Region: row.Region,
				City: row.City, Latitude: row.Latitude, Longitude: row.Longitude}
			if e.Family == eventstore.UnknownFamily {
				e.Family = ""
			}
			if i == 0 {
				if row.FirstSeen.Equal(row.LastSeen) {
					continue // one event: a tie on time would leave the last source port to chance
				}
				e.SrcPort++
			}
			evs = append(evs, e)
		}
	}
	if err := s.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	subs := []Subscriber{fixtureSubscriber(), {Name: "cert-fr", Scope: scope.Scope{Countries: []string{"FR"}}}, {Name: "nobody", Scope: scope.Scope{ASNs: []uint32{1}}}}
	set, err := Build(t.Context(), s, subs, fxDay, fxDay.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if set.Hosts != 7 || set.Kept != 6 {
		t.Errorf("hosts %d, kept %d; want 7, 6", set.Hosts, set.Kept)
	}
	if n := []int{set.Report(0).Len(), set.Report(1).Len(), set.Report(2).Len()}; !slices.Equal(n, []int{6, 1, 0}) {
		t.Errorf("report rows %v", n)
	}
	var b bytes.Buffer
	if err := (CSV{}).Write(&b, set.Report(0)); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "store.csv.golden", b.Bytes())
}

type failingSource struct{ err error }

func (f failingSource) HostRows(ctx context.Context, q eventstore.HostRowQuery, fn func(*eventstore.HostRow) error) error {
	row := fixtureRows()[0]
	for range 1 << 17 {
		if err := fn(&row); err != nil {
			return err
		}
	}
	return f.err
}

func TestBuildErrors(t *testing.T) {
	subs := []Subscriber{fixtureSubscriber()}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Build(ctx, failingSource{}, subs, fxDay, fxDay.AddDate(0, 0, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	boom := errors.New("boom")
	if _, err := Build(t.Context(), rowSource(nil), subs, fxDay, fxDay); err == nil {
		t.Error("empty period accepted")
	}
	if _, err := Build(t.Context(), failingSource{boom}, subs, fxDay, fxDay.AddDate(0, 0, 1)); !errors.Is(err, boom) {
		t.Errorf("source error: %v", err)
	}
	// A row outside the period cannot be held.
	row := fixtureRows()[0]
	row.FirstSeen = fxDay.Add(-time.Hour)
	if _, err := NewReport(subs[0], fxDay, fxDay.AddDate(0, 0, 1), []eventstore.HostRow{row}); err == nil {
		t.Error("row before the period accepted")
	}
}

func TestNormalTLP(t *testing.T) {
	for in, want := range map[string]string{"": "AMBER", "white": "CLEAR", "TLP:CLEAR": "CLEAR", "green": "GREEN",
		"amber+strict": "AMBER+STRICT", "RED": "RED", "purple": "AMBER"} {
		if got := normalTLP(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestNewWriter(t *testing.T) {
	for _, f := range Formats() {
		w, err := NewWriter(f, Options{})
		if err != nil || w.Format() != f || w.ContentType() == "" || w.Extension() == "" {
			t.Errorf("%s: %v %v", f, w, err)
		}
	}
	if _, err := NewWriter("pdf", Options{}); err == nil {
		t.Error("pdf accepted")
	}
}

// TestEmptyReport: every format writes a valid empty report.
func TestEmptyReport(t *testing.T) {
	r, err := NewReport(fixtureSubscriber(), fxDay, fxDay.AddDate(0, 0, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Formats() {
		b := write(t, f, r)
		switch f {
		case "csv":
			if string(b) != string(bytes.Join([][]byte{[]byte(joinCSV(CSVColumns())), nil}, []byte("\n"))) {
				t.Errorf("csv: %q", b)
			}
		case "json", "xarf":
			if len(b) != 0 {
				t.Errorf("%s: %q", f, b)
			}
		case "stix":
			validateSTIX(t, b)
		}
	}
}

func joinCSV(cols []string) string {
	var b bytes.Buffer
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c)
	}
	return b.String()
}

// TestClock: the fast time formatting agrees with the time package.
func TestClock(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	c := &clock{sep: "T", suffix: "+00:00"}
	for range 10_000 {
		at := time.Unix(r.Int64N(1<<33)-1<<32, 0) // 1833 to 2242
		if r.IntN(2) == 0 {
			at = fxDay.Add(time.Duration(r.IntN(3*86400)) * time.Second) // few days: the cached date
		}
		if got, want := string(c.append(nil, at)), at.UTC().Format(JSONTime); got != want {
			t.Fatalf("%d: %s, want %s", at.Unix(), got, want)
		}
	}
}
