package app

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/rpz"
	"github.com/takedown-project/takedown/internal/servedset"
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

// rpzPolicies translates rpz.policy and rpz.cases.
func rpzPolicies(cfg config.Config) (rpz.Policies, error) {
	def, err := rpz.ParsePolicy(cfg.RPZ.Policy)
	if err != nil {
		return rpz.Policies{}, fmt.Errorf("rpz.policy: %w", err)
	}
	pol := rpz.Policies{Default: def, Cases: map[string]rpz.Policy{}}
	for name, p := range cfg.RPZ.Cases {
		if pol.Cases[name], err = rpz.ParsePolicy(p); err != nil {
			return rpz.Policies{}, fmt.Errorf("rpz.cases.%s: %w", name, err)
		}
	}
	return pol, nil
}

// RPZEntries lists the policy of every served domain: the case's policy
// from rpz.cases, else rpz.policy.
func RPZEntries(cfg config.Config, served []ServedDomain) ([]rpz.Entry, error) {
	pol, err := rpzPolicies(cfg)
	if err != nil {
		return nil, err
	}
	out := make([]rpz.Entry, len(served))
	for i, sd := range served {
		out[i] = rpz.Entry{Name: sd.Domain.Name, Policy: pol.Of(sd.Domain.Case)}
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

// followServed publishes what the served set's steps change on the
// transfer server: the RPZ feed's versions, journaled for IXFR, and a
// NOTIFY for each sinkhole zone that came (secondaries transfer the
// sinkhole zones; the policy zone's NOTIFY goes with its version). The
// NOTIFYs go out in the background: a full load of a million zones must
// not wait for them. stop ends the following, stops xs (which ends their
// retries; stopping it again is harmless) and waits for them.
func followServed(cfg config.Config, served *servedset.Set, xs *xfr.Server, log *slog.Logger) (stop func(), err error) {
	pol, err := rpzPolicies(cfg)
	if err != nil {
		return nil, err
	}
	feed, err := rpz.NewFeed(RPZConfig(cfg), pol)
	if err != nil {
		return nil, err
	}
	notify := len(cfg.Transfer.Notify) > 0
	var notifying sync.WaitGroup
	cancel := served.Subscribe(func(u servedset.Update) {
		if z, st := feed.Next(u); z != nil {
			var d *xfr.Diff
			if st != nil {
				d = &xfr.Diff{Del: st.Del, Add: st.Add}
			}
			if err := xs.Publish(z.Name(), z, d); err != nil {
				log.Error("publishing the rpz", "serial", z.SOA().Serial, "err", err)
			}
		}
		if !notify {
			return
		}
		var added []string
		if u.Delta == nil {
			for name := range u.New.All() {
				if _, ok := u.Old.Has(name); !ok {
					added = append(added, name)
				}
			}
		} else {
			for _, z := range u.Delta.Put {
				if _, ok := u.Old.Has(z.Name); !ok {
					added = append(added, z.Name)
				}
			}
		}
		if len(added) > 0 {
			notifying.Go(func() { xs.Notify(added...) })
		}
	})
	return func() {
		cancel()
		_ = within(5*time.Second, xs.Shutdown)()
		notifying.Wait()
	}, nil
}
