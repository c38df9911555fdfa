package rpz

import (
	"fmt"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/servedset"
)

// Policies says what resolvers do with the names of each case: Cases by
// case handle, Default for the others.
type Policies struct {
	Default Policy
	Cases   map[string]Policy
}

// Of returns the policy of the case named caseName.
func (p Policies) Of(caseName string) Policy {
	if pol, ok := p.Cases[caseName]; ok {
		return pol
	}
	return p.Default
}

// uses reports whether any case may get pol.
func (p Policies) uses(pol Policy) bool {
	if p.Default == pol {
		return true
	}
	for _, q := range p.Cases {
		if q == pol {
			return true
		}
	}
	return false
}

// Feed keeps the policy zone in step with the served set. For each step of
// the set it makes the new version of the zone (a Zone over the new
// snapshot, whose records are made when a transfer asks for them) and the
// records that left and came with it (those of the names the step removed
// and put), so that the transfer server journals the step for IXFR in
// proportion to it: a one-domain change of a million-name feed is a few
// records to pack, never a pass over the million.
type Feed struct {
	cfg Config
	pol Policies
}

// NewFeed checks cfg and pol: the zone name, the sinkhole addresses, and
// that a redirect policy has addresses to redirect to.
func NewFeed(cfg Config, pol Policies) (*Feed, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	for _, p := range []Policy{NXDOMAIN, Redirect} {
		if !pol.uses(p) {
			continue
		}
		if err := cfg.checkPolicy(p); err != nil {
			return nil, fmt.Errorf("rpz feed %s: %w", cfg.Zone, err)
		}
	}
	return &Feed{cfg: cfg, pol: pol}, nil
}

// Step is what changed from one version of the policy zone to the next.
type Step struct {
	Del, Add []dns.RR
}

// Next returns the version of the policy zone that u makes, and the step
// to it from the version before u; a nil step when u replaced the served
// set whole (a new start: the transfer server's journal starts afresh).
// It returns a nil Zone when u changes nothing of the policy zone (a
// case's TXT, the sinkhole's answers).
func (f *Feed) Next(u servedset.Update) (*Zone, *Step) {
	z := f.Zone(u.New)
	if u.Delta == nil {
		return z, nil
	}
	st := &Step{}
	old := make(map[string]Policy, len(u.Delta.Remove))
	for _, name := range u.Delta.Remove {
		c, ok := u.Old.Has(name)
		if !ok {
			continue // Apply checked that it was served
		}
		name = canonical(name)
		old[name] = f.pol.Of(c.Name)
	}
	for _, p := range u.Delta.Put {
		name := canonical(p.Name)
		if c, ok := u.Old.Has(name); ok {
			if _, removed := old[name]; !removed {
				old[name] = f.pol.Of(c.Name)
			}
		}
	}
	now := make(map[string]Policy, len(u.Delta.Put))
	for _, p := range u.Delta.Put {
		name := canonical(p.Name)
		if c, ok := u.New.Has(name); ok {
			now[name] = f.pol.Of(c.Name)
		}
	}
	for name, p := range old {
		if q, ok := now[name]; !ok || q != p {
			st.Del = f.cfg.appendEntry(st.Del, name, p)
		}
	}
	for name, p := range now {
		if q, ok := old[name]; !ok || q != p {
			st.Add = f.cfg.appendEntry(st.Add, name, p)
		}
	}
	if len(st.Del) == 0 && len(st.Add) == 0 {
		return nil, nil
	}
	return z, st
}

// canonical is a served name as the served set keeps it.
func canonical(name string) string {
	if n, ok := hostNameOf(name); ok {
		return n
	}
	return name
}

// Zone returns the version of the policy zone for the snapshot set, with
// the snapshot's serial.
func (f *Feed) Zone(set *servedset.Snapshot) *Zone {
	z := &Zone{cfg: f.cfg, pol: f.pol, set: set}
	z.apex = f.cfg.appendApex(nil, set.Serial())
	z.n = len(z.apex)
	for i, c := range set.Cases() {
		z.n += set.CaseZones(uint32(i)) * f.cfg.perEntry(f.pol.Of(c.Name))
	}
	return z
}

// Zone is one version of the policy zone, over a snapshot of the served
// set: its records are made when a transfer asks for them, so that a feed
// of a million names holds nothing beyond the served set. It is the
// Content that the transfer server's Publish takes.
type Zone struct {
	cfg  Config
	pol  Policies
	set  *servedset.Snapshot
	apex []dns.RR // SOA and NS
	n    int
}

// Name is the policy zone's name, fully qualified and lower case.
func (z *Zone) Name() string { return z.cfg.Zone }

// SOA returns the zone's SOA record.
func (z *Zone) SOA() *dns.SOA { return z.apex[0].(*dns.SOA) }

// Apex returns the SOA and the NS record.
func (z *Zone) Apex() []dns.RR { return z.apex }

// Len is the number of records of the zone.
func (z *Zone) Len() int { return z.n }

// Records yields the SOA, the NS and the records of every served name, in
// the served set's order (not sorted: Build sorts).
func (z *Zone) Records(yield func(dns.RR) bool) {
	for _, rr := range z.apex {
		if !yield(rr) {
			return
		}
	}
	var buf []dns.RR
	for name, c := range z.set.All() {
		buf = z.cfg.appendEntry(buf[:0], name, z.pol.Of(c.Name))
		for _, rr := range buf {
			if !yield(rr) {
				return
			}
		}
	}
}
