package cli

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"Day": "day", "FirstSeen": "first_seen", "ASName": "as_name", "ASN": "asn", "IPs": "ips",
		"HostID": "host_id", "HostIDs": "host_ids", "SHA256": "sha256", "URLs": "urls",
		"HTTPHost": "http_host", "Sum2Hour": "sum2_hour", "ASNs": "asns", "TLP": "tlp",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

type inner struct {
	Tagged string `json:"tagged_name"`
	Left   int    `json:"-"`
}

type sample struct {
	inner
	Day     time.Time
	At      time.Time `json:"at"`
	When    *time.Time
	ASName  string
	Empty   string
	Kept    string `json:"kept"`
	Omitted string `json:"omitted,omitempty"`
	IPs     int64
	Zero    int
	NoASN   uint32     `json:"no_asn,omitzero"`
	NoAddr  netip.Addr `json:"no_addr,omitzero"`
	Addr    netip.Addr
	Names   []string
	Counts  map[string]int
	Raw     []byte
	hidden  int
}

func TestWriteJSONRules(t *testing.T) {
	var b bytes.Buffer
	s := sample{inner: inner{Tagged: "x", Left: 1}, ASName: "AS-EXAMPLE", IPs: 7,
		Addr: netip.MustParseAddr("192.0.2.1"), Counts: map[string]int{"Conficker": 2, "B": 1}, Raw: []byte("hi"), hidden: 3}
	if err := writeJSON(&b, []sample{s}); err != nil {
		t.Fatal(err)
	}
	want := `[
  {
    "tagged_name": "x",
    "as_name": "AS-EXAMPLE",
    "kept": "",
    "ips": 7,
    "zero": 0,
    "addr": "192.0.2.1",
    "counts": {
      "B": 1,
      "Conficker": 2
    },
    "raw": "aGk="
  }
]
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeJSON(&b, []sample(nil)); err != nil || b.String() != "[]\n" {
		t.Errorf("nil slice: %q, %v", b.String(), err)
	}
}
