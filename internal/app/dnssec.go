package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/servedset"
)

// KeyDir is where the DNSSEC private key files of cfg live.
func KeyDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "dnssec") }

// Keys joins the DNSSEC key store to the registry and the config: the keys
// of the cases that dns.dnssec signs, their DS records per zone, and the
// rollover steps (api.DNSSEC, for the API and the CLI's local mode).
type Keys struct {
	Cfg      config.Config
	Store    *dnssec.Store
	Registry *registry.Registry
	// Changed, if set, hears of a case whose keys changed (the served
	// set's publisher puts it again).
	Changed func(caseName string)
	// ParentDS, if set, gives the DS records the last delegation check
	// found at a zone's parent, and whether a check found any answer; a
	// rollover does not finish while a zone's parent holds only the old
	// keys' DS.
	ParentDS func(ctx context.Context, zone string) (ds []*dns.DS, checked bool, err error)
}

var _ api.DNSSEC = (*Keys)(nil)

// keyCounts counts the cases of a served set that sign, and their keys
// by state.
func keyCounts(snap *servedset.Snapshot) *api.DNSSECStatus {
	st := &api.DNSSECStatus{Keys: map[string]int{}}
	for _, c := range snap.Cases() {
		if len(c.Keys) > 0 {
			st.SignedCases++
		}
		for _, k := range c.Keys {
			st.Keys[string(k.State)]++
		}
	}
	return st
}

// keyCollector is takedown_dnssec_keys{state} and
// takedown_dnssec_signed_cases, read from the served set at each scrape:
// what this sinkhole signs with, on a sensor too.
type keyCollector struct {
	set         *servedset.Set
	keys, cases *prometheus.Desc
}

func registerKeyMetrics(reg prometheus.Registerer, set *servedset.Set) error {
	return reg.Register(&keyCollector{set: set,
		keys: prometheus.NewDesc("takedown_dnssec_keys", "DNSSEC keys of the cases in the served set, by state (published, active, retired).",
			[]string{"state"}, nil),
		cases: prometheus.NewDesc("takedown_dnssec_signed_cases", "Cases of the served set whose zones are signed.", nil, nil)})
}

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.keys; ch <- c.cases }

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	st := keyCounts(c.set.Load())
	for _, s := range []dnssec.State{dnssec.StatePublished, dnssec.StateActive, dnssec.StateRetired} {
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(st.Keys[string(s)]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.cases, prometheus.GaugeValue, float64(st.SignedCases))
}

// ForCase gives the keys of a case for the served set: none for a case
// that dns.dnssec does not sign; for one it signs, a key is made at the
// first call (PublisherConfig.Keys).
func (k *Keys) ForCase(ctx context.Context, caseName string) ([]dnssec.Key, error) {
	d := k.Cfg.DNS.DNSSEC
	if !d.Signs(caseName) {
		return nil, nil
	}
	made, err := k.Store.Ensure(ctx, caseName, d.AlgorithmNumber())
	if err != nil {
		return nil, err
	}
	keys, err := k.Store.Keys(ctx, caseName)
	if err == nil && made && len(keys) == 1 {
		err = k.Registry.RecordAccess(ctx, registry.Change{Actor: "serve", Reason: "dns.dnssec signs the case"}, "dnssec.key-made",
			"case:"+caseName, map[string]any{"tag": keys[0].Tag(), "algorithm": keys[0].Algorithm})
	}
	return keys, err
}

// keyError maps the store's errors to the registry's, which the API and
// the CLI know (404, 409; exit 3, 4).
func keyError(err error) error {
	switch {
	case errors.Is(err, dnssec.ErrNotFound):
		return fmt.Errorf("%w (%w)", err, registry.ErrNotFound)
	case errors.Is(err, dnssec.ErrConflict), errors.Is(err, dnssec.ErrTooEarly):
		return fmt.Errorf("%w (%w)", err, registry.ErrIllegalTransition)
	}
	return err
}

// DNSSECKeys lists the keys of a case ("" for all), removed ones too.
func (k *Keys) DNSSECKeys(ctx context.Context, caseName string) ([]dnssec.Info, error) {
	if caseName != "" {
		if _, err := k.Registry.GetCase(ctx, caseName); err != nil {
			return nil, err
		}
	}
	return k.Store.List(ctx, caseName)
}

// zones returns the domains of a case ("" for all) that are not released,
// by case, or the one zone named.
func (k *Keys) zones(ctx context.Context, caseName, zone string) ([]registry.Domain, error) {
	if zone != "" {
		d, err := k.Registry.GetDomain(ctx, zone)
		if err != nil {
			return nil, err
		}
		if caseName != "" && d.Case != caseName {
			return nil, fmt.Errorf("domain %s is in case %s, not %s: %w", d.Name, d.Case, caseName, registry.ErrNotFound)
		}
		return []registry.Domain{d}, nil
	}
	if caseName != "" {
		if _, err := k.Registry.GetCase(ctx, caseName); err != nil {
			return nil, err
		}
	}
	ds, err := k.Registry.ListDomains(ctx, registry.DomainFilter{Case: caseName})
	if err != nil {
		return nil, err
	}
	ds = slices.DeleteFunc(ds, func(d registry.Domain) bool { return d.State == registry.StateReleased })
	slices.SortFunc(ds, func(a, b registry.Domain) int { return strings.Compare(a.Case+" "+a.Name, b.Case+" "+b.Name) })
	return ds, nil
}

