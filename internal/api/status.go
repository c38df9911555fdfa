package api

import (
	"context"
	"net/http"
	"time"

	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/registry"
)

// Status is the pipeline at a glance, as `takedown status` shows it: what
// comes in, what is stored, what waits in the spool and what was dropped,
// the enrichment databases and the store.
type Status struct {
	Time time.Time `json:"time"`
	// Serving is false when no `takedown serve` runs: then only the files
	// (store, spool) are described.
	Serving bool   `json:"serving"`
	Sensor  string `json:"sensor,omitempty"`
	// Uptime of serve, in seconds.
	Uptime float64 `json:"uptime_seconds,omitempty"`

	Pipeline  PipelineStatus   `json:"pipeline"`
	Spool     SpoolStatus      `json:"spool"`
	Store     StoreStatus      `json:"store"`
	Databases []DatabaseStatus `json:"databases"`
	// Today is the live count of unique hosts per family for the current
	// UTC day.
	Today []UniqueToday `json:"today"`
	// Quarantine counts the records that the store could never take, set
	// aside (takedown quarantine).
	Quarantine quarantine.Summary `json:"quarantine"`

	// Role is the serve's role: "" (everything in one process), sensor
	// or central.
	Role string `json:"role,omitempty"`
	// Sensors are, on the central, the configured sensors as their
	// heartbeats and the events stream describe them.
	Sensors []SensorStatus `json:"sensors,omitempty"`
	// Stream is, on the central, the events the stream holds that the
	// central has not stored yet.
	Stream *StreamStatus `json:"stream,omitempty"`
	// Uplink is, on a sensor, its link to the central.
	Uplink *UplinkStatus `json:"uplink,omitempty"`
	// Evidence is the transparency log, where it is on (evidence.enabled).
	Evidence *EvidenceStatus `json:"evidence,omitempty"`
	// DNSSEC is what the sinkhole signs with, from the served set: where
	// a case signs.
	DNSSEC *DNSSECStatus `json:"dnssec,omitempty"`
}

// DNSSECStatus counts the cases that sign and their keys in the served
// set.
type DNSSECStatus struct {
	SignedCases int `json:"signed_cases"`
	// Keys counts the keys by state (published, active, retired).
	Keys map[string]int `json:"keys"`
}

// EvidenceStatus is the transparency log: its size and its last signed
// checkpoint.
type EvidenceStatus struct {
	Origin string `json:"origin"`
	// Key is the note verifier key of its checkpoints.
	Key string `json:"key,omitempty"`
	// Size is the number of leaves; CheckpointSize the tree size of the
	// last checkpoint, signed at CheckpointAt, CheckpointAge seconds ago.
	Size           int64     `json:"size"`
	CheckpointSize int64     `json:"checkpoint_size"`
	CheckpointAt   time.Time `json:"checkpoint_at,omitzero"`
	CheckpointAge  float64   `json:"checkpoint_age_seconds,omitempty"`
	// Error is why the last checkpoint or append failed; empty when none did.
	Error string `json:"error,omitempty"`
}

// SensorStatus is one sensor, seen from the central.
type SensorStatus struct {
	ID string `json:"id"`
	// LastSeen is the time of its last heartbeat (zero: never, since the
	// central started); Up is set while heartbeats keep coming.
	LastSeen time.Time `json:"last_seen,omitzero"`
	Up       bool      `json:"up"`
	// EventsPerSecond is the rate of its events stored over the last
	// minute; Stored counts them since the central started.
	EventsPerSecond float64 `json:"events_per_second"`
	Stored          uint64  `json:"stored"`
	// Rejected counts its records refused (see takedown_collect_rejected_total).
	Rejected uint64 `json:"rejected"`
	// What its last heartbeat said: the spool's bytes (and an estimate of
	// the events) the stream has not acknowledged, the served set's serial
	// and size it answers from.
	BacklogBytes   int64  `json:"backlog_bytes"`
	BacklogRecords int64  `json:"backlog_records"`
	ServedSerial   uint32 `json:"served_serial"`
	ServedZones    int    `json:"served_zones"`
	Dropped        uint64 `json:"dropped"`
}

// StreamStatus is the central's view of the events stream.
type StreamStatus struct {
	// Pending counts the messages (batches of events) of the stream that
	// the central has not stored yet.
	Pending uint64 `json:"pending"`
	// Error is why the central cannot read the stream now; empty when it can.
	Error string `json:"error,omitempty"`
}

