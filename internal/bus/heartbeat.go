package bus

import (
	"encoding/json"
	"fmt"
	"time"
)

// A Heartbeat is what a sensor says of itself every few seconds on its
// heartbeat subject, for the central's status.
type Heartbeat struct {
	Sensor string    `json:"sensor"`
	Time   time.Time `json:"time"`
	// Started is when the sensor's serve started.
	Started time.Time `json:"started"`
	// Recorded counts the events its sinks recorded since it started,
	// Dropped those its spool could not take.
	Recorded uint64 `json:"recorded"`
	Dropped  uint64 `json:"dropped"`
	// Published counts the records the stream acknowledged since it
	// started.
	Published uint64 `json:"published"`
	// BacklogBytes is what its spool holds that the stream has not
	// acknowledged; BacklogRecords an estimate of the records in it.
	BacklogBytes   int64 `json:"backlog_bytes"`
	BacklogRecords int64 `json:"backlog_records"`
	// ServedSerial is the serial of the served set it answers from, and
	// ServedZones its size.
	ServedSerial uint32 `json:"served_serial"`
	ServedZones  int    `json:"served_zones"`
	// Version is the sensor's takedown version.
	Version string `json:"version,omitempty"`
}

// MaxHeartbeatBytes bounds a heartbeat message.
const MaxHeartbeatBytes = 4096

// Marshal returns the JSON form of h.
func (h *Heartbeat) Marshal() []byte {
	b, _ := json.Marshal(h)
	return b
}

// DecodeHeartbeat reads a heartbeat received on subject: it must be valid
// JSON of a bounded size, and name the sensor of its subject.
func DecodeHeartbeat(subject string, b []byte) (*Heartbeat, error) {
	if len(b) > MaxHeartbeatBytes {
		return nil, fmt.Errorf("heartbeat on %s: %d bytes, at most %d", subject, len(b), MaxHeartbeatBytes)
	}
	var h Heartbeat
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("heartbeat on %s: %w", subject, err)
	}
	if want := SensorOfSubject(subject); h.Sensor != want || !ValidSensorID(h.Sensor) {
		return nil, fmt.Errorf("heartbeat on %s names sensor %q", subject, h.Sensor)
	}
	if h.BacklogBytes < 0 || h.BacklogRecords < 0 {
		return nil, fmt.Errorf("heartbeat of %s: negative backlog", h.Sensor)
	}
	return &h, nil
}
