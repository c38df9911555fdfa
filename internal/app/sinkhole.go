package app

import (
	"context"
	"net/netip"
	"strings"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dnssink"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/servedset"
)

// SeizedDomains is what LoadServed needs of the registry, local or remote.
type SeizedDomains interface {
	ListCases(ctx context.Context) ([]registry.Case, error)
	ListDomains(ctx context.Context, f registry.DomainFilter) ([]registry.Domain, error)
}

// ServedDomain is a domain the sinkhole answers for, with its case.
type ServedDomain struct {
	Domain registry.Domain
	Case   registry.Case
}

// LoadServed returns the domains in a served state with their cases.
func LoadServed(ctx context.Context, reg SeizedDomains) ([]ServedDomain, error) {
	cases, err := reg.ListCases(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]registry.Case, len(cases))
	for _, c := range cases {
		byName[c.Name] = c
	}
	ds, err := reg.ListDomains(ctx, registry.DomainFilter{})
	if err != nil {
		return nil, err
	}
	out := make([]ServedDomain, 0, len(ds))
	for _, d := range ds {
		if d.State.Served() {
			out = append(out, ServedDomain{Domain: d, Case: byName[d.Case]})
		}
	}
	return out, nil
}

func parseAddrs(ss []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// parsePrefixes parses validated CIDR prefixes.
func parsePrefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// dnsConfig translates the file's dns section; what the zones answer is
// the served set's (sinkholeConfig), but on a sensor, whose dns.a and
// dns.aaaa are its own listeners' addresses.
func dnsConfig(cfg config.Config) dnssink.Config {
	var own [2][]netip.Addr
	if cfg.Role == config.RoleSensor {
		own = [2][]netip.Addr{parseAddrs(cfg.DNS.A), parseAddrs(cfg.DNS.AAAA)}
	}
	return dnssink.Config{
		A: own[0], AAAA: own[1],
		Listen: cfg.DNS.Listen,
		Sensor: cfg.Sensor,
		RRL: dnssink.RRLConfig{
			ResponsesPerSecond: max(cfg.DNS.RRL.ResponsesPerSecond, 0),
			SignedPerSecond:    max(cfg.DNS.RRL.SignedPerSecond, 0),
			ErrorsPerSecond:    cfg.DNS.RRL.ErrorsPerSecond,
			Slip:               cfg.DNS.RRL.Slip,
			IPv4PrefixLen:      cfg.DNS.RRL.IPv4Prefix,
			IPv6PrefixLen:      cfg.DNS.RRL.IPv6Prefix,
			Exempt:             parsePrefixes(cfg.DNS.RRL.Exempt),
		},
	}
}

// sinkholeConfig is what every seized zone answers, from the file's dns
// section: it goes into the served set.
func sinkholeConfig(cfg config.Config) servedset.Sinkhole {
	sh := servedset.Sinkhole{
		A:          parseAddrs(cfg.DNS.A),
		AAAA:       parseAddrs(cfg.DNS.AAAA),
		TTL:        cfg.DNS.TTL,
		Hostmaster: cfg.DNS.Hostmaster,
	}
	for _, ns := range cfg.DNS.NameServers {
		sh.NameServers = append(sh.NameServers, servedset.NameServer{Name: strings.TrimSuffix(ns.Name, "."), Addrs: parseAddrs(ns.Addrs)})
	}
	return sh
}