// UplinkStatus is a sensor's link to the central.
type UplinkStatus struct {
	Connected bool `json:"connected"`
	// Published counts the events the stream acknowledged since serve
	// started; BacklogBytes is what the spool holds that it has not.
	Published    uint64    `json:"published"`
	BacklogBytes int64     `json:"backlog_bytes"`
	LastAck      time.Time `json:"last_ack,omitzero"`
	Error        string    `json:"error,omitempty"`
	// ServedSerial is the serial of the served set the sensor answers
	// from, ServedZones its size, ServedApplied when it last changed.
	ServedSerial  uint32    `json:"served_serial"`
	ServedZones   int       `json:"served_zones"`
	ServedApplied time.Time `json:"served_applied,omitzero"`
}

// PipelineStatus counts events since serve started; rates are per second
// over the last few seconds.
type PipelineStatus struct {
	Recorded uint64 `json:"recorded"`
	Stored   uint64 `json:"stored"`
	// Dropped counts every event lost on its way to the disk: refused by
	// a full spool or a filesystem below its reserve, or lost to a failed
	// write (SpoolStatus has the reasons).
	Dropped uint64 `json:"dropped"`
	// Invalid counts the records that could not be stored; Quarantined of
	// them are kept in the quarantine.
	Invalid       uint64  `json:"invalid"`
	Quarantined   uint64  `json:"quarantined"`
	StoreFailures uint64  `json:"store_failures"`
	RecordRate    float64 `json:"record_rate"`
	StoreRate     float64 `json:"store_rate"`
	// Backlog is the events in the spool not yet stored, estimated from
	// BacklogBytes, the bytes on disk (and buffered) after the stored
	// position.
	Backlog      uint64 `json:"backlog"`
	BacklogBytes int64  `json:"backlog_bytes"`
	// Lag is how long the oldest unstored event has waited, in seconds.
	Lag float64 `json:"lag_seconds"`
	// WriterRaised is set while the store writer runs in the normal CPU
	// class because the lag passed pipeline.max_lag_s.
	WriterRaised bool `json:"writer_raised"`
	// StoreError is why the store takes no batch, while it refuses every
	// one; empty otherwise.
	StoreError string `json:"store_error,omitempty"`
	// SpoolNote explains a spool that did not match the store's saved
	// position at the start.
	SpoolNote string `json:"spool_note,omitempty"`
	// LastAppend is the duration of the last store append, in seconds.
	LastAppend float64 `json:"last_append_seconds"`
}

// SpoolStatus describes the disk spool.
type SpoolStatus struct {
	Dir      string `json:"dir"`
	Bytes    int64  `json:"bytes"`
	MaxBytes int64  `json:"max_bytes"`
	Segments int    `json:"segments"`
	// Damaged counts records found damaged (bad CRC, cut short) and
	// skipped.
	Damaged uint64 `json:"damaged"`
	// The events dropped since serve started, by reason: the spool held
	// its limit (or its memory buffer was full), its filesystem was below
	// the free-space reserve, or a write failed.
	DroppedFull    uint64 `json:"dropped_full"`
	DroppedReserve uint64 `json:"dropped_reserve"`
	DroppedWrite   uint64 `json:"dropped_write_error"`
	// FreeBytes is the free space of the spool's filesystem, ReserveBytes
	// the part kept for the store; LowSpace is set while below it.
	FreeBytes    int64 `json:"free_bytes"`
	ReserveBytes int64 `json:"reserve_bytes"`
	LowSpace     bool  `json:"low_space,omitempty"`
	// WriteError is the last write error while writes fail.
	WriteError string `json:"write_error,omitempty"`
}

// StoreStatus describes the event store.
type StoreStatus struct {
	// Engine keeps the events: duckdb or clickhouse.
	Engine string `json:"engine,omitempty"`
	// Path and Bytes are the DuckDB file and its size: the registry's,
	// and the events' with the duckdb engine.
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	// Address is where ClickHouse keeps the events: its servers and
	// database ("127.0.0.1:9000/takedown").
	Address string `json:"address,omitempty"`

	Events int64     `json:"events"`
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
	// Error says why the store could not be read: the engine does not
	// answer (the events wait in the spool meanwhile).
	Error string `json:"error,omitempty"`
}

// DatabaseStatus describes one enrichment database.
type DatabaseStatus struct {
	Path string `json:"path"`
	// Kind is the detected layout, e.g. GeoLite2-City, iptoasn, rpsl.
	Kind      string    `json:"kind,omitempty"`
	BuildDate time.Time `json:"build_date,omitzero"`
	Records   int64     `json:"records,omitempty"`
	// Error is why the file is not in use; empty when it is.
	Error string `json:"error,omitempty"`
}

// UniqueToday is one family's live unique counts of the day.
type UniqueToday struct {
	Family string `json:"family"`
	Hosts  uint64 `json:"hosts"`
	BotIDs uint64 `json:"bot_ids"`
	Exact  bool   `json:"exact"`
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if h.cfg.Status == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no status is available", nil)
		return nil
	}
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	st, err := h.cfg.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// Status asks the server for its status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, "", &st)
	return st, err
}
