// Package certs is the sinkhole's local certificate authority: one ECDSA
// P-256 CA, made at first start and kept on disk, that mints a leaf
// certificate for every TLS server name a bot asks for. The HTTPS listener
// and the SMTP listener's STARTTLS share one Authority, so that a bot sees
// the same issuer on every port.
//
// Nothing here is meant to be trusted by anyone: bots rarely verify
// certificates, and the ones that do fail the handshake, which the
// listeners record as such.
package certs

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// File names in the directory.
const (
	CertFile = "ca.pem"
	KeyFile  = "ca-key.pem"
)

// Defaults of Config fields left zero.
const (
	DefaultCacheSize   = 10000
	DefaultName        = "sinkhole.invalid"
	DefaultLeafTTL     = 397 * 24 * time.Hour
	caValidity         = 20 * 365 * 24 * time.Hour
	leafRenewBefore    = 24 * time.Hour
	leafBackdate       = time.Hour
	maxServerNameBytes = 253
)

// Config configures an Authority. The zero value keeps the CA in memory
// only (a new one at every start).
type Config struct {
	// Dir keeps the CA: ca.pem and ca-key.pem (mode 0600). Made with mode
	// 0700 when missing; a CA found there is reused. Empty: the CA lives
	// in memory only.
	Dir string
	// Organization is the subject organisation of the CA and its leaves;
	// default "takedown sinkhole".
	Organization string
	// DefaultName is the name on the certificate served to clients that
	// send no SNI (or an unusable one); default "sinkhole.invalid".
	DefaultName string
	// CacheSize bounds the leaves kept; the one used least recently goes
	// first. Default 10,000 (about 1.5 KB each).
	CacheSize int
	// LeafTTL is the validity of a leaf; default 397 days.
	LeafTTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Authority mints and caches leaf certificates. It is safe for concurrent
// use.
type Authority struct {
	cfg     Config
	caCert  *x509.Certificate
	caKey   *ecdsa.PrivateKey
	caDER   []byte
	caPEM   []byte
	leafKey *ecdsa.PrivateKey // shared by every leaf: minting is one signature

	mu     sync.Mutex
	lru    *list.List // of *entry, front = most recent
	byName map[string]*list.Element
	flight map[string]*call
	minted uint64
}

type entry struct {
	name string
	cert *tls.Certificate
}

type call struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// Open loads the CA from cfg.Dir, or makes one (and saves it there).
func Open(cfg Config) (*Authority, error) {
	if cfg.Organization == "" {
		cfg.Organization = "takedown sinkhole"
	}
	if cfg.DefaultName == "" {
		cfg.DefaultName = DefaultName
	}
	cfg.DefaultName = strings.ToLower(strings.TrimSuffix(cfg.DefaultName, "."))
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.LeafTTL <= 0 {
		cfg.LeafTTL = DefaultLeafTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authority{cfg: cfg, lru: list.New(), byName: map[string]*list.Element{}, flight: map[string]*call{}}
	var err error
	if cfg.Dir == "" {
		err = a.makeCA()
	} else {
		err = a.loadOrMake()
	}
	if err != nil {
		return nil, err
	}
	if a.leafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("certs: making the leaf key: %w", err)
	}
	return a, nil
}

func (a *Authority) loadOrMake() error {
	certPath := filepath.Join(a.cfg.Dir, CertFile)
	keyPath := filepath.Join(a.cfg.Dir, KeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		return a.load(certPEM, keyPEM)
	case errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist):
	case cerr != nil && !errors.Is(cerr, fs.ErrNotExist):
		return fmt.Errorf("certs: reading %s: %w", certPath, cerr)
	case kerr != nil && !errors.Is(kerr, fs.ErrNotExist):
		return fmt.Errorf("certs: reading %s: %w", keyPath, kerr)
	default:
		// One file without the other: do not overwrite what is there.
		return fmt.Errorf("certs: %s holds only one of %s and %s; remove it or restore the other", a.cfg.Dir, CertFile, KeyFile)
	}
	if err := os.MkdirAll(a.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := a.makeCA(); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(a.caKey)
	if err != nil {
		return fmt.Errorf("certs: encoding the CA key: %w", err)
	}
	// The key first: a crash between the two writes leaves a key without
	// a certificate, which the next start reports instead of guessing.
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, a.caPEM, 0o644)
}

// writeFile writes data to a temporary file beside path and renames it.
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	return nil
}

