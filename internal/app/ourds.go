package app

import (
	"context"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/dnssec"
)

// ourDS gives the registry (registry.Config.OurDS) the DS records of our
// published keys for a zone: those of its case's keys that are not
// removed, when dns.dnssec signs the case; none otherwise. A key of a
// case that no longer signs is not served, so its DS at the parent is as
// stale as the registrant's.
type ourDS struct{ keys *Keys }

// ourDSTimeout bounds the database reads of one look-up.
const ourDSTimeout = 10 * time.Second

func (o *ourDS) of(zone string) []*dns.DS {
	if o.keys == nil {
		return nil
	}
	return o.keys.OurDS(zone)
}

// OurDS returns the DS records of the published keys of zone's case, when
// dns.dnssec signs it; none when it does not, or the zone or its keys
// cannot be read (then its DS records at the parent count as stale, which
// is the safe side: a registry is asked to look).
func (k *Keys) OurDS(zone string) []*dns.DS {
	ctx, cancel := context.WithTimeout(context.Background(), ourDSTimeout)
	defer cancel()
	d, err := k.Registry.GetDomain(ctx, zone)
	if err != nil || !k.Cfg.DNS.DNSSEC.Signs(d.Case) {
		return nil
	}
	infos, err := k.Store.List(ctx, d.Case)
	if err != nil {
		return nil
	}
	var out []*dns.DS
	for _, in := range infos {
		if in.Case != d.Case || in.State == dnssec.StateRemoved {
			continue
		}
		key := dnssec.Key{Algorithm: in.Algorithm, Flags: in.Flags, PublicKey: in.PublicKey}
		if ds := key.DS(d.Name); ds != nil {
			out = append(out, ds)
		}
	}
	return out
}
