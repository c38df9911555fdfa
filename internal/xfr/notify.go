package xfr

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// maxNotifyInFlight bounds the NOTIFY exchanges in flight over all zones
// and targets.
const maxNotifyInFlight = 64

// Notify sends NOTIFY for each named zone, journaled or from Fallback, to
// every cfg.Notify target in the background, e.g. after the sinkhole zones
// changed. SetZone notifies by itself. It blocks only while more than 64
// NOTIFY exchanges are in flight. Names that are not served are skipped.
func (s *Server) Notify(zones ...string) {
	for _, name := range zones {
		name = dns.CanonicalName(name)
		if _, _, soa := s.content(name); soa != nil {
			s.notifyAll(name, soa)
		}
	}
}

// notifyAll sends NOTIFY for zone to every cfg.Notify target in the
// background. A newer version cancels the retries for an older one.
func (s *Server) notifyAll(zone string, soa *dns.SOA) {
	if len(s.cfg.Notify) == 0 || s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.mu.Lock()
	if c := s.notifyCancel[zone]; c != nil {
		c()
	}
	s.notifyCancel[zone] = cancel
	s.mu.Unlock()
	for _, target := range s.cfg.Notify {
		select {
		case s.notifySem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		s.wg.Go(func() {
			defer func() { <-s.notifySem }()
			err := s.notify(ctx, zone, soa, target)
			switch {
			case err == nil:
				s.met.notifies.WithLabelValues("sent").Inc()
				s.log.Debug("notify sent", "zone", zone, "serial", soa.Serial, "target", target)
			case ctx.Err() != nil: // superseded or shutting down
			default:
				s.met.notifies.WithLabelValues("failed").Inc()
				s.log.Warn("notify failed", "zone", zone, "serial", soa.Serial, "target", target, "err", err)
			}
		})
	}
}

func (s *Server) notify(ctx context.Context, zone string, soa *dns.SOA, target string) error {
	c := &dns.Client{Net: "udp", Timeout: s.cfg.NotifyTimeout}
	var key string
	if s.cfg.NotifyKey != "" {
		key = dns.CanonicalName(s.cfg.NotifyKey)
		c.TsigSecret = map[string]string{key: s.keys[key]}
	}
	// Config.NotifyAttempts tries, the wait doubling from NotifyBackoff.
	wait := s.cfg.NotifyBackoff
	var err error
	for attempt := range s.cfg.NotifyAttempts {
		if attempt > 0 {
			s.met.notifies.WithLabelValues("retried").Inc()
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			wait *= 2
		}
		m := new(dns.Msg)
		m.SetNotify(zone)
		m.Answer = []dns.RR{soa}
		if key != "" {
			m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
		}
		var r *dns.Msg
		r, _, err = c.ExchangeContext(ctx, m, target)
		if err != nil {
			err = fmt.Errorf("notify %s to %s: %w", zone, target, err)
			continue
		}
		if r.Rcode != dns.RcodeSuccess {
			err = fmt.Errorf("notify %s to %s: %s", zone, target, dns.RcodeToString[r.Rcode])
			continue
		}
		return nil
	}
	return err
}
