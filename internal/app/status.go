package app

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/servedset"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/uniq"
)

// OfflineStatus describes the files of a takedown that no serve runs: the
// store, what the spool holds (events that the next serve stores first)
// and, when db (the takedown database file) holds one, the evidence log.
func OfflineStatus(ctx context.Context, cfg config.Config, st EventStore, db *sql.DB) (api.Status, error) {
	s := api.Status{Time: time.Now().UTC(), Sensor: cfg.Sensor, Databases: []api.DatabaseStatus{}, Today: []api.UniqueToday{}}
	s.Spool = api.SpoolStatus{Dir: cfg.Pipeline.SpoolDir, MaxBytes: int64(cfg.Pipeline.SpoolMaxMB) << 20}
	s.Spool.Bytes, s.Spool.Segments = dirFiles(cfg.Pipeline.SpoolDir, ".seg")
	spaceStatus(cfg, &s.Spool)
	var err error
	s.Quarantine, err = quarantine.ReadSummary(cfg.Pipeline.QuarantineDir)
	if err != nil {
		return s, err
	}
	if db != nil {
		if s.Evidence, err = offlineEvidence(ctx, cfg, db, s.Time); err != nil {
			return s, err
		}
	}
	s.Store, err = storeStatus(ctx, cfg, st)
	return s, err
}

// offlineEvidence describes the evidence log in db, nil when it has none.
func offlineEvidence(ctx context.Context, cfg config.Config, db *sql.DB, now time.Time) (*api.EvidenceStatus, error) {
	sum, err := evidence.Peek(ctx, db)
	if err != nil || sum == nil {
		return nil, err
	}
	st := &api.EvidenceStatus{Origin: cfg.Evidence.Origin, Size: sum.Size}
	if vkey, err := EvidenceKey(cfg); err == nil {
		st.Key = vkey
	}
	if c := sum.Last; c != nil {
		st.Origin = c.Origin
		st.CheckpointSize, st.CheckpointAt = c.Size, c.Time
		st.CheckpointAge = now.Sub(c.Time).Seconds()
	}
	return st, nil
}

// spaceStatus fills in the free space of the spool's filesystem and the
// reserve kept on it.
func spaceStatus(cfg config.Config, s *api.SpoolStatus) {
	if cfg.Pipeline.DiskReserveMB > 0 {
		s.ReserveBytes = int64(cfg.Pipeline.DiskReserveMB) << 20
	}
	dir := cfg.Pipeline.SpoolDir
	if _, err := os.Stat(dir); err != nil {
		dir = filepath.Dir(dir)
	}
	if free, err := spool.FreeBytes(dir); err == nil {
		s.FreeBytes = free
		s.LowSpace = s.LowSpace || (s.ReserveBytes > 0 && free < s.ReserveBytes)
	}
}

// storeStatus describes the event store; an engine that does not answer
// is said in its Error, not as an error of the status.
func storeStatus(ctx context.Context, cfg config.Config, st EventStore) (api.StoreStatus, error) {
	where := st.Where()
	ss := api.StoreStatus{Engine: where.Engine, Path: cfg.Store.Path, Address: where.Address}
	if fi, err := os.Stat(cfg.Store.Path); err == nil {
		ss.Bytes = fi.Size()
	}
	if wal, err := os.Stat(cfg.Store.Path + ".wal"); err == nil {
		ss.Bytes += wal.Size()
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		// The rest of the status (the spool's backlog growing, above
		// all) is what the operator needs while the engine is away.
		ss.Error = err.Error()
		return ss, ctx.Err()
	}
	ss.Events, ss.Oldest, ss.Newest = stats.Events, stats.Oldest, stats.Newest
	return ss, nil
}

// dirFiles sums the sizes of the files in dir whose names end in suffix.
func dirFiles(dir, suffix string) (bytes int64, n int) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), suffix) {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			bytes += fi.Size()
			n++
		}
		return nil
	})
	return bytes, n
}

// statusSource answers GET /v1/status for a running serve.
type statusSource struct {
	cfg   config.Config
	st    EventStore
	sp    *spool.Spool
	pipe  *pipeline.Pipeline
	enr   *enrich.Enricher
	hosts *uniq.Counter
	quar  *quarantine.Quarantine
	start time.Time
	// col is the central's collector; nil elsewhere.
	col *collect.Collector
	// evid is the evidence log; nil when it is off.
	evid *evidenceLog
	// served is the served set, for the DNSSEC line; nil before it is made.
	served *servedset.Set

	mu   sync.Mutex
	prev pipeline.Stats // at prevT, for the rates
	prT  time.Time
	rate [2]float64 // recorded, stored per second
}

