package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/servedset"
)

// The collector role (config.RoleCollector) is one more writer of the
// events into the ClickHouse store that a central reads: when one central
// cannot store what every sensor sends, collectors take the events of some
// sensors each. A collector
//
//   - connects to NATS with the central's credentials, and takes the
//     events of its own sensors (central.sensors) through a consumer of its
//     own (central.name: collect.Config.Name), keeping its mark under
//     collect.MarkSourceOf(name) in the store: the writers' appends run in
//     parallel, each exactly once (chstore's "Exactly once");
//   - follows the served set and the classification rules that the central
//     publishes, as a sensor does, and keeps them in a data directory of
//     its own: it has no registry;
//   - enriches the events (enrich), classifies the DNS ones, and stores
//     them; events it can never store go to its quarantine;
//   - serves /metrics, /readyz (NATS, the store, the served set),
//     /healthz and /v1/status (its sensors, the stream, what it stored).
//
// It has no registry, no DuckDB file, no sinks, no served-set publisher,
// no reports, no dashboard and no retention: the central does all that.
//
// Zones: with no registry to ask, a collector takes an event whose zone
// the served set holds now, or has held at any moment since the collector
// started (a sensor cut off from NATS delivers what it answered before a
// release). A zone released before the collector started is refused for
// events that a sensor delivers late; the central, which asks its
// registry, would take them.

// holdAfterInsertEnv names a file: when set at start, the collector's
// store creates the file after the INSERTs of its first batch that
// stores events, and then blocks (for holdAfterInsertFor at most) before
// that batch's mark, so that a test can kill -9 the process between a
// batch's insert and its acknowledgement (internal/e2e). Test-only.
const holdAfterInsertEnv = "TAKEDOWN_TEST_HOLD_AFTER_INSERT"

// holdAfterInsertFor bounds the hold, should nobody kill the process.
const holdAfterInsertFor = 10 * time.Minute

// collectorRole is what the collector role's components share.
type collectorRole struct {
	store EventStore
	// zones are the served set, and the zones it held since the start.
	zones *servedSince
	// ready is closed once the served set has arrived (from the disk or
	// the bus); the collector takes no event before.
	ready     chan struct{}
	listening atomic.Bool
	stopping  atomic.Bool
}

// collectorComponents are the parts of a collector, in the order they
// start.
func (s *server) collectorComponents() []component {
	s.coll = &collectorRole{ready: make(chan struct{})}
	return []component{
		{name: "event store open", stopped: "event store closed", start: s.openCollectorStore},
		{stopped: "enrichment stopped", start: s.startEnrichment},
		{start: s.openCollectorQuarantine},
		{name: "served set loaded from disk", start: s.loadServedFromDisk},
		{stopped: "served set watch stopped", start: s.watchServed},
		{stopped: "rules watcher stopped", start: s.loadSensorRules},
		{stopped: "SIGHUP handler stopped", start: loop(s.reloads)},
		{stopped: "nats connection closed", start: s.connectNATS},
		{stopped: "served set follower stopped", start: s.startFollower},
		{stopped: "collector stopped", start: s.startCollectorRole},
		{stopped: "api stopped", start: s.startCollectorAPI},
	}
}

// openCollectorStore opens the ClickHouse store (config.Validate made
// sure the engine is ClickHouse).
func (s *server) openCollectorStore(ctx context.Context) (func() error, error) {
	log := s.log.With("component", "store")
	cfg, err := chstoreConfig(s.cfg.Store.ClickHouse)
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	cfg.Logger = log
	if path := os.Getenv(holdAfterInsertEnv); path != "" {
		cfg.AfterInsert = holdAfterInsert(path, log)
	}
	st, err := chstore.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	s.coll.store = chEvents{Store: st, where: strings.Join(s.cfg.Store.ClickHouse.Addrs, ",") + "/" + s.cfg.Store.ClickHouse.Database}
	return st.Close, nil
}

// holdAfterInsert is the hook of holdAfterInsertEnv: the first time a
// batch with events is inserted, it creates path and blocks.
func holdAfterInsert(path string, log *slog.Logger) func(source string, events int) {
	var held atomic.Bool
	return func(source string, events int) {
		if events == 0 || !held.CompareAndSwap(false, true) {
			return
		}
		log.Warn("test hook: holding a batch between its insert and its mark", "env", holdAfterInsertEnv, "source", source, "events", events)
		if err := os.WriteFile(path, []byte(fmt.Sprintf("%s %d\n", source, events)), 0o600); err != nil {
			log.Error("test hook", "err", err)
		}
		time.Sleep(holdAfterInsertFor)
	}
}

// openCollectorQuarantine opens the quarantine of what the store can
// never take.
func (s *server) openCollectorQuarantine(context.Context) (func() error, error) {
	q, err := quarantine.Open(s.cfg.Pipeline.QuarantineDir)
	if err != nil {
		return nil, fmt.Errorf("pipeline.quarantine_dir: %w", err)
	}
	s.quar = q
	return nil, nil
}

// watchServed remembers the zones the served set releases from now on
// (servedSince), and marks the collector ready to take events once the
// set has arrived.
func (s *server) watchServed(context.Context) (func() error, error) {
	z := &servedSince{served: s.served, past: map[string]bool{}}
	s.coll.zones = z
	var once sync.Once
	arrived := func(sn *servedset.Snapshot) {
		if sn.Serial() != 0 {
			once.Do(func() { close(s.coll.ready) })
		}
	}
	cancel := s.served.Subscribe(func(u servedset.Update) {
		z.released(u)
		arrived(u.New)
	})
	arrived(s.served.Load())
	return func() error { cancel(); return nil }, nil
}

