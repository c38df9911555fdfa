package registry

// The DS records a seized domain has at its parent decide whether
// validating resolvers reach the sinkhole: none (unsigned, fine), one of
// our keys (signed, fine), others only (stale: SERVFAIL). See DSState and
// docs/dnssec-registry.md.

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// FormatDS writes a DS record's data as DelegationCheck.DS keeps it:
// "key-tag algorithm digest-type DIGEST" (the digest in upper-case hex, as
// in a zone file).
func FormatDS(ds *dns.DS) string {
	return fmt.Sprintf("%d %d %d %s", ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest))
}

// digestLen is the digest length in bytes of the digest types we know.
var digestLen = map[uint8]int{dns.SHA1: 20, dns.SHA256: 32, dns.GOST94: 32, dns.SHA384: 48}

// ParseDS reads a DS record's data as FormatDS writes it (the digest may be
// split by blanks, as zone files allow, and in either case). The error
// quotes the input and says what is wrong.
func ParseDS(s string) (*dns.DS, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return nil, fmt.Errorf("DS record %q: want key-tag, algorithm, digest type and digest: %w", s, ErrInvalid)
	}
	tag, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil {
		return nil, fmt.Errorf("DS record %q: key tag %q is not a number from 0 to 65535: %w", s, f[0], ErrInvalid)
	}
	alg, err := strconv.ParseUint(f[1], 10, 8)
	if err != nil {
		return nil, fmt.Errorf("DS record %q: algorithm %q is not a number from 0 to 255: %w", s, f[1], ErrInvalid)
	}
	dt, err := strconv.ParseUint(f[2], 10, 8)
	if err != nil {
		return nil, fmt.Errorf("DS record %q: digest type %q is not a number from 0 to 255: %w", s, f[2], ErrInvalid)
	}
	digest := strings.Join(f[3:], "")
	b, err := hex.DecodeString(digest)
	if err != nil || len(b) == 0 || len(b) > 64 {
		return nil, fmt.Errorf("DS record %q: digest is not 1 to 64 bytes of hex: %w", s, ErrInvalid)
	}
	if n, ok := digestLen[uint8(dt)]; ok && len(b) != n {
		return nil, fmt.Errorf("DS record %q: a digest of type %d has %d bytes, not %d: %w", s, dt, n, len(b), ErrInvalid)
	}
	return &dns.DS{
		Hdr:    dns.RR_Header{Rrtype: dns.TypeDS, Class: dns.ClassINET},
		KeyTag: uint16(tag), Algorithm: uint8(alg), DigestType: uint8(dt), Digest: strings.ToUpper(digest),
	}, nil
}

// usable reports whether a validating resolver uses a DS record: its
// algorithm and digest type are ones resolvers implement (RFC 8624's MUST
// and RECOMMENDED ones, and the older RSA ones still validated). A DS
// set with none usable makes the zone insecure, not bogus (RFC 4035
// section 5.2).
func usable(ds *dns.DS) bool {
	switch ds.Algorithm {
	case dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512,
		dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519, dns.ED448:
	default:
		return false
	}
	switch ds.DigestType {
	case dns.SHA1, dns.SHA256, dns.SHA384:
		return true
	}
	return false
}

// ClassifyDS says what the DS set found at the parent means, given ours
// (the DS records of our published keys for the zone; none when the case
// does not sign):
//
//   - DSSigned when a found record is one of ours: same key tag,
//     algorithm and digest, or, when the parent computed a digest of
//     another type than ours, same key tag and algorithm (a resolver needs
//     one DS that leads to a key);
//   - DSUnsigned when none is found, or none a resolver can use;
//   - DSStale otherwise.
func ClassifyDS(found, ours []*dns.DS) DSState {
	usableFound := false
	for _, f := range found {
		if !usable(f) {
			continue
		}
		usableFound = true
		for _, o := range ours {
			if f.KeyTag != o.KeyTag || f.Algorithm != o.Algorithm {
				continue
			}
			if f.DigestType != o.DigestType || strings.EqualFold(f.Digest, o.Digest) {
				return DSSigned
			}
		}
	}
	if !usableFound {
		return DSUnsigned
	}
	return DSStale
}

