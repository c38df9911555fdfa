package collect

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/takedown-project/takedown/internal/bus"
)

// subjects are the events subjects of the consumer: those of the
// configured sensors for a named central, none (every sensor's) for the
// only central.
func (c *Collector) subjects() []string {
	if c.cfg.Name == "" {
		return nil
	}
	subs := make([]string, len(c.names))
	for i, id := range c.names {
		subs[i] = bus.EventsSubject(id)
	}
	return subs
}

// heartbeat keeps the last valid heartbeat of each configured sensor. It
// runs on the connection's goroutine for the subscription.
func (c *Collector) heartbeat(msg *nats.Msg) {
	sensor := bus.SensorOfSubject(msg.Subject)
	if _, ok := c.sensors[sensor]; !ok {
		c.reject(RejectHeartbeat, sensor, "a heartbeat of a sensor that is not configured")
		return
	}
	hb, err := bus.DecodeHeartbeat(msg.Subject, msg.Data)
	if err != nil {
		c.reject(RejectHeartbeat, sensor, "a heartbeat that does not decode", "err", err)
		return
	}
	now := c.cfg.Now()
	c.mu.Lock()
	s := c.sensors[sensor]
	s.hb, s.seen = hb, now
	c.mu.Unlock()
	c.m.lastSeen.WithLabelValues(sensor).Set(float64(now.UnixNano()) / 1e9)
}

// rateRing counts events per second over the last minute.
type rateRing struct {
	sec    [60]uint64 // events stored in second i%60
	stamps [60]int64  // the unix second each slot counts
}

// add counts n events stored at now.
func (r *rateRing) add(now time.Time, n uint64) {
	s := now.Unix()
	i := s % 60
	if r.stamps[i] != s {
		r.stamps[i], r.sec[i] = s, 0
	}
	r.sec[i] += n
}

// perSecond returns the mean rate over the 60 seconds before now.
func (r *rateRing) perSecond(now time.Time) float64 {
	s := now.Unix()
	var sum uint64
	for i := range r.sec {
		if age := s - r.stamps[i]; age >= 0 && age < 60 {
			sum += r.sec[i]
		}
	}
	return float64(sum) / 60
}