// DNSSECDS lists the DS records of the published keys of each zone of a
// case ("" for all), or of one zone.
func (k *Keys) DNSSECDS(ctx context.Context, caseName, zone string) ([]api.DSRecord, error) {
	zs, err := k.zones(ctx, caseName, zone)
	if err != nil {
		return nil, err
	}
	infos, err := k.Store.List(ctx, caseName)
	if err != nil {
		return nil, err
	}
	out := []api.DSRecord{}
	for _, z := range zs {
		for _, in := range infos {
			if in.Case == z.Case && in.State != dnssec.StateRemoved {
				out = append(out, dsRecord(z.Case, z.Name, in))
			}
		}
	}
	return out, nil
}

// keyFile names the private key file of a request in errors.
func keyFile(req api.RolloverRequest) string {
	if req.KeyFile != "" {
		return req.KeyFile
	}
	return "the private key given"
}

func dsRecord(caseName, zone string, in dnssec.Info) api.DSRecord {
	key := dnssec.Key{Algorithm: in.Algorithm, Flags: in.Flags, PublicKey: in.PublicKey}
	ds := key.DS(zone)
	return api.DSRecord{Case: caseName, Zone: zone, KeyTag: ds.KeyTag, Algorithm: ds.Algorithm, DigestType: ds.DigestType,
		Digest: ds.Digest, KeyState: in.State,
		Record: fmt.Sprintf("%s IN DS %d %d %d %s", ds.Hdr.Name, ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)}
}

// DNSSECRollover starts or finishes a rollover of a case's key.
func (k *Keys) DNSSECRollover(ctx context.Context, req api.RolloverRequest, ch registry.Change) (api.RolloverResult, error) {
	res := api.RolloverResult{Case: req.Case, Step: req.Step}
	if _, err := k.Registry.GetCase(ctx, req.Case); err != nil {
		return res, err
	}
	d := k.Cfg.DNS.DNSSEC
	switch req.Step {
	case "start", "import":
		var next *dnssec.Key
		if req.PrivateKey != "" {
			var err error
			if next, err = dnssec.ReadKey([]byte(req.PrivateKey), keyFile(req)); err != nil {
				return res, fmt.Errorf("%w (%w)", err, registry.ErrInvalid)
			}
		}
		var in dnssec.Info
		var err error
		if req.Step == "start" {
			in, err = k.Store.Start(ctx, req.Case, d.AlgorithmNumber(), next)
		} else if next == nil {
			err = fmt.Errorf("import: no private key given: %w", registry.ErrInvalid)
		} else {
			in, err = k.Store.Import(ctx, req.Case, []byte(req.PrivateKey), keyFile(req))
		}
		if err != nil {
			return res, keyError(err)
		}
		res.Added = &in
	case "finish":
		wait := max(d.DSTTL, time.Duration(k.Cfg.DNS.TTL)*time.Second)
		gone, err := k.Store.Finish(ctx, req.Case, dnssec.FinishOptions{Wait: wait, Force: req.Force, Check: k.checkParents})
		if err != nil {
			return res, keyError(err)
		}
		res.Removed = gone
	default:
		return res, fmt.Errorf("rollover step %q: want start or finish: %w", req.Step, registry.ErrInvalid)
	}
	if k.Changed != nil {
		k.Changed(req.Case)
	}
	detail := map[string]any{}
	if res.Added != nil {
		detail["added"] = map[string]any{"tag": res.Added.Tag, "algorithm": res.Added.Algorithm}
	}
	if len(res.Removed) > 0 {
		var tags []uint16
		for _, r := range res.Removed {
			tags = append(tags, r.Tag)
		}
		detail["removed"] = tags
	}
	if req.Force {
		detail["forced"] = true
	}
	if err := k.Registry.RecordAccess(ctx, ch, "dnssec."+req.Step, "case:"+req.Case, detail); err != nil {
		return res, err
	}
	var err error
	res.DS, err = k.DNSSECDS(ctx, req.Case, "")
	return res, err
}

// checkParents refuses to finish while a zone's parent holds DS records of
// the old keys and none of the new one, as the last delegation check found
// them: the zone would go bogus for validating resolvers.
func (k *Keys) checkParents(ctx context.Context, next dnssec.Info, old []dnssec.Info) error {
	if k.ParentDS == nil {
		return nil
	}
	zs, err := k.zones(ctx, next.Case, "")
	if err != nil {
		return err
	}
	var stuck []string
	for _, z := range zs {
		found, checked, err := k.ParentDS(ctx, z.Name)
		if err != nil {
			return err
		}
		if !checked || len(found) == 0 {
			continue
		}
		hasNew := false
		for _, ds := range found {
			if ds.KeyTag == next.Tag && ds.Algorithm == next.Algorithm {
				hasNew = true
			}
		}
		if !hasNew {
			stuck = append(stuck, z.Name)
		}
	}
	if len(stuck) > 0 {
		more := ""
		if len(stuck) > 5 {
			more = fmt.Sprintf(" and %d more", len(stuck)-5)
			stuck = stuck[:5]
		}
		return fmt.Errorf("dnssec: case %s: the parents of %s%s hold no DS of the new key %d (last `domains verify`): have the registries add it, verify again, then finish (or --force): %w",
			next.Case, strings.Join(stuck, ", "), more, next.Tag, dnssec.ErrConflict)
	}
	return nil
}