// classify sets c.DSState from c.DS and our keys for the zone, when the
// check looked at the DS records; DS records it cannot read are refused.
func (r *Registry) classify(name string, c *DelegationCheck) error {
	switch {
	case c.DSState == "":
		if len(c.DS) > 0 || c.DSProblem != "" {
			return fmt.Errorf("delegation check of %s: DS records or a DS problem without a DS state: %w", name, ErrInvalid)
		}
		return nil
	case c.DSProblem != "" || c.DSState == DSError:
		c.DSState = DSError
		if c.DSProblem == "" {
			return fmt.Errorf("delegation check of %s: DS state error without a problem: %w", name, ErrInvalid)
		}
		return nil
	}
	if _, err := ParseDSState(string(c.DSState)); err != nil {
		return fmt.Errorf("delegation check of %s: %w", name, err)
	}
	found := make([]*dns.DS, len(c.DS))
	for i, s := range c.DS {
		ds, err := ParseDS(s)
		if err != nil {
			return fmt.Errorf("delegation check of %s: %w", name, err)
		}
		found[i] = ds
		c.DS[i] = FormatDS(ds)
	}
	var ours []*dns.DS
	if len(found) > 0 { // our keys are looked up only when needed
		ours = r.ourDS(name)
	}
	c.DSState = ClassifyDS(found, ours)
	return nil
}

// ParseDSState reads a DS state's name.
func ParseDSState(s string) (DSState, error) {
	switch st := DSState(strings.ToLower(strings.TrimSpace(s))); st {
	case DSUnsigned, DSSigned, DSStale, DSError:
		return st, nil
	}
	return "", fmt.Errorf("DS state %q: want unsigned, signed, stale or error: %w", s, ErrInvalid)
}

// ourDSText returns our DS records for a zone as FormatDS writes them.
func (r *Registry) ourDSText(name string) []string {
	var out []string
	for _, ds := range r.ourDS(name) {
		if ds != nil {
			out = append(out, FormatDS(ds))
		}
	}
	return out
}

// dsStateLabels are the values of the state label of
// takedown_registry_domains_ds: the DS states, and "unchecked" for domains
// whose DS records no check has read.
var dsStateLabels = []string{string(DSUnsigned), string(DSSigned), string(DSStale), string(DSError), "unchecked"}

// DSStateCounts counts the domains that are not released by the DS state
// of their last delegation check ("unchecked": none looked at it); every
// state is in the map, zero or not.
func (r *Registry) DSStateCounts(ctx context.Context) (map[string]int, error) {
	rows, err := r.db.QueryContext(ctx, `WITH cur AS (`+currentStateSQL("")+`),
		ds AS (SELECT domain, arg_max(ds_state, audit_seq) AS ds_state FROM registry_delegation GROUP BY domain)
		SELECT coalesce(nullif(ds.ds_state, ''), 'unchecked'), count(*)
		FROM registry_domains d JOIN cur ON cur.domain = d.name LEFT JOIN ds ON ds.domain = d.name
		WHERE cur.state <> ? GROUP BY 1`, string(StateReleased))
	if err != nil {
		return nil, fmt.Errorf("counting domains by DS state: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int, len(dsStateLabels))
	for _, l := range dsStateLabels {
		out[l] = 0
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("counting domains by DS state: %w", err)
		}
		out[st] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting domains by DS state: %w", err)
	}
	return out, nil
}

// dsCollector is takedown_registry_domains_ds, read from the database at
// each scrape.
type dsCollector struct {
	r       *Registry
	desc    *prometheus.Desc
	timeout time.Duration
}

// RegisterMetrics registers the registry's gauges with reg:
// takedown_registry_domains_ds{state} counts the domains that are not
// released by the DS state of their last check (see DSState; "unchecked"
// for none), so an alert can fire on state="stale" > 0.
func (r *Registry) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(&dsCollector{r: r, timeout: 5 * time.Second, desc: prometheus.NewDesc("takedown_registry_domains_ds",
		"Seized domains (not released) by the DS records their parent publishes, as the last delegation check found them: "+
			"unsigned, signed (our key), stale (validating resolvers SERVFAIL), error (not read), unchecked.",
		[]string{"state"}, nil)})
}

func (c *dsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *dsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.r.DSStateCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, l := range dsStateLabels {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[l]), l)
	}
}

// ParentDS returns the DS records the last delegation check found at a
// zone's parent, and whether that check read them (false: never checked,
// or the parent could not be asked — DSError). A key rollover asks it
// before it retires the old key: the parent must hold the new key's DS.
func (r *Registry) ParentDS(ctx context.Context, zone string) (ds []*dns.DS, checked bool, err error) {
	n, err := NormalizeName(zone)
	if err != nil {
		return nil, false, err
	}
	c, err := r.lastDelegation(ctx, n)
	if err != nil || c == nil || c.DSState == "" || c.DSState == DSError {
		return nil, false, err
	}
	for _, s := range c.DS {
		d, err := ParseDS(s)
		if err != nil {
			return nil, false, fmt.Errorf("delegation check of %s: %w", n, err)
		}
		d.Hdr.Name = n + "."
		ds = append(ds, d)
	}
	return ds, true, nil
}
