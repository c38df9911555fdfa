package bus

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/takedown-project/takedown/internal/spool"
)

func sampleBatch() *Batch {
	return &Batch{Sensor: "s1", Spool: spool.ID{1, 2, 3}, Records: []Record{
		{End: spool.Pos{Segment: 1, Offset: 40}, Data: []byte("first record")},
		{End: spool.Pos{Segment: 1, Offset: 90}, Data: []byte("second")},
		{End: spool.Pos{Segment: 2, Offset: 12}, Data: []byte{}},
	}}
}

func TestBatchRoundTrip(t *testing.T) {
	b := sampleBatch()
	enc := b.AppendBinary([]byte("prefix"))[len("prefix"):]
	size := 0
	for _, r := range b.Records {
		size += r.EncodedLen()
	}
	if overhead := len(enc) - size; overhead != 4+1+1+2+16+1+4 {
		t.Errorf("overhead %d bytes", overhead)
	}
	got, err := DecodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Sensor != b.Sensor || got.Spool != b.Spool || len(got.Records) != len(b.Records) {
		t.Fatalf("got %+v", got)
	}
	for i, r := range got.Records {
		if r.End != b.Records[i].End || !bytes.Equal(r.Data, b.Records[i].Data) {
			t.Errorf("record %d: %+v, want %+v", i, r, b.Records[i])
		}
	}
	if id := b.MsgID(); id != "s1.01020300000000000000000000000000.1:40-2:12" {
		t.Errorf("MsgID %s", id)
	}
}

func TestDecodeBatchRefuses(t *testing.T) {
	good := sampleBatch().AppendBinary(nil)
	flip := bytes.Clone(good)
	flip[10] ^= 1
	badSensor := (&Batch{Sensor: "S.1", Records: nil}).AppendBinary(nil)
	backwards := sampleBatch()
	backwards.Records[1].End = spool.Pos{Segment: 1, Offset: 10}
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"short":     {good[:10], "too short"},
		"magic":     {append([]byte("XXXX"), good[4:]...), "magic"},
		"checksum":  {flip, "checksum"},
		"sensor":    {badSensor, "not a valid sensor id"},
		"backwards": {backwards.AppendBinary(nil), "does not follow"},
	} {
		_, err := DecodeBatch(tc.b)
		if err == nil || !errors.Is(err, ErrBatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one with %q", name, err, tc.want)
		}
	}
}

func TestValidSensorID(t *testing.T) {
	for _, s := range []string{"s1", "sensor-1", "a", "fra-01", strings.Repeat("a", 63)} {
		if !ValidSensorID(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "S1", "s.1", "s*", ">", "-s", "s-", "s 1", strings.Repeat("a", 64), "s_1"} {
		if ValidSensorID(s) {
			t.Errorf("%q accepted", s)
		}
	}
	if got := SensorOfSubject("takedown.events.s1"); got != "s1" {
		t.Errorf("SensorOfSubject: %q", got)
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	for name, tc := range map[string]struct {
		path string
		want string // "" ok
	}{
		"seed":           {write("seed", "# sensor s1\n"+string(seed)+"\n", 0o600), ""},
		"password":       {write("pw", "central:secret\n", 0o400), ""},
		"world":          {write("world", "central:secret\n", 0o644), "readable by others (mode 0644): chmod 600"},
		"group":          {write("group", "central:secret\n", 0o640), "readable by others"},
		"empty":          {write("empty", "\n# nothing\n", 0o600), "is empty"},
		"garbage":        {write("garbage", "hello\n", 0o600), "NKey user seed (SU...) or user:password"},
		"bad seed":       {write("badseed", "SUAAAA\n", 0o600), "not a valid NKey user seed"},
		"missing":        {filepath.Join(dir, "nope"), "no such file"},
		"empty password": {write("nopw", "central:\n", 0o600), "user:password"},
	} {
		err := CheckCredentials(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
}

func TestConnectRefusesConfig(t *testing.T) {
	if _, err := Connect(Config{User: "s1"}); err == nil || !strings.Contains(err.Error(), "no NATS servers") {
		t.Errorf("no servers: %v", err)
	}
	p := filepath.Join(t.TempDir(), "creds")
	os.WriteFile(p, []byte("u:p"), 0o644)
	if _, err := Connect(Config{Servers: []string{"nats://127.0.0.1:1"}, Credentials: p, User: "s1"}); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable credentials: %v", err)
	}
}

func TestHeartbeat(t *testing.T) {
	h := &Heartbeat{Sensor: "s2", Time: time.Unix(1700000000, 0).UTC(), BacklogBytes: 10, ServedSerial: 7}
	got, err := DecodeHeartbeat("takedown.sensors.s2", h.Marshal())
	if err != nil || got.Sensor != "s2" || got.ServedSerial != 7 || !got.Time.Equal(h.Time) {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := DecodeHeartbeat("takedown.sensors.s1", h.Marshal()); err == nil {
		t.Error("a heartbeat naming another sensor than its subject was accepted")
	}
	if _, err := DecodeHeartbeat("takedown.sensors.s2", bytes.Repeat([]byte(" "), MaxHeartbeatBytes+1)); err == nil {
		t.Error("an oversized heartbeat was accepted")
	}
}