func newStatusSource(cfg config.Config, st EventStore, sp *spool.Spool, pipe *pipeline.Pipeline,
	enr *enrich.Enricher, hosts *uniq.Counter, quar *quarantine.Quarantine, start time.Time) *statusSource {
	return &statusSource{cfg: cfg, st: st, sp: sp, pipe: pipe, enr: enr, hosts: hosts, quar: quar, start: start, prT: start}
}

// rates returns events recorded and stored per second since the previous
// call at least a second ago (or since start).
func (s *statusSource) rates(now time.Time, ps pipeline.Stats) (float64, float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dt := now.Sub(s.prT).Seconds(); dt >= 1 {
		s.rate[0] = float64(ps.Recorded-s.prev.Recorded) / dt
		s.rate[1] = float64(ps.Stored-s.prev.Stored) / dt
		s.prev, s.prT = ps, now
	}
	return s.rate[0], s.rate[1]
}

func (s *statusSource) status(ctx context.Context) (api.Status, error) {
	now := time.Now().UTC()
	ps := s.pipe.Stats()
	rr, sr := s.rates(now, ps)
	out := api.Status{
		Time: now, Serving: true, Sensor: s.cfg.Sensor, Uptime: now.Sub(s.start).Seconds(),
		Pipeline: api.PipelineStatus{
			Recorded: ps.Recorded, Stored: ps.Stored, Dropped: ps.Dropped, Invalid: ps.Invalid, Quarantined: ps.Quarantined,
			StoreFailures: ps.StoreFailures, RecordRate: rr, StoreRate: sr,
			Backlog: ps.Backlog, BacklogBytes: ps.BacklogBytes, Lag: ps.Lag.Seconds(), WriterRaised: ps.WriterRaised,
			StoreError: ps.StoreError, SpoolNote: ps.SpoolNote, LastAppend: ps.LastAppend.Seconds(),
		},
		Databases:  []api.DatabaseStatus{},
		Today:      []api.UniqueToday{},
		Quarantine: s.quar.Summary(),
	}
	ss := s.sp.Stats()
	out.Spool = api.SpoolStatus{Dir: s.cfg.Pipeline.SpoolDir, Bytes: ss.Bytes, MaxBytes: int64(s.cfg.Pipeline.SpoolMaxMB) << 20,
		Segments: ss.Segments, Damaged: ss.Damaged, DroppedFull: ss.DroppedFull + ss.DroppedBuffer,
		DroppedReserve: ss.DroppedReserve, DroppedWrite: ss.DroppedWrite, LowSpace: ss.LowSpace}
	if err := s.sp.WriteError(); err != nil {
		out.Spool.WriteError = err.Error()
	}
	spaceStatus(s.cfg, &out.Spool)
	for _, src := range s.enr.Sources() {
		d := api.DatabaseStatus{Path: src.Path, Kind: src.Kind, BuildDate: src.Built, Records: int64(src.Records)}
		if src.Layout != "" {
			d.Kind = string(src.Layout)
		}
		if src.Err != nil {
			d.Error = src.Err.Error()
		}
		out.Databases = append(out.Databases, d)
	}
	for _, c := range s.hosts.Day(now) {
		out.Today = append(out.Today, api.UniqueToday{Family: c.Family, Hosts: c.Hosts, BotIDs: c.BotIDs, Exact: c.Exact})
	}
	if s.col != nil {
		out.Role = config.RoleCentral
		out.Sensors = sensorsStatus(s.col.Sensors(), now)
		st := s.col.Stats()
		out.Stream = &api.StreamStatus{Pending: uint64(max(st.Pending, 0)), Error: st.LastError}
	}
	if s.evid != nil {
		out.Evidence = s.evid.status(ctx, now)
	}
	if s.served != nil {
		if st := keyCounts(s.served.Load()); st.SignedCases > 0 {
			out.DNSSEC = st
		}
	}
	var err error
	out.Store, err = storeStatus(ctx, s.cfg, s.st)
	return out, err
}

// sensorsUp is how long a sensor counts as up after its last heartbeat:
// three heartbeats of the default interval.
const sensorsUp = 15 * time.Second

// sensorsStatus is the API's form of the collector's sensors.
func sensorsStatus(ss []collect.SensorStatus, now time.Time) []api.SensorStatus {
	out := make([]api.SensorStatus, 0, len(ss))
	for _, s := range ss {
		a := api.SensorStatus{ID: s.Sensor, LastSeen: s.LastSeen, Up: !s.LastSeen.IsZero() && now.Sub(s.LastSeen) < sensorsUp,
			EventsPerSecond: s.EventsPerSecond, Stored: s.Stored, Rejected: s.Rejected}
		if hb := s.Heartbeat; hb != nil {
			a.BacklogBytes, a.BacklogRecords = hb.BacklogBytes, hb.BacklogRecords
			a.ServedSerial, a.ServedZones, a.Dropped = hb.ServedSerial, hb.ServedZones, hb.Dropped
		}
		out = append(out, a)
	}
	return out
}
