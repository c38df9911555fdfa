package natsrun

import (
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// matches reports whether the NATS subject pattern (with * and >)
// matches subject.
func matches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

func allowed(list []string, subject string) bool {
	for _, p := range list {
		if matches(p, subject) {
			return true
		}
	}
	return false
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"a.>", "a.b", true}, {"a.>", "a", false}, {"a.*", "a.b.c", false}, {"a.*.c", "a.b.c", true},
		{"_INBOX_s1.>", "_INBOX_s10.x", false}, {"a.b", "a.b", true}, {"a.b", "a.b.c", false},
	} {
		if got := matches(c.p, c.s); got != c.want {
			t.Errorf("matches(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// What a sensor may and may not do, subject by subject.
func TestSensorPermissions(t *testing.T) {
	p, err := PermissionsOf("s1")
	if err != nil {
		t.Fatal(err)
	}
	pubOK := []string{
		"takedown.events.s1", "takedown.sensors.s1", "$JS.API.INFO",
		"$JS.API.STREAM.INFO.TAKEDOWN_SERVED",
		"$JS.API.CONSUMER.CREATE.TAKEDOWN_SERVED",
		"$JS.API.CONSUMER.CREATE.TAKEDOWN_SERVED.abc.takedown.served.delta",
		"$JS.API.CONSUMER.MSG.NEXT.TAKEDOWN_SERVED.abc",
		"$JS.API.CONSUMER.DELETE.TAKEDOWN_SERVED.abc",
		"$JS.API.CONSUMER.INFO.TAKEDOWN_SERVED.abc",
		"$JS.API.DIRECT.GET.OBJ_takedown_served.$O.takedown_served.M.ZnVsbA==",
		"$JS.API.STREAM.MSG.GET.OBJ_takedown_served",
		"$JS.API.CONSUMER.CREATE.OBJ_takedown_served",
		"$JS.FC.OBJ_takedown_served.abc.x",
		// What servedsync's Follower publishes, as its test listed them
		// through a sniffer (internal/servedsync/doc.go).
		"$JS.API.STREAM.INFO.OBJ_takedown_served",
		"$JS.API.CONSUMER.CREATE.OBJ_takedown_served.abc.$O.takedown_served.C.nuid",
		"$JS.API.CONSUMER.CREATE.OBJ_takedown_served.abc.$O.takedown_served.M.>",
		"$JS.API.CONSUMER.MSG.NEXT.OBJ_takedown_served.abc",
		"$JS.API.CONSUMER.DELETE.OBJ_takedown_served.abc",
	}
	pubNo := []string{
		"takedown.events.s2", "takedown.sensors.s2", "takedown.events.s1.x", "takedown.events.*",
		"takedown.served.delta",
		"$JS.API.STREAM.INFO.TAKEDOWN_EVENTS",
		"$JS.API.STREAM.MSG.GET.TAKEDOWN_EVENTS",
		"$JS.API.DIRECT.GET.TAKEDOWN_EVENTS",
		"$JS.API.CONSUMER.CREATE.TAKEDOWN_EVENTS",
		"$JS.API.CONSUMER.CREATE.TAKEDOWN_EVENTS.x.takedown.events.s2",
		"$JS.API.CONSUMER.DURABLE.CREATE.TAKEDOWN_SERVED.x",
		"$JS.API.CONSUMER.MSG.NEXT.TAKEDOWN_EVENTS.central",
		"$JS.API.STREAM.CREATE.X", "$JS.API.STREAM.UPDATE.TAKEDOWN_SERVED",
		"$JS.API.STREAM.DELETE.TAKEDOWN_SERVED", "$JS.API.STREAM.PURGE.TAKEDOWN_EVENTS",
		"$JS.API.STREAM.MSG.DELETE.TAKEDOWN_SERVED", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
		"$JS.API.CONSUMER.LIST.TAKEDOWN_EVENTS",
		"$JS.ACK.TAKEDOWN_EVENTS.central.1.1.1.1.1", "$JS.FC.TAKEDOWN_EVENTS.central.x",
		"$O.takedown_served.C.x", "$O.takedown_served.M.x", "$KV.x.y",
		"_INBOX_central.x", "$SYS.REQ.SERVER.PING",
	}
	for _, s := range pubOK {
		if !allowed(p.Publish, s) {
			t.Errorf("s1 may not publish to %s", s)
		}
	}
	for _, s := range pubNo {
		if allowed(p.Publish, s) {
			t.Errorf("s1 may publish to %s", s)
		}
	}
	if !allowed(p.Subscribe, "_INBOX_s1.abc.def") {
		t.Error("s1 may not subscribe to its inbox")
	}
	for _, s := range []string{"_INBOX_s10.x", "_INBOX_s2.x", "_INBOX_central.x", "_INBOX.x", "takedown.events.s1", "takedown.served.delta", "$JS.FC.TAKEDOWN_SERVED.x.y"} {
		if allowed(p.Subscribe, s) {
			t.Errorf("s1 may subscribe to %s", s)
		}
	}
}

func TestCentralPermissions(t *testing.T) {
	p, err := PermissionsOf("central")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"takedown.served.delta", "$JS.API.STREAM.CREATE.TAKEDOWN_EVENTS", "$JS.API.CONSUMER.MSG.NEXT.TAKEDOWN_EVENTS.central", "$JS.ACK.TAKEDOWN_EVENTS.central.1.2.3.4.5", "$O.takedown_served.C.abc"} {
		if !allowed(p.Publish, s) {
			t.Errorf("central may not publish to %s", s)
		}
	}
	for _, s := range []string{"takedown.sensors.s1", "_INBOX_central.x.y"} {
		if !allowed(p.Subscribe, s) {
			t.Errorf("central may not subscribe to %s", s)
		}
	}
	for _, s := range []string{"$JS.API.STREAM.INFO.X", "_INBOX_s1.x", "$SYS.REQ.SERVER.PING"} {
		if allowed(p.Subscribe, s) {
			t.Errorf("central may subscribe to %s", s)
		}
	}
}

func TestPermissionsOfRefusesOtherNames(t *testing.T) {
	for _, u := range []string{"", "S1", "s1.x", "s*", ">", "-s", "s_1"} {
		if _, err := PermissionsOf(u); err == nil {
			t.Errorf("PermissionsOf(%q) did not fail", u)
		}
	}
}

func TestRenderAccounts(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	users := []User{
		{Name: "central", Password: "$2a$04$abcdefghijklmnopqrstuv"},
		{Name: "s1", NKey: pub},
		{Name: "s2", NKey: "$TAKEDOWN_NKEY_S2"},
	}
	sys := &User{Name: "sys", Password: "pw"}
	out, err := RenderAccounts(users, sys)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`user: "central", password: "$2a$04$abcdefghijklmnopqrstuv"`, // bcrypt: quoted, not a variable
		`nkey: "` + pub + `"`,
		"nkey: $TAKEDOWN_NKEY_S2\n", // a variable: bare
		`"takedown.events.s2"`,
		`"_INBOX_s1.>"`,
		"jetstream: enabled",
		`{ user: "sys", password: "pw" }`,
		"system_account: SYS\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	again, _ := RenderAccounts(users, sys)
	if again != out {
		t.Error("two renderings differ")
	}

	for name, users := range map[string][]User{
		"none":       nil,
		"twice":      {{Name: "s1", NKey: pub}, {Name: "s1", NKey: pub}},
		"both":       {{Name: "s1", NKey: pub, Password: "x"}},
		"neither":    {{Name: "s1"}},
		"bad nkey":   {{Name: "s1", NKey: "UNOTAKEY"}},
		"seed":       {{Name: "s1", NKey: "SUAAAA"}},
		"bad name":   {{Name: "S1", NKey: pub}},
		"bad var":    {{Name: "s1", NKey: "$1X"}},
		"space name": {{Name: "s 1", Password: "x"}},
	} {
		if _, err := RenderAccounts(users, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestVariableName(t *testing.T) {
	if got := VariableName("nkey", "sensor-1"); got != "TAKEDOWN_NKEY_SENSOR_1" {
		t.Errorf("got %s", got)
	}
	if !configVariable.MatchString("$" + VariableName("password", "a-b-c")) {
		t.Error("not a variable")
	}
}
