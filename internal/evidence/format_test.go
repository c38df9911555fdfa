package evidence_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/registry"
)

// exampleEvent is the event of docs/evidence-formats.md's worked example.
func exampleEvent() event.Event {
	return event.Event{
		Time:     time.Date(2010, 2, 22, 15, 4, 5, 123456789, time.UTC),
		Sensor:   "ns1",
		Protocol: event.ProtoDNS, Transport: event.TransportUDP,
		SrcIP: netip.MustParseAddr("::ffff:198.51.100.7"), SrcPort: 40000,
		DstIP: netip.MustParseAddr("192.0.2.53"), DstPort: 53,
		Domain: "a.waledac.example", Zone: "waledac.example", Case: "waledac-2010", Family: "waledac",
		DNSQType: "A", DNSRcode: "NOERROR",
	}
}

// exampleLine is exampleEvent's canonical line: the IPv4-mapped source
// address is written as IPv4, as the stores give it back.
const exampleLine = `{"time.source":"2010-02-22T15:04:05.123456789Z","feed.name":"takedown-sinkhole","classification.taxonomy":"malicious-code","classification.type":"infected-system","malware.name":"waledac","classification.identifier":"waledac","protocol.application":"dns","protocol.transport":"udp","source.ip":"198.51.100.7","source.port":40000,"destination.ip":"192.0.2.53","destination.port":53,"destination.fqdn":"a.waledac.example","extra.sensor":"ns1","extra.zone":"waledac.example","extra.case":"waledac-2010","extra.dns_qtype":"A","extra.dns_rcode":"NOERROR"}`

func TestEventLineVector(t *testing.T) {
	e := exampleEvent()
	if got := string(evidence.EventLine(nil, &e)); got != exampleLine {
		t.Fatalf("event line\n%s\nwant\n%s", got, exampleLine)
	}
	if e.SrcIP.Is4() {
		t.Error("EventLine changed the event it was given")
	}
	want := sha256.Sum256([]byte(exampleLine))
	if got := evidence.EventHash(&e); got != want {
		t.Errorf("event hash %x, want %x", got, want)
	}
	// A prefix is kept.
	if got := string(evidence.EventLine([]byte("x"), &e)); got != "x"+exampleLine {
		t.Errorf("EventLine does not append: %.20q…", got)
	}
}

func TestBatchLeafVector(t *testing.T) {
	h := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	a, b, c := h("a"), h("b"), h("c")
	// sha256("a") = ca97…, ("b") = 3e23…, ("c") = 2e7d…: sorted c, b, a, a.
	want := "takedown-evidence/batch/v1\n" +
		"2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6\n" +
		"3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d\n" +
		"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb\n" +
		"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb\n"
	in := [][32]byte{a, b, a, c}
	got := string(evidence.BatchLeaf(in))
	if got != want {
		t.Fatalf("batch leaf\n%s\nwant\n%s", got, want)
	}
	if in[0] != a || in[3] != c {
		t.Error("BatchLeaf sorted its argument")
	}
	if other := string(evidence.BatchLeaf([][32]byte{c, a, a, b})); other != want {
		t.Error("the leaf depends on the order of the events")
	}
	l, err := evidence.ParseLeaf([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != evidence.KindBatch || len(l.Events) != 4 || l.Events[0] != c || l.Events[3] != a {
		t.Errorf("parsed %+v", l)
	}
	if !l.Contains(a) || !l.Contains(b) || !l.Contains(c) || l.Contains(h("d")) {
		t.Error("Contains is wrong")
	}
	// An empty batch's leaf is the header alone.
	if got := string(evidence.BatchLeaf(nil)); got != "takedown-evidence/batch/v1\n" {
		t.Errorf("empty batch leaf %q", got)
	}
}

func TestAuditLeafVector(t *testing.T) {
	e := registry.AuditEntry{
		Seq: 2, At: time.Date(2010, 2, 22, 15, 4, 5, 6000, time.FixedZone("X", 3600)),
		Actor: "alice", Action: "case.add", Object: "case:waledac-2010", Detail: `{"court":"E.D. Va."}`, Reason: "TRO",
	}
	prev := strings.Repeat("ab", 32)
	want := "takedown-evidence/audit/v1\n" +
		"64:" + prev + "\n" +
		"1:2\n" +
		"27:2010-02-22T14:04:05.000006Z\n" +
		"5:alice\n" +
		"8:case.add\n" +
		"17:case:waledac-2010\n" +
		"20:{\"court\":\"E.D. Va.\"}\n" +
		"3:TRO\n"
	got := evidence.AuditLeaf(prev, e)
	if string(got) != want {
		t.Fatalf("audit leaf\n%s\nwant\n%s", got, want)
	}
	sum := sha256.Sum256([]byte(want[len("takedown-evidence/audit/v1\n"):]))
	if hex.EncodeToString(sum[:]) != registry.EntryHash(prev, e) {
		t.Error("SHA-256 of the audit leaf after its header is not the entry's chain hash")
	}
	l, err := evidence.ParseLeaf(got)
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.AuditFields()
	if err != nil || l.Kind != evidence.KindAudit || f[1] != "2" || f[7] != "TRO" || l.AuditHash() != registry.EntryHash(prev, e) {
		t.Errorf("parsed %q %v %v", l.Kind, f, err)
	}
}

func TestParseLeafErrors(t *testing.T) {
	h := strings.Repeat("0", 64) + "\n"
	for _, tc := range []struct{ data, want string }{
		{"", "neither"},
		{"takedown-evidence/batch/v2\n", "neither"},
		{"takedown-evidence/batch/v1\n" + h[:64], "65-byte lines"},
		{"takedown-evidence/batch/v1\n" + strings.Repeat("A", 64) + "\n", "line 2"},
		{"takedown-evidence/batch/v1\n" + strings.Repeat("1", 64) + "\n" + h, "line 3: hash 0000"},
		{"takedown-evidence/audit/v1\n", "field prev"},
		{"takedown-evidence/audit/v1\n0:\n1:x\n0:\n0:\n0:\n0:\n0:\n0:\n", "field seq"},
		{"takedown-evidence/audit/v1\n0:\n1:1\n0:\n0:\n0:\n0:\n0:\n0:\nx", "after the last field"},
		{"takedown-evidence/audit/v1\n0:\n01:1\n0:\n0:\n0:\n0:\n0:\n0:\n", "length \"01\""},
		{"takedown-evidence/audit/v1\n0:\n5:1\n0:\n0:\n0:\n0:\n0:\n0:\n", "field seq: 5 bytes"},
	} {
		_, err := evidence.ParseLeaf([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseLeaf(%q) = %v, want an error with %q", tc.data, err, tc.want)
		}
	}
}