func (a *Authority) load(certPEM, keyPEM []byte) error {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return fmt.Errorf("certs: %s: no PEM CERTIFICATE block", filepath.Join(a.cfg.Dir, CertFile))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", filepath.Join(a.cfg.Dir, CertFile), err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return fmt.Errorf("certs: %s: no PEM block", filepath.Join(a.cfg.Dir, KeyFile))
	}
	var key any
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		err = fmt.Errorf("PEM block type %q is not a private key", kb.Type)
	}
	if err != nil {
		return fmt.Errorf("certs: %s: %w", filepath.Join(a.cfg.Dir, KeyFile), err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return fmt.Errorf("certs: %s: not an ECDSA P-256 key", filepath.Join(a.cfg.Dir, KeyFile))
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&ek.PublicKey) {
		return fmt.Errorf("certs: %s and %s do not belong together", CertFile, KeyFile)
	}
	if !cert.IsCA {
		return fmt.Errorf("certs: %s is not a CA certificate", filepath.Join(a.cfg.Dir, CertFile))
	}
	a.caCert, a.caKey, a.caDER = cert, ek, cb.Bytes
	a.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cb.Bytes})
	return nil
}

func (a *Authority) makeCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: making the CA key: %w", err)
	}
	now := a.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{a.cfg.Organization}, CommonName: a.cfg.Organization + " CA"},
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("certs: making the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	a.caCert, a.caKey, a.caDER = cert, key, der
	a.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return n.Add(n, big.NewInt(1))
}

// CACertPEM returns the CA certificate in PEM, for clients of tests and for
// the operator.
func (a *Authority) CACertPEM() []byte { return append([]byte(nil), a.caPEM...) }

// CACert returns the parsed CA certificate. The caller must not modify it.
func (a *Authority) CACert() *x509.Certificate { return a.caCert }

// DefaultName returns the name on the certificate for clients without SNI.
func (a *Authority) DefaultName() string { return a.cfg.DefaultName }

// Minted returns how many leaves have been made, and how many are cached.
func (a *Authority) Minted() (minted uint64, cached int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.minted, a.lru.Len()
}

// TLSConfig returns a new server configuration that presents a leaf for
// the client's SNI (or the default name). Callers may set more fields, such
// as NextProtos, on their copy.
func (a *Authority) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS10, // bots are old; record what they speak
		GetCertificate: a.GetCertificate,
	}
}

// GetCertificate is a tls.Config.GetCertificate that returns the leaf for
// hello's server name, minting it on first use.
func (a *Authority) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.Certificate(hello.ServerName)
}

// Certificate returns the leaf for name (any case, trailing dot allowed);
// a name that is empty or not a host name gets the default name's leaf.
func (a *Authority) Certificate(name string) (*tls.Certificate, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !validHost(name) {
		name = a.cfg.DefaultName
	}
	now := a.cfg.Now()
	a.mu.Lock()
	if el, ok := a.byName[name]; ok {
		e := el.Value.(*entry)
		if now.Add(leafRenewBefore).Before(e.cert.Leaf.NotAfter) {
			a.lru.MoveToFront(el)
			a.mu.Unlock()
			return e.cert, nil
		}
	}
	if c, ok := a.flight[name]; ok {
		a.mu.Unlock()
		<-c.done
		return c.cert, c.err
	}
	c := &call{done: make(chan struct{})}
	a.flight[name] = c
	a.mu.Unlock()

	c.cert, c.err = a.mint(name, now)

	a.mu.Lock()
	delete(a.flight, name)
	if c.err == nil {
		a.minted++
		if el, ok := a.byName[name]; ok {
			el.Value.(*entry).cert = c.cert
			a.lru.MoveToFront(el)
		} else {
			a.byName[name] = a.lru.PushFront(&entry{name: name, cert: c.cert})
			for a.lru.Len() > a.cfg.CacheSize {
				old := a.lru.Remove(a.lru.Back()).(*entry)
				delete(a.byName, old.name)
			}
		}
	}
	a.mu.Unlock()
	close(c.done)
	return c.cert, c.err
}

func (a *Authority) mint(name string, now time.Time) (*tls.Certificate, error) {
	notAfter := now.Add(a.cfg.LeafTTL)
	if notAfter.After(a.caCert.NotAfter) {
		notAfter = a.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{a.cfg.Organization}, CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-leafBackdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, &a.leafKey.PublicKey, a.caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: minting a certificate for %q: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, a.caDER}, PrivateKey: a.leafKey, Leaf: leaf}, nil
}

// validHost reports whether s can stand in a certificate's DNS names:
// labels of letters, digits, '-' and '_' (seen in bot domains), a leading
// "*." allowed, at most 253 bytes.
func validHost(s string) bool {
	if s == "" || len(s) > maxServerNameBytes {
		return false
	}
	s = strings.TrimPrefix(s, "*.")
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
