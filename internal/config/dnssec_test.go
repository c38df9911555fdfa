package config

import (
	"testing"
	"time"
)

func TestDNSSECConfig(t *testing.T) {
	c, err := Parse("t.yaml", []byte("dns:\n  dnssec: {cases: [waledac-2010, b], algorithm: 15, ds_ttl: 2h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.DNS.DNSSEC
	if !d.Signs("waledac-2010") || d.Signs("other") || d.AlgorithmNumber() != 15 || d.DSTTL != 2*time.Hour {
		t.Errorf("decoded %+v", d)
	}
	c, err = Parse("t.yaml", []byte("dns:\n  dnssec: {cases: [all], algorithm: ECDSAP256SHA256}\n"))
	if err != nil || !c.DNS.DNSSEC.Signs("any") || c.DNS.DNSSEC.AlgorithmNumber() != 13 {
		t.Errorf("cases [all]: %v %+v", err, c.DNS.DNSSEC)
	}
	c, err = Parse("t.yaml", nil)
	if err != nil || c.DNS.DNSSEC.Signs("any") || c.DNS.DNSSEC.AlgorithmNumber() != 13 || c.DNS.DNSSEC.DSTTL != DefaultDSTTL {
		t.Errorf("defaults: %v %+v", err, c.DNS.DNSSEC)
	}
}

func TestDNSSECConfigErrors(t *testing.T) {
	checkParseErrors(t, []parseErrorCase{
		{"unknown key", "dns:\n  dnssec:\n    algo: 13\n", []string{"t.yaml:3:5", `unknown key "algo"`, "in dns.dnssec", "algorithm"}},
		{"algorithm", "dns: {dnssec: {algorithm: rsasha256}}\n", []string{"dns.dnssec.algorithm", `"rsasha256"`, "ecdsap256sha256 (13), ed25519 (15)"}},
		{"all and more", "dns: {dnssec: {cases: [all, a]}}\n", []string{"dns.dnssec.cases[0]", "give it alone"}},
		{"bad handle", "dns: {dnssec: {cases: [Big Case]}}\n", []string{"dns.dnssec.cases[0]", `"Big Case" is not a case handle`}},
		{"twice", "dns: {dnssec: {cases: [a, a]}}\n", []string{"dns.dnssec.cases[1]", "listed twice"}},
		{"negative ds ttl", "dns: {dnssec: {ds_ttl: -1h}}\n", []string{"dns.dnssec.ds_ttl", "-1h0m0s"}},
		{"no such key", "dns: {dnssec: {signature_validity: 1h}}\n", []string{`unknown key "signature_validity"`}},
		{"ds ttl", "dns: {dnssec: {ds_ttl: 200h}}\n", []string{"dns.dnssec.ds_ttl", "200h0m0s"}},
		{"not a duration", "dns: {dnssec: {ds_ttl: a day}}\n", []string{"t.yaml", "a day"}},
	})
}
