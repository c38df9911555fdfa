package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/servedset"
	"github.com/takedown-project/takedown/internal/servedsync"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/uplink"
)

// version is takedown's version from the build info, for the heartbeats:
// the module's version, else the VCS revision, else "dev".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "dev"
}

// sensorComponents are the parts of a sensor: the sinks and the spool,
// the served set followed from the central and kept on disk, the uplink
// that publishes the spool to the events stream, and a small API (status,
// metrics, readiness). No registry, no store.
func (s *server) sensorComponents() []component {
	return []component{
		{stopped: "spool closed", start: s.openSensorSpool},
		{name: "served set loaded from disk", start: s.loadServedFromDisk},
		{stopped: "rules watcher stopped", start: s.loadSensorRules},
		{stopped: "SIGHUP handler stopped", start: loop(s.reloads)},
		{stopped: "nats connection closed", start: s.connectNATS},
		{stopped: "uplink stopped", start: s.startUplink},
		{stopped: "served set follower stopped", start: s.startFollower},
		{name: "sinkhole started", stopped: "dns stopped", start: s.startSinkhole},
		{name: "listeners started", start: s.startListeners},
		{stopped: "api stopped", start: s.startSensorAPI},
	}
}

// centralComponents are the parts of the central: those of a single
// serve without the sinks (Effective turns them off), and the NATS side:
// the events stream and its collector, the served set's publisher.
func (s *server) centralComponents() []component {
	var out []component
	for _, c := range s.singleComponents() {
		out = append(out, c)
		if c.stopped == "served set publisher stopped" {
			out = append(out,
				component{stopped: "nats connection closed", start: s.connectNATS},
				component{stopped: "collector stopped", start: s.startCollector},
				component{stopped: "served set sync stopped", start: s.startServedSync},
			)
		}
	}
	return out
}

// servedDir is where a sensor keeps the last served set and rules.
func servedDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "served") }

// openSensorSpool opens the spool of a sensor: everything its sinks
// record waits there until the events stream has it.
func (s *server) openSensorSpool(context.Context) (func() error, error) {
	sp, err := spool.Open(spoolConfig(s.cfg, s.log.With("component", "spool"), s.metrics))
	if err != nil {
		return nil, fmt.Errorf("pipeline.spool_dir: %w", err)
	}
	s.sp = sp
	s.rd.sp = sp
	return sp.Close, nil
}

