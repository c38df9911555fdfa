package app

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/config"
)

// packageDefaults are the keys whose defaults the capability packages own,
// with the values serve has always run with.
var packageDefaults = map[string]any{
	"dns.ttl":                 uint32(300),
	"dns.rrl.ipv4_prefix":     24,
	"dns.rrl.ipv6_prefix":     56,
	"transfer.allow_from":     []string{"127.0.0.0/8", "::1/128"},
	"rpz.zone":                "rpz.takedown.local",
	"listen.max_conns":        100000,
	"listen.max_conns_per_ip": 256,
	"listen.head_bytes":       512,
	"listen.max_body_bytes":   int64(1 << 20),
	"listen.default_status":   200,
	"listen.defer_accept_s":   1,
	"pipeline.spool_max_mb":   4096,
	"pipeline.sync_ms":        200,
	"pipeline.spool_flush_ms": 10,
	"pipeline.flush_ms":       500,
	"pipeline.max_lag_s":      10,
	"enrich.cache_size":       65536,
	"dashboard.session_hours": 12,
	"dashboard.idle_minutes":  60,
	"dashboard.refresh_ms":    2000,
	"reports.feed_per_minute": 60,
	"reports.feed_burst":      10,
	"reports.days":            90,
	"mail.tls":                "required",
}

// TestEffective: config leaves the keys whose default a package owns at
// zero, Effective fills in exactly those, from the packages, with the
// values serve always had; every other key, and a value the file gives,
// stays as it is.
func TestEffective(t *testing.T) {
	raw := config.Default()
	eff := Effective(raw)
	changed := config.Changed(raw, eff)
	var want []string
	for k := range packageDefaults {
		want = append(want, k)
	}
	slices.Sort(want)
	slices.Sort(changed)
	if !slices.Equal(changed, want) {
		t.Errorf("Effective changed %v\nwant %v", changed, want)
	}
	for k, v := range packageDefaults {
		if got := key(t, raw, k); !reflect.ValueOf(got).IsZero() {
			t.Errorf("config fills %s with %v: its default is the package's", k, got)
		}
		if got := key(t, eff, k); !reflect.DeepEqual(got, v) {
			t.Errorf("%s: %#v, want %#v", k, got, v)
		}
	}
	if err := eff.Validate(); err != nil {
		t.Error(err)
	}
	if again := Effective(eff); !reflect.DeepEqual(again, eff) {
		t.Error("Effective of an effective config changes it")
	}
	given, err := config.Parse("t.yaml", []byte("dns: {ttl: 60}\nlisten: {max_conns: -1, defer_accept_s: -1}\nmail: {tls: none}\ntransfer: {allow_from: [192.0.2.0/24]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := Effective(given); c.DNS.TTL != 60 || c.Listen.MaxConns != -1 || c.Listen.DeferAcceptS != -1 || c.Mail.TLS != "none" ||
		!slices.Equal(c.Transfer.AllowFrom, []string{"192.0.2.0/24"}) {
		t.Errorf("values from the file changed: %+v %+v %+v %+v", c.DNS, c.Listen, c.Mail, c.Transfer)
	}
}

// key returns the value of a dotted YAML key of c.
func key(t *testing.T, c config.Config, dotted string) any {
	t.Helper()
	v := reflect.ValueOf(c)
next:
	for _, name := range strings.Split(dotted, ".") {
		for i := range v.NumField() {
			if tag := v.Type().Field(i).Tag.Get("yaml"); tag == name {
				v = v.Field(i)
				continue next
			}
		}
		t.Fatalf("no key %s", dotted)
	}
	return v.Interface()
}

// TestEffectiveClickHouse: with store.engine clickhouse, Effective fills
// in the engine's defaults (chstore's), and leaves the values given; with
// DuckDB it leaves the ClickHouse section alone.
func TestEffectiveClickHouse(t *testing.T) {
	raw, err := config.Parse("t.yaml", []byte("store: {engine: clickhouse, clickhouse: {addrs: [127.0.0.1:9000]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ch := Effective(raw).Store.ClickHouse
	if ch.Database != "takedown" || ch.DialTimeoutMS != 5000 {
		t.Errorf("defaults: %+v", ch)
	}
	if raw.Store.ClickHouse.Database != "" || raw.Store.ClickHouse.DialTimeoutMS != 0 {
		t.Errorf("config fills store.clickhouse: %+v", raw.Store.ClickHouse)
	}
	given, err := config.Parse("t.yaml", []byte("store: {engine: clickhouse, clickhouse: {addrs: [127.0.0.1:9000], database: td2, dial_timeout_ms: 250}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ch := Effective(given).Store.ClickHouse; ch.Database != "td2" || ch.DialTimeoutMS != 250 {
		t.Errorf("values from the file changed: %+v", ch)
	}
	if ch := Effective(config.Default()).Store.ClickHouse; !reflect.DeepEqual(ch, config.ClickHouse{}) {
		t.Errorf("duckdb: %+v", ch)
	}
}