// startCollectorRole starts storing the events of the collector's
// sensors, once the served set has arrived: before, every event would be
// refused as for a zone not served.
func (s *server) startCollectorRole(ctx context.Context) (func() error, error) {
	c, err := collect.New(s.collectConfig(s.coll.store, s.coll.zones))
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	s.col = c
	return loop(func(ctx context.Context) {
		select {
		case <-s.coll.ready:
		default:
			s.log.Info("waiting for the central's served set before taking events")
			select {
			case <-s.coll.ready:
			case <-ctx.Done():
				return
			}
		}
		if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("collector", "err", err)
		}
	})(ctx)
}

// startCollectorAPI serves /metrics, /readyz, /healthz and /v1/status.
func (s *server) startCollectorAPI(ctx context.Context) (func() error, error) {
	stop, err := s.startSmallAPI(http.HandlerFunc(s.collectorReady), s.collectorStatus)
	if err != nil {
		return nil, err
	}
	s.coll.listening.Store(true)
	return func() error { s.coll.stopping.Store(true); return stop() }, nil
}

// startSmallAPI serves the API of a role without registry or store
// reader (a sensor, a collector): /metrics (behind the token), /readyz with ready, /healthz
// and /v1/status with status; every other endpoint says to ask the
// central.
func (s *server) startSmallAPI(ready http.Handler, status func(context.Context) (api.Status, error)) (func() error, error) {
	token, err := EnsureToken(s.cfg.API.TokenFile)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /readyz", ready)
	mux.Handle("/", api.New(api.Config{Sensor: true, Token: token, Status: status, Metrics: s.apiMetrics(),
		Logger: s.log.With("component", "api")}))
	srv, ln, err := s.startHTTP(httpListener{key: "api", addr: s.cfg.API.Listen, tls: s.cfg.API.TLS, handler: mux})
	if err != nil {
		return nil, err
	}
	s.ln = ln
	return within(10*time.Second, srv.Shutdown), nil
}

// collectorReady is GET /readyz of a collector: 200 while NATS is
// connected, the store answers and the served set has arrived; 503 with
// what is not ready otherwise, and from the start of the shutdown on.
func (s *server) collectorReady(w http.ResponseWriter, r *http.Request) {
	b := newReadyBody()
	switch {
	case s.coll.stopping.Load() || s.rd.stopping.Load():
		b.set("api", "shutting down")
	case !s.coll.listening.Load():
		b.set("api", "not listening yet")
	default:
		b.set("api", "")
	}
	if s.nc.IsConnected() {
		b.set("nats", "")
	} else {
		b.set("nats", "not connected to "+strings.Join(s.cfg.NATS.Servers, ", "))
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.coll.store.Ping(ctx); err != nil {
		b.set("store", err.Error())
	} else {
		b.set("store", "")
	}
	select {
	case <-s.coll.ready:
		b.set("served", "")
	default:
		b.set("served", "no served set yet: waiting for the central's")
	}
	b.write(w)
}

// collectorStatus is GET /v1/status of a collector: its sensors, the
// stream, what it stored, its store.
func (s *server) collectorStatus(ctx context.Context) (api.Status, error) {
	now := time.Now().UTC()
	cs := s.col.Stats()
	out := api.Status{Time: now, Serving: true, Sensor: s.cfg.Central.Name, Role: config.RoleCollector,
		Uptime: now.Sub(s.began).Seconds(), Databases: []api.DatabaseStatus{}, Today: []api.UniqueToday{},
		Pipeline: api.PipelineStatus{Stored: cs.Stored, Quarantined: cs.Quarantined, StoreFailures: cs.StoreFailures,
			LastAppend: cs.LastAppend.Seconds(), StoreError: cs.LastError},
		Quarantine: s.quar.Summary(),
		Sensors:    sensorsStatus(s.col.Sensors(), now),
		Stream:     &api.StreamStatus{Pending: uint64(max(cs.Pending, 0)), Error: cs.LastError},
	}
	for _, src := range s.enr.Sources() {
		d := api.DatabaseStatus{Path: src.Path, Kind: src.Kind, BuildDate: src.Built, Records: int64(src.Records)}
		if src.Err != nil {
			d.Error = src.Err.Error()
		}
		out.Databases = append(out.Databases, d)
	}
	var err error
	out.Store, err = storeStatus(ctx, s.cfg, s.coll.store)
	out.Store.Path, out.Store.Bytes = "", 0
	return out, err
}

// servedSince is the collector's collect.Zones: a zone of the served set,
// or one it released since the collector started. The released zones are
// kept by name, lower case without the final dot, for the life of the
// process (a name each).
type servedSince struct {
	served *servedset.Set
	mu     sync.Mutex
	past   map[string]bool
}

// released remembers the zones that u releases.
func (z *servedSince) released(u servedset.Update) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if u.Delta != nil {
		for _, name := range u.Delta.Remove {
			z.past[zoneKey(name)] = true
		}
		return
	}
	// Replaced whole (a full form after lost deltas): what the old set
	// held and the new does not. Rare, and in proportion to the zones.
	for name := range u.Old.All() {
		if _, ok := u.New.Has(name); !ok {
			z.past[zoneKey(name)] = true
		}
	}
}

func (z *servedSince) Zone(name string) (zone, caseName, family string, ok bool) {
	if zone, caseName, family, ok = z.served.Zone(name); ok {
		return zone, caseName, family, ok
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.past[zoneKey(name)] {
		return name, "", "", true
	}
	return "", "", "", false
}

func zoneKey(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }
