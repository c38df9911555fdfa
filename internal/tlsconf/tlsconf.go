// Package tlsconf makes the TLS configuration of takedown's own HTTP
// listeners (the admin API, the subscribers' feed, the dashboard): a
// certificate from files that is read again when the files change, or one
// from an ACME CA through golang.org/x/crypto/acme/autocert. Both accept
// TLS 1.2 and 1.3 only.
//
// Files are checked at each handshake: a stat of each (a few microseconds,
// against a handshake's hundreds) tells whether the modification time or
// the size changed, and only then are they parsed again. A renewal that
// writes the certificate and the key one after the other can be caught
// half-way: a pair that does not load (the new certificate with the old
// key) is logged and the previous certificate stays in use until the
// files load together. No restart, no signal, no watcher goroutine.
//
// ACME uses the TLS-ALPN-01 challenge only: the CA connects to the
// listener itself, on port 443 of each domain, and no second listener on
// port 80 is needed. The account key and the certificates are kept in
// ACME.CacheDir; a certificate found there is served without asking the
// CA, and renewed 30 days before it expires.
package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// MinVersion is the oldest TLS version the listeners accept.
const MinVersion = tls.VersionTLS12

// Config says where a listener's certificate comes from: CertFile and
// KeyFile, or ACME. The zero value is no TLS (New returns nil).
type Config struct {
	// CertFile is the PEM certificate, with its chain after it; KeyFile
	// its PEM private key.
	CertFile, KeyFile string
	// ACME, when its Domains are set, gets the certificate from an ACME
	// CA instead.
	ACME ACME
	// Logger receives a line when the files are read again or fail to
	// load; nil discards.
	Logger *slog.Logger
}

// ACME configures autocert.
type ACME struct {
	// Domains are the only names a certificate is asked for; a handshake
	// for another name fails.
	Domains []string
	// Email is the account's contact; optional.
	Email string
	// CacheDir keeps the account key and the certificates; required.
	CacheDir string
	// DirectoryURL is the CA's directory; empty means Let's Encrypt.
	DirectoryURL string
}

// New returns the TLS configuration of cfg, or nil when cfg asks for
// none. Files are loaded once here, so that a missing or broken one stops
// the start with an error that names it.
func New(cfg Config) (*tls.Config, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(cfg.ACME.Domains) > 0:
		if cfg.CertFile != "" || cfg.KeyFile != "" {
			return nil, errors.New("certificate files or ACME, not both")
		}
		return acmeConfig(cfg.ACME)
	case cfg.CertFile == "" && cfg.KeyFile == "":
		return nil, nil
	case cfg.CertFile == "" || cfg.KeyFile == "":
		return nil, errors.New("a certificate file and a key file go together")
	}
	f := &files{cert: cfg.CertFile, key: cfg.KeyFile, log: log}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: MinVersion, GetCertificate: f.get}, nil
}

func acmeConfig(a ACME) (*tls.Config, error) {
	if a.CacheDir == "" {
		return nil, errors.New("acme: a cache directory is required (the account key and certificates live there)")
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(a.CacheDir),
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Email:      a.Email,
	}
	if a.DirectoryURL != "" {
		m.Client = &acme.Client{DirectoryURL: a.DirectoryURL}
	}
	tc := m.TLSConfig()
	tc.MinVersion = MinVersion
	return tc, nil
}

// files is a certificate read from files, read again when they change.
type files struct {
	cert, key string
	log       *slog.Logger

	mu   sync.Mutex
	cur  *tls.Certificate
	seen [2]stamp // of cert and key when last read
}

// stamp is what tells a changed file: its modification time and size.
type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{fi.ModTime(), fi.Size()}
}

// get is tls.Config.GetCertificate: the current certificate, read again
// first if either file changed.
func (f *files) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := [2]stamp{stampOf(f.cert), stampOf(f.key)}
	if now == f.seen {
		return f.cur, nil
	}
	old := f.cur
	if _, err := f.reloadLocked(now); err != nil {
		// Kept until the pair loads again: a renewal half-way through,
		// or a mistake, does not take the listener down.
		f.log.Error("tls certificate not reloaded; the previous one stays in use", "cert_file", f.cert, "key_file", f.key, "err", err)
		return old, nil
	}
	f.log.Info("tls certificate reloaded", "cert_file", f.cert, "not_after", f.cur.Leaf.NotAfter)
	return f.cur, nil
}

func (f *files) reload() (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadLocked([2]stamp{stampOf(f.cert), stampOf(f.key)})
}

// reloadLocked loads the pair; seen is set either way, so that a pair
// that does not load is tried again only once a file changes again.
func (f *files) reloadLocked(seen [2]stamp) (*tls.Certificate, error) {
	f.seen = seen
	c, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", f.cert, f.key, err)
	}
	f.cur = &c
	return &c, nil
}
