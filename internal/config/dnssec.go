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
	// DSTTL is the TTL of the DS records in the parent zones (the
	// registries'; a day for most gTLDs), up to 7 days: `dnssec rollover
	// finish` waits that long (or dns.ttl, the DNSKEY set's TTL, if
	// longer) after the new key was published. Default 24h.
	//
	// The DNSKEY set has the answers' TTL (dns.ttl), and signatures are
	// valid for 14 days, made again when half is left
	// (internal/dnssink): neither is configured.
	DSTTL time.Duration `yaml:"ds_ttl"`
}

// DefaultDSTTL is dns.dnssec.ds_ttl unless configured.
const DefaultDSTTL = 24 * time.Hour

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
	if d.DSTTL < 0 || d.DSTTL > 7*24*time.Hour {
		bad("dns.dnssec.ds_ttl", "%s: want from 0 to 168h (7 days)", d.DSTTL)
	}
}
