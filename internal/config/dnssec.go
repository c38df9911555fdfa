package config

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DNSSEC configures the signing of the seized zones (dns.dnssec). Each case
// that signs has its own combined signing key (internal/dnssec), kept in
// <data_dir>/dnssec/ and rolled with `takedown dnssec rollover`. The zero
// value works: nothing is signed.
type DNSSEC struct {
	// Cases are the handles of the cases whose zones are signed; [all]
	// signs every case, those made later too. Empty, the default: no zone
	// is signed.
	Cases []string `yaml:"cases"`
	// Algorithm of the keys made: ecdsap256sha256 (13, the default) or
	// ed25519 (15), by name or number. Keys made before keep theirs.
	Algorithm string `yaml:"algorithm"`
	// DNSKEYTTL is the TTL of the DNSKEY RRset, from 1m to 7 days, less
	// than half the signature validity. Default 1h.
	DNSKEYTTL time.Duration `yaml:"dnskey_ttl"`
	// SignatureValidity is how long a signature is valid, from 1 day to 90
	// days; signatures are made again when half of it is left. Default
	// 14 days (336h).
	SignatureValidity time.Duration `yaml:"signature_validity"`
	// DSTTL is the TTL of the DS records in the parent zones (the
	// registries'; a day for most gTLDs), up to 7 days: `dnssec rollover
	// finish` waits that long (or the DNSKEY TTL or the answers' TTL, if
	// longer) after the new key was published. Default 24h.
	DSTTL time.Duration `yaml:"ds_ttl"`
}

// Defaults of dns.dnssec.
const (
	DefaultDNSKEYTTL         = time.Hour
	DefaultSignatureValidity = 14 * 24 * time.Hour
	DefaultDSTTL             = 24 * time.Hour
)

// AllCases in dns.dnssec.cases signs every case.
const AllCases = "all"

// Signs reports whether the zones of the case named are signed.
func (d DNSSEC) Signs(caseName string) bool {
	for _, c := range d.Cases {
		if c == AllCases || c == caseName {
			return true
		}
	}
	return false
}

// AlgorithmNumber is Algorithm as its DNSSEC number (13 or 15); 0 if it is
// neither (Validate refuses it).
func (d DNSSEC) AlgorithmNumber() uint8 {
	switch strings.ToLower(d.Algorithm) {
	case "", "13", "ecdsap256sha256":
		return 13
	case "15", "ed25519":
		return 15
	}
	return 0
}

func (c *Config) fillDNSSEC() {
	d := &c.DNS.DNSSEC
	if d.DNSKEYTTL == 0 {
		d.DNSKEYTTL = DefaultDNSKEYTTL
	}
	if d.SignatureValidity == 0 {
		d.SignatureValidity = DefaultSignatureValidity
	}
	if d.DSTTL == 0 {
		d.DSTTL = DefaultDSTTL
	}
}

var caseHandleRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func (c *Config) checkDNSSEC(bad func(key, format string, args ...any)) {
	d := c.DNS.DNSSEC
	seen := map[string]bool{}
	for i, name := range d.Cases {
		key := "dns.dnssec.cases[" + strconv.Itoa(i) + "]"
		switch {
		case name == AllCases && len(d.Cases) > 1:
			bad(key, "%q signs every case: give it alone, or list the cases", name)
		case name != AllCases && !caseHandleRE.MatchString(name):
			bad(key, "%q is not a case handle (1 to 64 lower-case letters, digits, '.', '_', '-'), nor %q", name, AllCases)
		case seen[name]:
			bad(key, "case %q is listed twice", name)
		}
		seen[name] = true
	}
	if d.AlgorithmNumber() == 0 {
		bad("dns.dnssec.algorithm", "%q is not one of ecdsap256sha256 (13), ed25519 (15)", d.Algorithm)
	}
	switch {
	case d.SignatureValidity < 24*time.Hour || d.SignatureValidity > 90*24*time.Hour:
		bad("dns.dnssec.signature_validity", "%s: want from 24h (a day) to 2160h (90 days)", d.SignatureValidity)
	case d.DNSKEYTTL < time.Minute || d.DNSKEYTTL > 7*24*time.Hour || d.DNSKEYTTL%time.Second != 0:
		bad("dns.dnssec.dnskey_ttl", "%s: want whole seconds from 1m to 168h (7 days)", d.DNSKEYTTL)
	case d.DNSKEYTTL >= d.SignatureValidity/2:
		bad("dns.dnssec.dnskey_ttl", "%s: want less than half of signature_validity (%s), so that a cached DNSKEY outlives no signature", d.DNSKEYTTL, d.SignatureValidity)
	}
	if d.DSTTL < 0 || d.DSTTL > 7*24*time.Hour {
		bad("dns.dnssec.ds_ttl", "%s: want from 0 to 168h (7 days)", d.DSTTL)
	}
}
