package bus

import "github.com/takedown-project/takedown/internal/event"

// Names of the streams, subjects and buckets that sensors and the central
// share. The NATS permissions (deploy/nats) are written against them.
const (
	// EventsStream captures every sensor's events.
	EventsStream = "TAKEDOWN_EVENTS"
	// EventsSubjects is the subject filter of EventsStream.
	EventsSubjects = "takedown.events.*"
	// HeartbeatSubjects matches every sensor's heartbeat.
	HeartbeatSubjects = "takedown.sensors.*"
	// ServedStream holds the served set's deltas.
	ServedStream = "TAKEDOWN_SERVED"
	// ServedDeltaSubject is the subject of the deltas.
	ServedDeltaSubject = "takedown.served.delta"
	// ServedBucket is the object store of the full form ("full") and the
	// classification rules ("rules").
	ServedBucket = "takedown_served"
	// CentralUser is the user name of the central's connection.
	CentralUser = "central"
)

// EventsSubject is the subject sensor publishes its events to.
func EventsSubject(sensor string) string { return "takedown.events." + sensor }

// HeartbeatSubject is the subject of sensor's heartbeats.
func HeartbeatSubject(sensor string) string { return "takedown.sensors." + sensor }

// InboxPrefix is the inbox prefix of user's connection.
func InboxPrefix(user string) string { return "_INBOX_" + user }

// ValidSensorID is event.ValidSensorID: the one rule of a sensor's id.
func ValidSensorID(s string) bool { return event.ValidSensorID(s) }

// SensorOfSubject returns the sensor token of an events or heartbeat
// subject, "" when subject is neither.
func SensorOfSubject(subject string) string {
	for _, p := range []string{"takedown.events.", "takedown.sensors."} {
		if len(subject) > len(p) && subject[:len(p)] == p {
			return subject[len(p):]
		}
	}
	return ""
}
