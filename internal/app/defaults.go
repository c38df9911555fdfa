package app

import (
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/dashboard"
	"github.com/takedown-project/takedown/internal/deliver"
	"github.com/takedown-project/takedown/internal/dnssink"
	"github.com/takedown-project/takedown/internal/enrich"
	"github.com/takedown-project/takedown/internal/listen/httpsink"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/pull"
	"github.com/takedown-project/takedown/internal/rpz"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/users"
	"github.com/takedown-project/takedown/internal/xfr"
)

// Effective returns cfg with the defaults that the capability packages own
// filled in where cfg leaves them at zero (config leaves them so: see
// "Where defaults live" in its package doc): the configuration serve runs
// with, and that `takedown config show` prints. Each value is the
// package's own constant, so that a default is written once.
//
// The listeners' limits and head bytes, one key for the HTTP, SMTP and raw
// listeners alike, take the HTTP listener's defaults.
func Effective(cfg config.Config) config.Config {
	c := &cfg
	zero := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	ms := func(d time.Duration) int { return int(d / time.Millisecond) }
	if c.DNS.TTL == 0 {
		c.DNS.TTL = dnssink.DefaultTTL
	}
	zero(&c.DNS.RRL.IPv4Prefix, dnssink.DefaultRRLIPv4Prefix)
	zero(&c.DNS.RRL.IPv6Prefix, dnssink.DefaultRRLIPv6Prefix)
	if c.Transfer.AllowFrom == nil {
		for _, p := range xfr.DefaultAllowFrom() {
			c.Transfer.AllowFrom = append(c.Transfer.AllowFrom, p.String())
		}
	}
	if c.RPZ.Zone == "" {
		c.RPZ.Zone = strings.TrimSuffix(rpz.DefaultZone, ".")
	}
	zero(&c.Listen.MaxConns, httpsink.DefaultMaxConns)
	zero(&c.Listen.MaxConnsPerIP, httpsink.DefaultMaxConnsPerIP)
	zero(&c.Listen.HeadBytes, httpsink.DefaultHeadBytes)
	if c.Listen.MaxBodyBytes == 0 {
		c.Listen.MaxBodyBytes = httpsink.DefaultMaxBodyBytes
	}
	zero(&c.Listen.DefaultStatus, httpsink.DefaultStatus)
	zero(&c.Listen.DeferAcceptS, int(httpsink.DefaultDeferAccept/time.Second))
	zero(&c.Pipeline.SpoolMaxMB, spool.DefaultMaxBytes>>20)
	zero(&c.Pipeline.SyncMS, ms(spool.DefaultSyncInterval))
	zero(&c.Pipeline.SpoolFlushMS, ms(spool.DefaultFlushInterval))
	zero(&c.Pipeline.FlushMS, ms(pipeline.DefaultFlushInterval))
	zero(&c.Pipeline.MaxLagS, int(pipeline.DefaultMaxLag/time.Second))
	zero(&c.Enrich.CacheSize, enrich.DefaultCacheSize)
	zero(&c.Dashboard.SessionHours, int(users.DefaultSessionTTL/time.Hour))
	zero(&c.Dashboard.IdleMinutes, int(users.DefaultIdleTimeout/time.Minute))
	zero(&c.Dashboard.RefreshMS, ms(dashboard.DefaultRefresh))
	zero(&c.Reports.FeedPerMinute, int(pull.DefaultRate*60))
	zero(&c.Reports.FeedBurst, pull.DefaultBurst)
	zero(&c.Reports.Days, int(pull.DefaultRetention/(24*time.Hour)))
	if c.Store.Engine == config.EngineClickHouse {
		if c.Store.ClickHouse.Database == "" {
			c.Store.ClickHouse.Database = chstore.DefaultDatabase
		}
		zero(&c.Store.ClickHouse.DialTimeoutMS, ms(chstore.DefaultDialTimeout))
	}
	if c.Mail.TLS == "" {
		c.Mail.TLS = string(deliver.TLSRequired)
	}
	// Each role runs its own part: the central no sinks (the sensors do),
	// a sensor no transfer server (the central serves the zones and the
	// RPZ to secondaries and resolvers).
	switch c.Role {
	case config.RoleCentral, config.RoleCollector:
		c.DNS.Listen = []string{}
		c.Listen.HTTP, c.Listen.HTTPS, c.Listen.SMTP = []string{}, []string{}, []string{}
		c.Listen.TCP, c.Listen.UDP = nil, nil
		if c.Role == config.RoleCollector {
			c.Transfer.Listen = []string{}
		}
	case config.RoleSensor:
		c.Transfer.Listen = []string{}
	}
	return cfg
}
