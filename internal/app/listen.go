package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/listen/certs"
	"github.com/takedown-project/takedown/internal/listen/httpsink"
)

// zoneFinder attributes a host name to a seized zone, from the DNS
// sinkhole's snapshot of the served zones. It answers "not seized" when the
// DNS sinkhole is off.
type zoneFinder struct{ z zoneSource }

// zoneSource is what dnssink.Server offers.
type zoneSource interface {
	Zone(host string) (zone, caseName, family string, ok bool)
}

func (f zoneFinder) Zone(host string) (zone, caseName, family string, ok bool) {
	if f.z == nil {
		return "", "", "", false
	}
	return f.z.Zone(host)
}

// listeners are the sinkhole listeners that bots connect to.
type listeners struct {
	http *httpsink.Server
}

// startListeners starts every listener the config names; stop shuts them
// down. ca is the certificate authority of HTTPS (and SMTP STARTTLS).
func startListeners(ctx context.Context, cfg config.Config, rec recorder, rules *classify.Holder, zones zoneFinder,
	log *slog.Logger, reg prometheus.Registerer) (*listeners, []func(context.Context) error, error) {
	var ls listeners
	var stops []func(context.Context) error
	if len(cfg.Listen.HTTP)+len(cfg.Listen.HTTPS) > 0 {
		var ca *certs.Authority
		if len(cfg.Listen.HTTPS) > 0 {
			var err error
			if ca, err = certs.Open(certs.Config{Dir: cfg.Listen.CADir}); err != nil {
				return nil, stops, fmt.Errorf("listen.ca_dir: %w", err)
			}
		}
		hs, err := httpsink.New(httpsink.Config{
			HTTP: cfg.Listen.HTTP, HTTPS: cfg.Listen.HTTPS, Sensor: cfg.Sensor, Certs: ca,
			Classifier: rules, Zones: zones, Recorder: rec, DefaultStatus: cfg.Listen.DefaultStatus,
			MaxBodyBytes: cfg.Listen.MaxBodyBytes, HeadBytes: cfg.Listen.HeadBytes,
			MaxConns: cfg.Listen.MaxConns, MaxConnsPerIP: cfg.Listen.MaxConnsPerIP,
			Logger: log.With("component", "http"), Registerer: reg,
		})
		if err != nil {
			return nil, stops, fmt.Errorf("listen: %w", err)
		}
		if err := hs.Start(ctx); err != nil {
			return nil, stops, fmt.Errorf("listen.http/https: %w", err)
		}
		stops = append(stops, hs.Shutdown)
		ls.http = hs
		h, s := hs.Addrs()
		log.Info("http listeners started", "http", fmt.Sprint(h), "https", fmt.Sprint(s))
	}
	return &ls, stops, nil
}
