package collect

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRefusalsAreLoggedOncePerKindAndSensor: a flood of one kind from one
// sensor is one line every 10 minutes, with the count held back; another
// kind or sensor has lines of its own; every refusal is counted.
func TestRefusalsAreLoggedOncePerKindAndSensor(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	c, err := New(Config{JS: nilJS{}, Store: nopStore{}, Sensors: []string{"s1", "s2"},
		Logger: slog.New(slog.NewTextHandler(&buf, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }
	for range 5 {
		c.reject(RejectBatch, "s1", "not a batch")
	}
	c.reject(RejectZone, "s1", "zone")
	c.reject(RejectBatch, "s2", "not a batch")
	for i := range 3000 { // unknown sensors share one line per kind
		c.reject(RejectUnknownSensor, "x"+strings.Repeat("y", i%100), "unknown")
	}
	if l := lines(); len(l) != 4 {
		t.Fatalf("%d lines:\n%s", len(l), buf.String())
	}
	now = now.Add(9 * time.Minute)
	c.reject(RejectBatch, "s1", "not a batch")
	if l := lines(); len(l) != 4 {
		t.Fatalf("logged again after 9 minutes:\n%s", buf.String())
	}
	now = now.Add(time.Minute)
	c.reject(RejectBatch, "s1", "not a batch")
	l := lines()
	if len(l) != 5 || !strings.Contains(l[4], "suppressed=5") || !strings.Contains(l[4], "kind=batch") || !strings.Contains(l[4], "sensor=s1") {
		t.Fatalf("after 10 minutes:\n%s", buf.String())
	}
	st := c.Stats()
	if st.Rejected[RejectBatch] != 8 || st.Rejected[RejectUnknownSensor] != 3000 || st.Rejected[RejectZone] != 1 {
		t.Errorf("counted %v", st.Rejected)
	}
	if s := c.Sensors(); s[0].Rejected != 8 || s[1].Rejected != 1 {
		t.Errorf("per sensor %+v", s)
	}
}
