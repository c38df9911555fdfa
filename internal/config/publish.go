package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
)

// Feed configures the address of the subscribers' pull feed (/api/v1/…)
// when it is published apart from the admin API.
type Feed struct {
	// Listen is the host:port of a listener that serves only the feed,
	// the evidence log's checkpoints, /healthz and /readyz. Empty (the
	// default): the feed is served on api.listen only, as before. The
	// admin API is never reachable here.
	Listen string `yaml:"listen"`
	// TLS is this listener's certificate; empty: plain HTTP.
	TLS ListenerTLS `yaml:"tls"`
}

// ListenerTLS is the certificate of one HTTP listener: files, or ACME.
// The zero value is plain HTTP.
type ListenerTLS struct {
	// CertFile and KeyFile are PEM files: the certificate (with its
	// chain) and its private key. They are read again when either file
	// changes, so a renewed certificate is served without a restart.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ACME gets the certificate from an ACME CA (Let's Encrypt by
	// default) instead of files.
	ACME ACME `yaml:"acme"`
}

// ACME gets a listener's certificate from an ACME CA through the
// TLS-ALPN-01 challenge: the CA connects to the listener itself, which
// must therefore be reachable from the Internet on port 443.
type ACME struct {
	// Domains are the names the certificate is for; a handshake for any
	// other name is refused. Setting them turns ACME on.
	Domains []string `yaml:"domains"`
	// Email is the contact the CA writes to about the account (expiry,
	// incidents). Optional.
	Email string `yaml:"email"`
	// CacheDir keeps the account key and the certificates between runs.
	// Default <data_dir>/acme.
	CacheDir string `yaml:"cache_dir"`
	// DirectoryURL is the CA's ACME directory. Default Let's Encrypt's
	// production directory.
	DirectoryURL string `yaml:"directory_url"`
}

// On reports whether t asks for TLS at all.
func (t ListenerTLS) On() bool { return t.CertFile != "" || t.KeyFile != "" || len(t.ACME.Domains) > 0 }

// setListenerDefaults fills the ACME cache directories.
func (c *Config) setListenerDefaults() {
	for _, t := range []*ListenerTLS{&c.API.TLS, &c.Feed.TLS, &c.Dashboard.TLS} {
		if len(t.ACME.Domains) > 0 && t.ACME.CacheDir == "" {
			t.ACME.CacheDir = filepath.Join(c.DataDir, "acme")
		}
	}
}

// checkHTTPListeners checks the addresses and certificates of the HTTP
// listeners: api, feed and dashboard.
func (c *Config) checkHTTPListeners(bad func(key, format string, args ...any)) {
	addrs := map[string]string{c.API.Listen: "api.listen"}
	for _, l := range []struct {
		key, addr string
		on        bool
	}{{"feed.listen", c.Feed.Listen, c.Feed.Listen != ""}, {"dashboard.listen", c.Dashboard.Listen, c.Dashboard.Listen != ""}} {
		if !l.on {
			continue
		}
		if err := checkHostPort(l.addr); err != nil {
			bad(l.key, "%q: %v", l.addr, err)
			continue
		}
		if other, ok := addrs[l.addr]; ok {
			bad(l.key, "%q is the address of %s already: leave %s empty to serve it there", l.addr, other, l.key)
		}
		addrs[l.addr] = l.key
		if c.Role == RoleSensor || c.Role == RoleCollector {
			bad(l.key, "a %s has no feed or dashboard to serve: set it on the central", c.Role)
		}
	}
	if c.Dashboard.Disabled && c.Dashboard.Listen != "" {
		bad("dashboard.listen", "the dashboard is disabled (dashboard.disabled)")
	}
	checkListenerTLS(bad, "api.tls", c.API.TLS, "")
	checkListenerTLS(bad, "feed.tls", c.Feed.TLS, c.Feed.Listen)
	checkListenerTLS(bad, "dashboard.tls", c.Dashboard.TLS, c.Dashboard.Listen)
	if len(c.API.TLS.ACME.Domains) > 0 {
		bad("api.tls.acme", "the admin API takes certificate files only: ACME needs a listener the CA reaches from the Internet, which the admin API must not be")
	}
}

func checkListenerTLS(bad func(key, format string, args ...any), key string, t ListenerTLS, listen string) {
	a := t.ACME
	if len(a.Domains) == 0 && (a.Email != "" || a.DirectoryURL != "" || a.CacheDir != "") {
		bad(key+".acme", "domains is empty: name the certificate's domains to turn ACME on")
	}
	if !t.On() {
		return
	}
	if key != "api.tls" && listen == "" {
		bad(key, "%s is empty: TLS is for a listener of its own", key[:len(key)-len(".tls")]+".listen")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad(key, "cert_file and key_file go together")
	}
	if len(a.Domains) == 0 {
		return
	}
	if t.CertFile != "" {
		bad(key, "certificate files or acme, not both")
	}
	for i, d := range a.Domains {
		if !isDomain(d) || net.ParseIP(d) != nil {
			bad(fmt.Sprintf("%s.acme.domains[%d]", key, i), "%q is not a domain name", d)
		}
	}
	if a.DirectoryURL != "" {
		if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad(key+".acme.directory_url", "%q is not an https:// URL", a.DirectoryURL)
		}
	}
}
