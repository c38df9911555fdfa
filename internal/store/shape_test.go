package store_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/store"
)

// TestColumnsAreTheTable: the appenders name the table's columns in its
// order, and leave unset only those whose default is what the store means
// by an unset value.
func TestColumnsAreTheTable(t *testing.T) {
	db := openDB(t, "")
	defer db.Close()
	openStore(t, db).Close()
	rows, err := db.Query(`SELECT column_name, column_default, data_type FROM information_schema.columns
		WHERE table_name = 'events' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for i := 0; rows.Next(); i++ {
		var name, typ string
		var def *string
		if err := rows.Scan(&name, &def, &typ); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		want, has := store.ColumnDefaults[i]
		switch {
		case def != nil && !has:
			t.Errorf("column %s has default %s, which the store does not know", name, *def)
		case has && def == nil:
			t.Errorf("column %s has no default; the store's is %v", name, want)
		case has:
			var v any
			if err := db.QueryRow("SELECT CAST(" + *def + " AS " + typ + ")").Scan(&v); err != nil || v != want {
				t.Errorf("column %s: default %s is %#v (%v), the store's %#v", name, *def, v, err, want)
			}
		}
	}
	if !reflect.DeepEqual(names, store.ColumnNames) {
		t.Errorf("table columns\n%v\nstore's\n%v", names, store.ColumnNames)
	}
}

// TestShapes appends events that fill many different sets of columns, more
// than the store keeps appenders for, and reads every one back as it was:
// what an event leaves unset is NULL, or the column's default.
func TestShapes(t *testing.T) {
	db := openDB(t, "")
	defer db.Close()
	s := openStore(t, db)
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2010, 2, 25, 0, 0, 0, 0, time.UTC)
	var want []event.Event
	shapes := map[[20]bool]bool{}
	for i := range 600 {
		var set [20]bool
		for k := range set {
			set[k] = r.IntN(3) == 0
		}
		shapes[set] = true
		e := event.Event{
			Time: t0.Add(time.Duration(i) * time.Millisecond), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), SrcPort: uint16(i), DstPort: 80,
		}
		v := fmt.Sprint("v", i)
		for k, on := range set {
			if !on {
				continue
			}
			switch k {
			case 0:
				e.Sensor = v
			case 1:
				e.Domain = v
			case 2:
				e.Family = v
			case 3:
				e.BotID = v
			case 4:
				e.HTTPMethod = "POST"
			case 5:
				e.HTTPPath = "/" + v
			case 6:
				e.HTTPUserAgent = v
			case 7:
				e.TLSVersion = "1.3"
			case 8:
				e.DNSQType = "A"
			case 9:
				e.PayloadSHA256 = v
			case 10:
				e.PayloadHead = []byte(v)
			case 11:
				e.CountryCode = "DE"
			case 12:
				e.DNSDO = true
			case 13:
				e.Malformed = true
			case 14:
				e.SMTPRcptCount = uint32(i + 1)
			case 15:
				e.SMTPHelo = v
			case 16:
				e.Error = v
			case 17:
				e.SrcIP = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i))
			case 18:
				e.DstIP = netip.MustParseAddr("192.0.2.53")
			case 19:
				e.ASN, e.ASName = uint32(64496+i), v
			}
		}
		want = append(want, e)
	}
	if len(shapes) <= store.MaxShapes {
		t.Fatalf("only %d shapes: the test must exceed the store's %d", len(shapes), store.MaxShapes)
	}
	// Two batches: the second reuses the appenders of the first.
	if err := s.Append(t.Context(), want[:300]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(t.Context(), want[300:]); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("%d events back, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	var nulls int
	if err := db.QueryRow(`SELECT count(*) FROM events WHERE dns_do IS NULL OR malformed IS NULL OR smtp_rcpt_count IS NULL`).Scan(&nulls); err != nil || nulls != 0 {
		t.Errorf("%d rows with NULL where the default belongs (%v)", nulls, err)
	}
}
