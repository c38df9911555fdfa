package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/listen/certs"
	"github.com/takedown-project/takedown/internal/listen/httpsink"
	"github.com/takedown-project/takedown/internal/listen/rawsink"
	"github.com/takedown-project/takedown/internal/listen/smtpsink"
)

// zoneSource attributes a host name to a seized zone: the served set
// (servedset.Set), whether or not the DNS sinkhole runs.
type zoneSource interface {
	Zone(host string) (zone, caseName, family string, ok bool)
}

// startListeners starts every listener the config names and returns their
// Shutdown methods, also when it fails half-way.
func startListeners(ctx context.Context, cfg config.Config, rec recorder, rules *classify.Holder, zones zoneSource,
	log *slog.Logger, reg prometheus.Registerer) ([]func(context.Context) error, error) {
	var stops []func(context.Context) error
	// One certificate authority for HTTPS and SMTP STARTTLS.
	var ca *certs.Authority
	if len(cfg.Listen.HTTPS)+len(cfg.Listen.SMTP) > 0 {
		var err error
		if ca, err = certs.Open(certs.Config{Dir: cfg.Listen.CADir}); err != nil {
			return stops, fmt.Errorf("listen.ca_dir: %w", err)
		}
	}
	if len(cfg.Listen.HTTP)+len(cfg.Listen.HTTPS) > 0 {
		hs, err := httpsink.New(httpsink.Config{
			HTTP: cfg.Listen.HTTP, HTTPS: cfg.Listen.HTTPS, Sensor: cfg.Sensor, Certs: ca,
			Classifier: rules, Zones: zones, Recorder: rec, DefaultStatus: cfg.Listen.DefaultStatus,
			MaxBodyBytes: cfg.Listen.MaxBodyBytes, HeadBytes: cfg.Listen.HeadBytes,
			MaxConns: cfg.Listen.MaxConns, MaxConnsPerIP: cfg.Listen.MaxConnsPerIP, Loops: cfg.Listen.HTTPLoops,
			DeferAccept: time.Duration(cfg.Listen.DeferAcceptS) * time.Second,
			Logger:      log, Registerer: reg,
		})
		if err != nil {
			return stops, fmt.Errorf("listen: %w", err)
		}
		if err := hs.Start(ctx); err != nil {
			return stops, fmt.Errorf("listen.http/https: %w", err)
		}
		stops = append(stops, hs.Shutdown)
		a, n := hs.Addrs(), len(cfg.Listen.HTTP)
		log.Info("http listeners started", "http", fmt.Sprint(a[:n]), "https", fmt.Sprint(a[n:]))
	}
	if len(cfg.Listen.SMTP) > 0 {
		ss, err := smtpsink.New(smtpsink.Config{
			Listen: cfg.Listen.SMTP, Sensor: cfg.Sensor, TLS: ca.TLSConfig(),
			Classifier: rules, Zones: zones, Recorder: rec, HeadBytes: cfg.Listen.HeadBytes,
			MaxConns: cfg.Listen.MaxConns, MaxConnsPerIP: cfg.Listen.MaxConnsPerIP,
			Logger: log, Registerer: reg,
		})
		if err != nil {
			return stops, fmt.Errorf("listen.smtp: %w", err)
		}
		if err := ss.Start(ctx); err != nil {
			return stops, fmt.Errorf("listen.smtp: %w", err)
		}
		stops = append(stops, ss.Shutdown)
		log.Info("smtp listener started", "addrs", fmt.Sprint(ss.Addrs()))
	}
	if len(cfg.Listen.TCP)+len(cfg.Listen.UDP) > 0 {
		rs, err := rawsink.New(rawsink.Config{
			TCP: cfg.Listen.TCP, UDP: cfg.Listen.UDP, Sensor: cfg.Sensor, HeadBytes: cfg.Listen.HeadBytes,
			Classifier: rules, Recorder: rec, MaxConns: cfg.Listen.MaxConns, MaxConnsPerIP: cfg.Listen.MaxConnsPerIP,
			Logger: log, Registerer: reg,
		})
		if err != nil {
			return stops, fmt.Errorf("listen.tcp/udp: %w", err)
		}
		if err := rs.Start(ctx); err != nil {
			return stops, fmt.Errorf("listen.tcp/udp: %w", err)
		}
		stops = append(stops, rs.Shutdown)
		a, n := rs.Addrs(), len(cfg.Listen.TCP)
		log.Info("catch-all listeners started", "tcp", fmt.Sprint(a[:n]), "udp", fmt.Sprint(a[n:]))
	}
	return stops, nil
}
