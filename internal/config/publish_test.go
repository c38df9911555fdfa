package config

import (
	"path/filepath"
	"testing"
)

// TestHTTPListenerErrors: each mistake in the feed, dashboard and API
// listeners and their TLS is named by its key.
func TestHTTPListenerErrors(t *testing.T) {
	checkParseErrors(t, []parseErrorCase{
		{"bad feed address", "feed: {listen: nowhere}\n", []string{`feed.listen: "nowhere"`}},
		{"same address", "api: {listen: 127.0.0.1:9000}\nfeed: {listen: 127.0.0.1:9000}\ndashboard: {listen: 127.0.0.1:9000}\n",
			[]string{"feed.listen", "address of api.listen", "dashboard.listen", "address of feed.listen"}},
		{"sensor", "role: sensor\nnats: {servers: [nats://127.0.0.1:4222]}\nfeed: {listen: 127.0.0.1:9000}\n", []string{"feed.listen: a sensor has no feed"}},
		{"disabled dashboard", "dashboard: {disabled: true, listen: 127.0.0.1:9001}\n", []string{"dashboard.listen: the dashboard is disabled"}},
		{"tls without listener", "feed: {tls: {cert_file: c, key_file: k}}\n", []string{"feed.tls: feed.listen is empty"}},
		{"half a pair", "feed: {listen: 127.0.0.1:9000, tls: {cert_file: c}}\n", []string{"feed.tls: cert_file and key_file go together"}},
		{"files and acme", "dashboard: {listen: 127.0.0.1:9000, tls: {cert_file: c, key_file: k, acme: {domains: [dash.example.org]}}}\n", []string{"dashboard.tls: certificate files or acme, not both"}},
		{"acme bad domain", "feed: {listen: 0.0.0.0:443, tls: {acme: {domains: [feed.example.org, 192.0.2.1, 'a b']}}}\n",
			[]string{`feed.tls.acme.domains[1]: "192.0.2.1"`, `feed.tls.acme.domains[2]: "a b"`}},
		{"acme bad directory", "feed: {listen: 0.0.0.0:443, tls: {acme: {domains: [feed.example.org], directory_url: 'http://ca.example/dir'}}}\n", []string{"feed.tls.acme.directory_url", "https://"}},
		{"acme without domains", "feed: {listen: 0.0.0.0:443, tls: {acme: {email: a@example.org}}}\n", []string{"feed.tls.acme: domains is empty"}},
		{"acme on the admin api", "api: {tls: {acme: {domains: [api.example.org]}}}\n", []string{"api.tls.acme: the admin API takes certificate files only"}},
	})
}

// TestHTTPListenerDefaults: nothing is published apart by default; ACME's
// cache lives in the data directory.
func TestHTTPListenerDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte("data_dir: /d\nfeed: {listen: '[::]:443', tls: {acme: {domains: [feed.example.org]}}}\ndashboard: {listen: 127.0.0.1:8443, tls: {cert_file: c, key_file: k}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Feed.TLS.ACME.CacheDir; got != filepath.Join("/d", "acme") {
		t.Errorf("feed.tls.acme.cache_dir %q", got)
	}
	if !c.Feed.TLS.On() || !c.Dashboard.TLS.On() || c.API.TLS.On() {
		t.Errorf("TLS on: feed %v dashboard %v api %v", c.Feed.TLS.On(), c.Dashboard.TLS.On(), c.API.TLS.On())
	}
	d, err := Parse("t.yaml", []byte("data_dir: /d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Feed.Listen != "" || d.Dashboard.Listen != "" || d.API.TLS.On() {
		t.Errorf("defaults publish something apart: %+v %+v", d.Feed, d.Dashboard)
	}
}
