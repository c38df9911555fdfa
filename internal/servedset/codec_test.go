package servedset

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sameSnapshot reports how a and b differ ("" when they do not).
func sameSnapshot(a, b *Snapshot) string {
	switch {
	case a.Serial() != b.Serial():
		return "serials differ"
	case !reflect.DeepEqual(a.Sinkhole(), b.Sinkhole()):
		return "sinkholes differ"
	case !slices.EqualFunc(a.Cases(), b.Cases(), func(x, y Case) bool { return x.Equal(&y) }):
		return "cases differ"
	case !maps.Equal(contents(a), contents(b)):
		return "zones differ"
	}
	return ""
}

func TestFullFormRoundTrip(t *testing.T) {
	s := mustApply(t, Empty(), testFull())
	s = mustApply(t, s, &Delta{From: 100, To: 101, Remove: []string{"notxt.test"}})
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFull(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameSnapshot(s, back); diff != "" {
		t.Fatalf("full form round trip: %s", diff)
	}
	// The full form is a delta from serial 0 too.
	d, err := UnmarshalDelta(buf.Bytes())
	if err != nil || d.From != 0 || d.To != 101 || len(d.Put) != 3 {
		t.Fatalf("full form as a delta: %+v, %v", d, err)
	}
	if _, err := ReadFull(mustMarshal(t, &Delta{From: 100, To: 101})); err == nil || !strings.Contains(err.Error(), "is a delta") {
		t.Errorf("a delta read as the full form: %v", err)
	}
}

func mustMarshal(t testing.TB, d *Delta) []byte {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeltaRoundTrip(t *testing.T) {
	s1 := mustApply(t, Empty(), testFull())
	d := &Delta{From: 100, To: 107, Sinkhole: &testSinkhole,
		Cases:  []Case{{Name: "new", Family: "dga", TXT: "new case"}},
		Remove: []string{"example.com", "notxt.test"},
		Put:    []Zone{{Name: "a.example", Case: "new"}, {Name: "b.example", Case: "other"}, {Name: "c.example", Case: "new"}},
	}
	back, err := UnmarshalDelta(mustMarshal(t, d))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Fatalf("delta round trip:\n%+v\n%+v", back, d)
	}
	want := mustApply(t, s1, d)
	if diff := sameSnapshot(mustApply(t, s1, back), want); diff != "" {
		t.Errorf("the decoded delta applies otherwise: %s", diff)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := mustMarshal(t, &Delta{From: 100, To: 101, Remove: []string{"example.com"}, Put: []Zone{{Name: "x.example", Case: "other"}}})
	fix := func(b []byte) []byte { // a valid CRC for a changed body
		var e encoder
		e.b = append(e.b, b[:len(b)-4]...)
		return e.finish()
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"magic", append([]byte("XXXX"), good[4:]...), "magic"},
		{"version", fix(append(append([]byte(nil), good[:4]...), append([]byte{9}, good[5:]...)...)), "format version 9"},
		{"crc", append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^1), "CRC-32C"},
		{"cut", good[:len(good)-3], "CRC-32C"},
		{"trailing", fix(append(append([]byte(nil), good[:len(good)-4]...), 0, 0, 0, 0, 0)), "bytes after the puts"},
		{"huge count", fix(append(append([]byte(nil), good[:14]...), 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0)), "do not fit"},
	} {
		_, err := UnmarshalDelta(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat with %q", tc.name, err, tc.want)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "served.set")
	s := mustApply(t, Empty(), bigFull(10_000))
	if err := WriteFile(path, s); err != nil {
		t.Fatal(err)
	}
	s2 := mustApply(t, s, &Delta{From: 1, To: 2, Remove: []string{"d0000000x.example"}})
	if err := WriteFile(path, s2); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameSnapshot(back, s2); diff != "" {
		t.Fatalf("file round trip: %s", diff)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files, want the one: %v", len(entries), entries)
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)/2], 0o600)
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a damaged file: %v", err)
	}
}

func TestSet(t *testing.T) {
	set := NewSet()
	var got []string
	cancel := set.Subscribe(func(u Update) {
		if set.Load() != u.New {
			t.Error("a subscriber ran before the new snapshot was visible")
		}
		got = append(got, "a")
	})
	set.Subscribe(func(u Update) {
		kind := "delta"
		if u.Delta == nil {
			kind = "replace"
		}
		got = append(got, "b:"+kind)
	})
	set.Replace(mustApply(t, Empty(), testFull()))
	if err := set.Apply(&Delta{From: 100, To: 101, Remove: []string{"example.com"}}); err != nil {
		t.Fatal(err)
	}
	if err := set.Apply(&Delta{From: 100, To: 102}); err == nil {
		t.Error("a delta that does not follow was applied")
	}
	cancel()
	if err := set.Apply(&Delta{From: 101, To: 102}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b:replace", "a", "b:delta", "b:delta"}; !reflect.DeepEqual(got, want) {
		t.Errorf("subscribers heard %v, want %v", got, want)
	}
	if z, c, _, ok := set.Zone("WWW.seized.test"); !ok || z != "seized.test" || c != "waledac-2010" {
		t.Errorf("Set.Zone: %s %s %v", z, c, ok)
	}
}
