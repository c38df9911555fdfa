package config

import (
	"strings"
	"testing"
)

// TestMetricsListen: metrics.listen is off unless set, must be host:port,
// and may not take the port of another listener.
func TestMetricsListen(t *testing.T) {
	c, err := Parse("t.yaml", []byte("metrics: {listen: '127.0.0.1:9480'}\n"))
	if err != nil || c.Metrics.Listen != "127.0.0.1:9480" {
		t.Fatalf("metrics.listen %q, %v", c.Metrics.Listen, err)
	}
	if c, err := Parse("t.yaml", []byte("data_dir: /x\n")); err != nil || c.Metrics.Listen != "" {
		t.Errorf("metrics.listen by default %q (%v), want empty: /metrics on the API", c.Metrics.Listen, err)
	}
	for doc, want := range map[string]string{
		"metrics: {listen: nowhere}":          `metrics.listen: "nowhere"`,
		"metrics: {listen: '127.0.0.1:8480'}": "metrics.listen: 127.0.0.1:8480 is on the TCP port of api.listen (127.0.0.1:8480)",
		"metrics: {listen: ':8080'}":          "listen.http[0]: 127.0.0.1:8080 is on the TCP port of metrics.listen (:8080)",
		"metrics: {lisen: ':9480'}":           `unknown key "lisen"`,
	} {
		if _, err := Parse("t.yaml", []byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", doc, err, want)
		}
	}
}