// loadServedFromDisk makes the served set and loads the last one the
// sensor received, so that it answers at once, with or without NATS.
func (s *server) loadServedFromDisk(context.Context) (func() error, error) {
	s.served = servedset.NewSet()
	if err := registerKeyMetrics(s.metrics, s.served); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(servedDir(s.cfg), 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	serial, err := servedsync.LoadDisk(servedDir(s.cfg), s.served)
	switch {
	case err != nil:
		// A damaged copy is no reason not to start: the central sends
		// the set again.
		s.log.Error("the served set kept on disk cannot be read; waiting for the central's", "err", err)
	case serial == 0:
		s.log.Warn("no served set on disk yet: nothing is answered until the central's arrives")
	default:
		s.log.Info("served set from disk", "serial", serial, "zones", s.served.Load().Len())
	}
	return nil, nil
}

// loadSensorRules loads the classification rules the central sent last
// (the shipped rules until the first arrive) and follows their file.
func (s *server) loadSensorRules(ctx context.Context) (func() error, error) {
	path := filepath.Join(servedDir(s.cfg), "rules.yaml")
	if _, err := os.Stat(path); err != nil {
		path = ""
	}
	rules, err := classify.New(classify.Config{Path: path, Logger: s.log, Registerer: s.metrics})
	if err != nil {
		s.log.Error("the rules kept on disk do not load; the shipped rules serve until the central's arrive", "err", err)
		if rules, err = classify.New(classify.Config{Logger: s.log, Registerer: s.metrics}); err != nil {
			return nil, err
		}
	}
	s.rules = rules
	return loop(func(ctx context.Context) { rules.Run(ctx) })(ctx)
}

// connectNATS connects to the NATS servers; it returns at once, also when
// none answers (the connection keeps trying).
func (s *server) connectNATS(context.Context) (func() error, error) {
	n := s.cfg.NATS
	user := bus.CentralUser
	if s.cfg.Role == config.RoleSensor {
		user = s.cfg.Sensor
	}
	nc, err := bus.Connect(bus.Config{Servers: n.Servers, Credentials: n.Credentials,
		CAFile: n.TLS.CAFile, CertFile: n.TLS.CertFile, KeyFile: n.TLS.KeyFile,
		User: user, Logger: s.log.With("component", "nats")})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	s.nc, s.js = nc, js
	return func() error { return drainConn(nc) }, nil
}

// drainConn closes nc after what it has buffered went out, for at most
// two seconds.
func drainConn(nc *nats.Conn) error {
	if !nc.IsConnected() {
		nc.Close()
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return nil
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		nc.Close()
	}
	return nil
}

// startUplink starts publishing the spool to the events stream; the sinks
// record through it.
func (s *server) startUplink(ctx context.Context) (func() error, error) {
	up, err := uplink.New(uplink.Config{
		Sensor: s.cfg.Sensor, Conn: s.nc, Spool: s.sp, StateDir: s.cfg.DataDir,
		Served: func() (uint32, int) {
			sn := s.served.Load()
			return sn.Serial(), sn.Len()
		},
		Version: version(), Logger: s.log.With("component", "uplink"), Registerer: s.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	s.up = up
	s.rec = uplinkRecorder{up}
	return loop(func(ctx context.Context) {
		if err := up.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("uplink", "err", err)
		}
	})(ctx)
}

// uplinkRecorder adapts the uplink to the sinks' Recorder.
type uplinkRecorder struct{ u *uplink.Uplink }

func (r uplinkRecorder) Record(e *event.Event) { r.u.Record(e) }

// startFollower follows the central's served set and rules.
func (s *server) startFollower(ctx context.Context) (func() error, error) {
	rulesFile := filepath.Join(servedDir(s.cfg), "rules.yaml")
	f, err := servedsync.NewFollower(servedsync.FollowerConfig{
		JS: s.js, Set: s.served, Dir: servedDir(s.cfg), RulesFile: rulesFile,
		DefaultRules: classify.DefaultYAML(), Name: s.cfg.Sensor,
		OnRules: func() {
			var err error
			if s.rules.Path() != rulesFile {
				err = s.rules.SetPath(rulesFile)
			} else {
				err = s.rules.Reload()
			}
			if err != nil {
				s.log.Error("the central's classification rules do not load; the rules in force stay", "err", err)
			}
		},
		Logger: s.log.With("component", "served"), Registerer: s.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("served set follower: %w", err)
	}
	s.follower = f
	return loop(func(ctx context.Context) {
		if err := f.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("served set follower", "err", err)
		}
	})(ctx)
}

// startSensorAPI serves /metrics, /readyz, /healthz and /v1/status.
func (s *server) startSensorAPI(ctx context.Context) (func() error, error) {
	return s.startSmallAPI(s.rd, s.sensorStatus)
}

// sensorStatus is GET /v1/status of a sensor.
func (s *server) sensorStatus(ctx context.Context) (api.Status, error) {
	now := time.Now().UTC()
	us := s.up.Stats()
	out := api.Status{Time: now, Serving: true, Sensor: s.cfg.Sensor, Role: config.RoleSensor,
		Uptime: now.Sub(s.began).Seconds(), Databases: []api.DatabaseStatus{}, Today: []api.UniqueToday{},
		Pipeline: api.PipelineStatus{Recorded: us.Recorded, Dropped: us.Dropped, BacklogBytes: us.BacklogBytes}}
	ss := s.sp.Stats()
	out.Spool = api.SpoolStatus{Dir: s.cfg.Pipeline.SpoolDir, Bytes: ss.Bytes, MaxBytes: int64(s.cfg.Pipeline.SpoolMaxMB) << 20,
		Segments: ss.Segments, Damaged: ss.Damaged, DroppedFull: ss.DroppedFull + ss.DroppedBuffer,
		DroppedReserve: ss.DroppedReserve, DroppedWrite: ss.DroppedWrite, LowSpace: ss.LowSpace}
	spaceStatus(s.cfg, &out.Spool)
	fs := s.follower.Status()
	sn := s.served.Load()
	out.Uplink = &api.UplinkStatus{Connected: us.Connected, Published: us.Published, BacklogBytes: us.BacklogBytes,
		LastAck: us.LastAck, ServedSerial: sn.Serial(), ServedZones: sn.Len(), ServedApplied: fs.Applied}
	out.Uplink.Error = us.LastError
	out.Pipeline.SpoolNote = us.SpoolNote
	return out, nil
}

// startCollector makes sure the events stream exists and starts storing
// what the sensors publish to it.
func (s *server) startCollector(ctx context.Context) (func() error, error) {
	cc := s.collectConfig(s.eventWriter(), &seizedZones{served: s.served, reg: s.local.Registry})
	cc.Observer = s.hosts
	c, err := collect.New(cc)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	s.col = c
	s.status.col = c
	return loop(func(ctx context.Context) {
		if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("collector", "err", err)
		}
	})(ctx)
}

// collectConfig is the collector's config of a central or a collector
// (collector.go): the events of its sensors into store, with zones as its
// check of the events' zones.
func (s *server) collectConfig(store collect.Store, zones collect.Zones) collect.Config {
	n := s.cfg.NATS
	return collect.Config{
		JS: s.js, Sensors: s.cfg.Central.Sensors, Name: s.cfg.Central.Name,
		Replicas: n.Replicas, MaxBytes: int64(n.MaxStreamMB) << 20,
		Store: store, Zones: zones, Classifier: s.rules, Enricher: s.enr, Quarantine: s.quar,
		BatchSize: s.cfg.Pipeline.BatchSize,
		Logger:    s.log.With("component", "collect"), Registerer: s.metrics,
	}
}

// startServedSync publishes the served set and the rules to the sensors.
func (s *server) startServedSync(ctx context.Context) (func() error, error) {
	p, err := servedsync.NewPublisher(servedsync.PublisherConfig{
		JS: s.js, Set: s.served, Replicas: s.cfg.NATS.Replicas,
		Rules: func() []byte {
			if path := s.rules.Path(); path != "" {
				if b, err := os.ReadFile(path); err == nil {
					return b
				}
			}
			return nil
		},
		Logger: s.log.With("component", "served"), Registerer: s.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("served set publisher: %w", err)
	}
	return loop(func(ctx context.Context) {
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("served set publisher", "err", err)
		}
	})(ctx)
}

// seizedZones tells the collector whether a sensor's event is for a zone
// of the takedown: one the central serves now, or one it served when the
// sensor answered and has released since (a sensor that was cut off from
// NATS delivers its backlog after the registry moved on, and what it
// answered then still counts). A name the registry lists but never
// served, or does not know, is refused. Registry lookups are remembered,
// a refusal for a minute (the name may be seized meanwhile), at most
// maxSeizedCache names.
type seizedZones struct {
	served *servedset.Set
	reg    *registry.Registry
	mu     sync.Mutex
	known  map[string]seizedLookup
}

type seizedLookup struct {
	was bool
	at  time.Time
}

const maxSeizedCache = 100_000

func (z *seizedZones) Zone(name string) (zone, caseName, family string, ok bool) {
	if zone, caseName, family, ok = z.served.Zone(name); ok {
		return zone, caseName, family, ok
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	l, seen := z.known[name]
	if !seen || (!l.was && time.Since(l.at) > time.Minute) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := z.reg.GetDomain(ctx, name)
		cancel()
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return "", "", "", false // not remembered: the next asks again
		}
		l = seizedLookup{was: err == nil && d.State != registry.StateListed, at: time.Now()}
		if z.known == nil || len(z.known) >= maxSeizedCache {
			z.known = map[string]seizedLookup{}
		}
		z.known[name] = l
	}
	if !l.was {
		return "", "", "", false
	}
	return name, "", "", true
}
