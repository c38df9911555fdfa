package app

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/rpz"
	"github.com/takedown-project/takedown/internal/xfr"
)

// RPZConfig translates the file's rpz section.
func RPZConfig(cfg config.Config) rpz.Config {
	return rpz.Config{
		Zone:       cfg.RPZ.Zone,
		A:          parseAddrs(cfg.DNS.A),
		AAAA:       parseAddrs(cfg.DNS.AAAA),
		TTL:        cfg.DNS.TTL,
		Hostmaster: cfg.DNS.Hostmaster,
	}
}

// RPZEntries lists the policy of every served domain: the case's policy
// from rpz.cases, else rpz.policy.
func RPZEntries(cfg config.Config, served []ServedDomain) ([]rpz.Entry, error) {
	def, err := rpz.ParsePolicy(cfg.RPZ.Policy)
	if err != nil {
		return nil, fmt.Errorf("rpz.policy: %w", err)
	}
	perCase := map[string]rpz.Policy{}
	for name, p := range cfg.RPZ.Cases {
		pol, err := rpz.ParsePolicy(p)
		if err != nil {
			return nil, fmt.Errorf("rpz.cases.%s: %w", name, err)
		}
		perCase[name] = pol
	}
	out := make([]rpz.Entry, len(served))
	for i, sd := range served {
		p, ok := perCase[sd.Domain.Case]
		if !ok {
			p = def
		}
		out[i] = rpz.Entry{Name: sd.Domain.Name, Policy: p}
	}
	return out, nil
}

// xfrConfig translates the file's transfer section; TSIG secrets are read
// from their files here.
func xfrConfig(cfg config.Config) (xfr.Config, error) {
	c := xfr.Config{Listen: cfg.Transfer.Listen, Notify: cfg.Transfer.Notify, NotifyKey: cfg.Transfer.NotifyKey}
	if len(cfg.Transfer.TSIGKeys) > 0 {
		c.TSIGKeys = map[string]string{}
	}
	for i, k := range cfg.Transfer.TSIGKeys {
		secret := k.Secret
		if k.SecretFile != "" {
			b, err := os.ReadFile(k.SecretFile)
			if err != nil {
				return c, fmt.Errorf("transfer.tsig_keys[%d].secret_file: %w", i, err)
			}
			secret = strings.TrimSpace(string(b))
			if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
				return c, fmt.Errorf("transfer.tsig_keys[%d].secret_file %s: not base64", i, k.SecretFile)
			}
		}
		c.TSIGKeys[k.Name] = secret
	}
	for _, p := range cfg.Transfer.AllowFrom {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			return c, fmt.Errorf("transfer.allow_from: %w", err)
		}
		c.AllowFrom = append(c.AllowFrom, pp)
	}
	for _, p := range cfg.Transfer.AllowUnsigned {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			return c, fmt.Errorf("transfer.allow_unsigned: %w", err)
		}
		c.AllowUnsigned = append(c.AllowUnsigned, pp)
	}
	return c, nil
}

// rpzFeed publishes the policy zone on the transfer server. The first
// version goes out whole; after that only the entries that changed are
// handed over (xfr.UpdateZone), so that a one-domain change on a
// 800,000-name feed costs O(change) and its IXFR carries only that change.
type rpzFeed struct {
	cfg    rpz.Config
	xs     *xfr.Server
	serial uint32
	last   map[string]rpz.Policy // nil before the first publish
}

// It returns the names that were not in the previous version: the sinkhole
// zones that secondaries have not heard of.
func (f *rpzFeed) publish(entries []rpz.Entry) (added []string, err error) {
	now := make(map[string]rpz.Policy, len(entries))
	for _, e := range entries {
		if p, ok := now[e.Name]; !ok || e.Policy < p {
			now[e.Name] = e.Policy // NXDOMAIN wins, as in rpz.Build
		}
	}
	for name := range now {
		if _, ok := f.last[name]; !ok {
			added = append(added, name)
		}
	}
	if f.last != nil {
		var gone, came []rpz.Entry
		for name, p := range f.last {
			if q, ok := now[name]; !ok || q != p {
				gone = append(gone, rpz.Entry{Name: name, Policy: p})
			}
		}
		for name, p := range now {
			if q, ok := f.last[name]; !ok || q != p {
				came = append(came, rpz.Entry{Name: name, Policy: p})
			}
		}
		if len(gone) == 0 && len(came) == 0 {
			return nil, nil
		}
		serial := nextSerial(f.serial, time.Now())
		if f.update(serial, gone, came) == nil {
			f.serial, f.last = serial, now
			return added, nil
		}
		// Fall back to the whole zone, which is always right.
	}
	serial := nextSerial(f.serial, time.Now())
	rrs, err := rpz.Build(f.cfg, serial, entries)
	if err != nil {
		return nil, fmt.Errorf("building the rpz: %w", err)
	}
	if err := f.xs.SetZone(f.cfg.ZoneName(), rrs); err != nil {
		return nil, fmt.Errorf("publishing the rpz: %w", err)
	}
	f.serial, f.last = serial, now
	return added, nil
}

// update hands the transfer server the records of the entries gone and come.
func (f *rpzFeed) update(serial uint32, gone, came []rpz.Entry) error {
	del, err := rpz.Build(f.cfg, serial, gone)
	if err != nil {
		return err
	}
	add, err := rpz.Build(f.cfg, serial, came)
	if err != nil {
		return err
	}
	// Build puts the SOA and the NS first; the rest are the entries' records.
	return f.xs.UpdateZone(f.cfg.ZoneName(), add[0].(*dns.SOA), del[2:], add[2:])
}
