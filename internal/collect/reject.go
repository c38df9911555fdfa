package collect

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Kinds of what the collector refuses, the label of
// takedown_collect_rejected_total. Each is counted, logged at most once per
// kind and sensor every 10 minutes (with the count of those not logged),
// acknowledged, and never stored.
const (
	// RejectOversized: a message larger than MaxMessageBytes.
	RejectOversized = "oversized"
	// RejectUnknownSensor: a message on the subject of a sensor that is
	// not configured.
	RejectUnknownSensor = "unknown_sensor"
	// RejectBatch: a message that is not a valid batch (bus.DecodeBatch).
	RejectBatch = "batch"
	// RejectSensorMismatch: a batch that names another sensor than its
	// subject's.
	RejectSensorMismatch = "sensor_mismatch"
	// RejectEvent: a record that is not an event or not a valid one; it
	// goes to the quarantine.
	RejectEvent = "event"
	// RejectEventSensor: an event that names another sensor than its
	// batch's.
	RejectEventSensor = "event_sensor"
	// RejectZone: an event of a zone the central does not serve.
	RejectZone = "zone"
	// RejectRefused: an event the store refused; it goes to the
	// quarantine.
	RejectRefused = "refused"
	// RejectHeartbeat: a heartbeat that does not decode, or of a sensor
	// that is not configured.
	RejectHeartbeat = "heartbeat"
)

// rejectKinds are the kinds, for the metric's labels.
var rejectKinds = []string{RejectOversized, RejectUnknownSensor, RejectBatch, RejectSensorMismatch,
	RejectEvent, RejectEventSensor, RejectZone, RejectRefused, RejectHeartbeat}

// reject counts one refusal of kind from sensor (the subject's sensor,
// configured or not) and logs it unless one of its kind and sensor was
// logged within the throttle's period.
func (c *Collector) reject(kind, sensor, reason string, attrs ...any) {
	c.m.rejected.WithLabelValues(kind).Inc()
	c.mu.Lock()
	c.rejected[kind]++
	if s, ok := c.sensors[sensor]; ok {
		s.rejected++
	}
	c.mu.Unlock()
	if len(sensor) > 64 {
		sensor = sensor[:64] + "..."
	}
	key := kind + "/" + sensor
	if _, ok := c.sensors[sensor]; !ok {
		// Unknown names are not trusted to be few: one line for all.
		key = kind + "/?"
	}
	if suppressed, ok := c.rejects.allow(key); ok {
		c.log.Warn("refused: "+reason, append([]any{"kind", kind, "sensor", sensor, "suppressed", suppressed}, attrs...)...)
	}
}

// throttle lets a line of each key through once every period, and counts
// the ones it holds back.
type throttle struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*throttled
}

type throttled struct {
	last       time.Time
	suppressed int
}

// maxThrottleKeys bounds the keys; past it, the oldest are forgotten.
const maxThrottleKeys = 1024

// allow reports whether a line of key may be logged now, and how many
// were held back since the last one.
func (t *throttle) allow(key string) (suppressed int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.keys == nil {
		t.keys = map[string]*throttled{}
	}
	k := t.keys[key]
	if k == nil {
		if len(t.keys) >= maxThrottleKeys {
			for name, v := range t.keys {
				if now.Sub(v.last) >= t.every {
					delete(t.keys, name)
				}
			}
		}
		if len(t.keys) >= maxThrottleKeys {
			return 0, false
		}
		t.keys[key] = &throttled{last: now}
		return 0, true
	}
	if now.Sub(k.last) < t.every {
		k.suppressed++
		return 0, false
	}
	suppressed = k.suppressed
	k.last, k.suppressed = now, 0
	return suppressed, true
}

// logErr logs an error of the stream or the store at most once a minute
// per key while it lasts.
func (c *Collector) logErr(key, msg string, attrs ...any) {
	if suppressed, ok := c.errs.allow(key); ok {
		c.log.Log(context.Background(), slog.LevelError, msg, append(attrs, "suppressed", suppressed)...)
	}
}
