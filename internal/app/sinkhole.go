package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dnssink"
	"github.com/takedown-project/takedown/internal/registry"
)

// Served reports whether a domain in state s is answered by the sinkhole and
// listed in the RPZ feed.
func Served(s registry.State) bool {
	switch s {
	case registry.StateRestrained, registry.StateSinkholed, registry.StateTransferred:
		return true
	}
	return false
}

// SeizedDomains is what the sinkhole and the feed need of the registry.
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
		if Served(d.State) {
			out = append(out, ServedDomain{Domain: d, Case: byName[d.Case]})
		}
	}
	return out, nil
}

// TXT is the text of a sinkholed zone's apex TXT record.
func TXT(c registry.Case, operator string) string {
	s := fmt.Sprintf("sinkholed by order of %s %s (case %s)", c.Court, c.Docket, c.Name)
	if operator != "" {
		s += "; operator " + operator
	}
	return s
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

// dnsConfig translates the file's dns section.
func dnsConfig(cfg config.Config) dnssink.Config {
	c := dnssink.Config{
		Listen:     cfg.DNS.Listen,
		Sensor:     cfg.Sensor,
		A:          parseAddrs(cfg.DNS.A),
		AAAA:       parseAddrs(cfg.DNS.AAAA),
		TTL:        cfg.DNS.TTL,
		Hostmaster: cfg.DNS.Hostmaster,
		RRL: dnssink.RRLConfig{
			ResponsesPerSecond: max(cfg.DNS.RRL.ResponsesPerSecond, 0),
			ErrorsPerSecond:    cfg.DNS.RRL.ErrorsPerSecond,
			Slip:               cfg.DNS.RRL.Slip,
			IPv4PrefixLen:      cfg.DNS.RRL.IPv4Prefix,
			IPv6PrefixLen:      cfg.DNS.RRL.IPv6Prefix,
			Exempt:             parsePrefixes(cfg.DNS.RRL.Exempt),
		},
	}
	for _, ns := range cfg.DNS.NameServers {
		c.NameServers = append(c.NameServers, dnssink.NameServer{Name: strings.TrimSuffix(ns.Name, "."), Addrs: parseAddrs(ns.Addrs)})
	}
	return c
}

// zoneSync keeps the sinkhole (and the feed) in step with the registry: it
// polls the audit log's last sequence number, which moves with every change,
// and rebuilds the served set when it moved.
type zoneSync struct {
	reg   *registry.Registry
	apply func(ctx context.Context, served []ServedDomain) error
	log   *slog.Logger
	every time.Duration
	last  int64
}

func (z *zoneSync) once(ctx context.Context, force bool) error {
	seq, err := z.reg.LastSeq(ctx)
	if err != nil {
		return err
	}
	if seq == z.last && !force {
		return nil
	}
	t0 := time.Now()
	served, err := LoadServed(ctx, z.reg)
	if err != nil {
		return err
	}
	if err := z.apply(ctx, served); err != nil {
		return err
	}
	z.last = seq
	z.log.Info("zones loaded", "served", len(served), "audit_seq", seq, "took", time.Since(t0).Round(time.Microsecond))
	return nil
}

func (z *zoneSync) run(ctx context.Context) {
	t := time.NewTicker(z.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := z.once(ctx, false); err != nil && ctx.Err() == nil {
				z.log.Error("reloading zones", "err", err)
			}
		}
	}
}
