package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/collect"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/cpuload"
	"github.com/takedown-project/takedown/internal/dnssink"
	"github.com/takedown-project/takedown/internal/enrich"
	"github.com/takedown-project/takedown/internal/idle"
	"github.com/takedown-project/takedown/internal/ingest"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/pull"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/remediate"
	"github.com/takedown-project/takedown/internal/servedset"
	"github.com/takedown-project/takedown/internal/servedsync"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/uniq"
	"github.com/takedown-project/takedown/internal/uplink"
	"github.com/takedown-project/takedown/internal/xfr"
)

// Serve runs `takedown serve` until ctx is cancelled; see ServeWith. ready,
// if not nil, is called with the API address once everything accepts
// requests.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(addr string)) error {
	return ServeWith(ctx, cfg, log, Hooks{Ready: ready})
}

// ServeWith runs `takedown serve` with Effective(cfg) until ctx is
// cancelled: it starts its components (server.components) in order — the
// database, the evidence log, enrichment, the spool and the pipeline, the served set, the
// DNS sinkhole, the transfer server, the listeners, the API and the
// dashboard, the daily reports, retention — and reloads when h.Reloads
// asks (SIGHUP, see Hooks). At the end it stops them in reverse order,
// logging how long each step took: it stops accepting (API, listeners,
// DNS), drains the pipeline for at most pipeline.drain_timeout_ms, and
// closes the spool and the store.
func ServeWith(ctx context.Context, cfg config.Config, log *slog.Logger, h Hooks) error {
	s := &server{cfg: Effective(cfg), log: log, hooks: h, began: time.Now(), rd: new(readiness),
		metrics: prometheus.NewRegistry(), errc: make(chan error, 1)}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	l := &lifecycle{log: log}
	defer func() {
		s.rd.stopping.Store(true)
		log.Info("shutting down")
		l.stop()
		log.Info("stopped", "uptime", time.Since(s.began).Round(time.Millisecond))
	}()
	for _, c := range append([]component{{stopped: "metrics stopped", start: s.startMetrics}}, s.components()...) {
		if err := l.run(ctx, c); err != nil {
			return err
		}
	}
	log.Info("takedown serving", "startup", time.Since(s.began).Round(time.Microsecond))
	if h.Ready != nil {
		h.Ready(s.ln.Addr().String())
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.errc:
		return fmt.Errorf("api server: %w", err)
	}
}

// server is one `takedown serve`: what its components make and share.
type server struct {
	cfg     config.Config
	log     *slog.Logger
	hooks   Hooks
	began   time.Time
	metrics *prometheus.Registry
	rd      *readiness

	local  *Local
	keys   *Keys // the DNSSEC keys, with the registry (single and central roles)
	enr    *enrich.Enricher
	sp     *spool.Spool
	quar   *quarantine.Quarantine
	hosts  *uniq.Counter
	rules  *classify.Holder
	pipe   *pipeline.Pipeline
	status *statusSource
	served *servedset.Set
	pub    *registry.Publisher
	xs     *xfr.Server
	reps   *remediate.Service
	mailer bool // reports go out by e-mail
	ln     net.Listener
	errc   chan error // the API server's end
	// rec is what the sinks record through: the pipeline, or on a sensor
	// the uplink.
	rec recorder

	// The roles with NATS (roles.go).
	nc       *nats.Conn
	js       jetstream.JetStream
	up       *uplink.Uplink
	follower *servedsync.Follower
	col      *collect.Collector
	// coll is the collector role's (collector.go).
	coll *collectorRole
	// evid is the evidence log (evidence.go); nil when it is off.
	evid *evidenceLog
}

// components are the parts of the serve of s.cfg.Role, in the order they
// start.
func (s *server) components() []component {
	switch s.cfg.Role {
	case config.RoleSensor:
		return s.sensorComponents()
	case config.RoleCentral:
		return s.centralComponents()
	case config.RoleCollector:
		return s.collectorComponents()
	}
	return s.singleComponents()
}

// singleComponents are the parts of a serve of the single role, in the
// order they start.
func (s *server) singleComponents() []component {
	cs := []component{
		{name: "database open", stopped: "database closed", start: s.openDatabase},
		{stopped: "evidence log closed", start: s.openEvidence},
		{stopped: "enrichment stopped", start: s.startEnrichment},
		{stopped: "spool closed", start: s.openSpool},
		{stopped: "rules watcher stopped", start: s.loadRules},
		{stopped: "SIGHUP handler stopped", start: loop(s.reloads)},
		{name: "pipeline started", stopped: "pipeline drained", start: s.startPipeline},
		{stopped: "host counters seeded", start: loop(func(ctx context.Context) {
			seedHosts(ctx, s.local.Store, s.hosts, time.Now(), s.log)
		})},
		{stopped: "rpz feed stopped", start: s.startServedSet},
		{name: "sinkhole started", stopped: "dns stopped", start: s.startSinkhole},
		{stopped: "transfer stopped", start: s.startTransfer},
		{name: "listeners started", start: s.startListeners},
		{stopped: "served set publisher stopped", start: loop(func(ctx context.Context) { s.pub.Run(ctx) })},
		{start: s.openReports},
		{stopped: "api stopped", start: s.startAPI},
		{stopped: "daily reports stopped", start: s.startDailyReports},
		{stopped: "retention stopped", start: loop(func(ctx context.Context) {
			runRetention(ctx, s.local.Store, s.evidencePruner(), s.cfg.Store.RetentionDays, s.log.With("component", "retention"))
		})},
	}
	return cs
}

func (s *server) openDatabase(ctx context.Context) (func() error, error) {
	// Before the database opens: DuckDB's workers are started then, and
	// keep the CPUs of the thread that starts them.
	idle.SetBackgroundCPUs(s.cfg.Pipeline.BackgroundCPUs)
	local, err := open(ctx, s.cfg, s.log.With("component", "store"))
	if err != nil {
		return nil, err
	}
	s.local = local
	if err := local.Registry.RegisterMetrics(s.metrics); err != nil {
		local.Close()
		return nil, fmt.Errorf("registry metrics: %w", err)
	}
	return local.Close, nil
}

// startEnrichment loads the offline databases, reloaded when they change.
func (s *server) startEnrichment(ctx context.Context) (func() error, error) {
	t0 := time.Now()
	enr, err := enrich.New(enrich.Config{
		Databases: s.cfg.Enrich.Databases, AbuseFiles: s.cfg.Enrich.AbuseFiles, RIRFiles: s.cfg.Enrich.RIRFiles,
		CacheSize: s.cfg.Enrich.CacheSize, Logger: s.log, Registerer: s.metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("enrich: %w", err)
	}
	if err := enr.Start(ctx); err != nil {
		return nil, fmt.Errorf("enrich: %w", err)
	}
	s.enr = enr
	if len(enr.Sources()) > 0 {
		s.log.Info("enrichment databases loaded", "took", time.Since(t0).Round(time.Microsecond))
	}
	return enr.Close, nil
}

// openSpool opens the disk spool every event goes to first, and the
// quarantine of what the store can never take.
func (s *server) openSpool(context.Context) (func() error, error) {
	sp, err := spool.Open(spoolConfig(s.cfg, s.log.With("component", "spool"), s.metrics))
	if err != nil {
		return nil, fmt.Errorf("pipeline.spool_dir: %w", err)
	}
	s.sp = sp
	if s.quar, err = quarantine.Open(s.cfg.Pipeline.QuarantineDir); err != nil {
		return sp.Close, fmt.Errorf("pipeline.quarantine_dir: %w", err)
	}
	return sp.Close, nil
}

// loadRules loads the classification rules and follows their file.
func (s *server) loadRules(ctx context.Context) (func() error, error) {
	rules, err := classify.New(classify.Config{Path: s.cfg.Classify.Rules, Logger: s.log, Registerer: s.metrics})
	if err != nil {
		return nil, fmt.Errorf("classify.rules: %w", err)
	}
	s.rules = rules
	return loop(func(ctx context.Context) { rules.Run(ctx) })(ctx)
}

// reloads reads the config file again on each reload asked for (SIGHUP)
// and applies what can change live: the log level, the rules and the
// enrichment files (both also follow their files on their own); it
// re-reads those files too.
func (s *server) reloads(ctx context.Context) {
	rl := &reloader{cur: s.cfg, load: s.hooks.Reload, level: s.hooks.LogLevel, rules: s.rules, enr: s.enr, log: s.log}
	if s.cfg.Role == config.RoleSensor {
		rl.rules, rl.enr = nil, nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.hooks.Reloads:
			rl.reload()
		}
	}
}

// startPipeline starts the store writer: every event goes to the disk
// spool, and from there in batches to the store; sinks never wait for the
// store. It is stopped by its own context, not serve's: at the end it
// drains what the sinks recorded.
func (s *server) startPipeline(ctx context.Context) (func() error, error) {
	s.hosts = uniq.New(uniq.Config{})
	load := cpuload.Start(ctx, 100*time.Millisecond)
	cfg := s.cfg.Pipeline
	pipe, err := pipeline.New(pipeline.Config{
		Spool: s.sp, SpoolMaxBytes: int64(cfg.SpoolMaxMB) << 20, Saturated: load.Saturated,
		Store: s.eventWriter(), Classifier: s.rules, Enricher: s.enr, Observer: s.hosts, Quarantine: s.quar,
		BatchSize: cfg.BatchSize, FlushInterval: time.Duration(cfg.FlushMS) * time.Millisecond,
		MaxLag: time.Duration(cfg.MaxLagS) * time.Second,
		Logger: s.log.With("component", "pipeline"), Registerer: s.metrics,
	})
	if err != nil {
		return nil, err
	}
	s.pipe = pipe
	s.rec = pipeRecorder{pipe}
	pctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pipe.Run(pctx, time.Duration(cfg.DrainTimeoutMS)*time.Millisecond) }()
	s.rd.store, s.rd.pipe, s.rd.sp = s.local.Store, pipe, s.sp
	s.status = newStatusSource(s.cfg, s.local.Store, s.sp, pipe, s.enr, s.hosts, s.quar, s.began)
	s.status.evid = s.evid
	s.rd.evid = s.evid
	return func() error {
		stop()
		err := <-ran
		st := pipe.Stats()
		s.log.Info("pipeline", "recorded", st.Recorded, "stored", st.Stored, "dropped", st.Dropped,
			"left_in_spool", st.Backlog, "left_in_spool_bytes", st.BacklogBytes, "invalid", st.Invalid, "quarantined", st.Quarantined)
		return err
	}, nil
}

// startServedSet makes the served set — the seized zones, their cases and
// what the zones answer — and the registry's publisher that keeps it in
// step with the registry; the sinkhole, the listeners, the ingest endpoint
// and the transfer server read it, whichever of them run. The transfer
// server is made here, so that its RPZ feed follows the set from its first
// load on; the stop ends that.
func (s *server) startServedSet(ctx context.Context) (func() error, error) {
	s.served = servedset.NewSet()
	if err := registerKeyMetrics(s.metrics, s.served); err != nil {
		return nil, err
	}
	if s.status != nil {
		s.status.served = s.served
	}
	s.keys = &Keys{Cfg: s.cfg, Store: s.local.Keys, Registry: s.local.Registry, ParentDS: s.local.Registry.ParentDS}
	s.pub = s.local.Registry.NewPublisher(registry.PublisherConfig{
		Served: s.served, Sinkhole: sinkholeConfig(s.cfg), Operator: s.cfg.Operator, Logger: s.log,
		Keys: s.keys.ForCase,
	})
	s.keys.Changed = s.pub.Touch
	if len(s.cfg.Transfer.Listen) == 0 {
		return nil, nil
	}
	xc, err := xfrConfig(s.cfg)
	if err != nil {
		return nil, err
	}
	xc.Fallback = dnssink.NewZoneSource(s.served)
	xc.Logger = s.log
	xc.Registerer = s.metrics
	if s.xs, err = xfr.New(xc); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	stopFollow, err := followServed(s.cfg, s.served, s.xs, s.log.With("component", "rpz"))
	if err != nil {
		return nil, err
	}
	return func() error { stopFollow(); return nil }, nil
}

// startSinkhole loads the served set and starts the DNS sinkhole on it.
func (s *server) startSinkhole(ctx context.Context) (func() error, error) {
	if s.pub != nil {
		if err := s.pub.Load(ctx); err != nil {
			return nil, fmt.Errorf("loading zones: %w", err)
		}
	}
	if len(s.cfg.DNS.Listen) == 0 {
		return nil, nil
	}
	dc := dnsConfig(s.cfg)
	dc.Served = s.served
	dc.Recorder = s.rec
	dc.Logger = s.log
	dc.Registerer = s.metrics
	sink, err := dnssink.New(dc)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if err := sink.Start(ctx); err != nil {
		return nil, fmt.Errorf("dns.listen: %w", err)
	}
	s.log.Info("dns sinkhole listening", "addrs", fmt.Sprint(sink.Addrs()), "serial", sink.Serial())
	return within(5*time.Second, sink.Shutdown), nil
}

// startTransfer starts the transfer server: AXFR/IXFR of the sinkhole
// zones and the RPZ feed, with NOTIFY.
func (s *server) startTransfer(ctx context.Context) (func() error, error) {
	if s.xs == nil {
		return nil, nil
	}
	if err := s.xs.Start(ctx); err != nil {
		return nil, fmt.Errorf("transfer.listen: %w", err)
	}
	s.log.Info("transfer server listening", "addrs", fmt.Sprint(s.xs.Addrs()), "rpz", RPZConfig(s.cfg).ZoneName())
	return within(5*time.Second, s.xs.Shutdown), nil
}

// startListeners starts the listeners: HTTP, HTTPS, SMTP and the
// catch-alls. Once they listen, with the sinkhole and the transfer server
// started before, serve is ready to take bots.
func (s *server) startListeners(ctx context.Context) (func() error, error) {
	stops, err := startListeners(ctx, s.cfg, s.rec, s.rules, s.served, s.log, s.metrics)
	stop := func() error {
		for i := len(stops) - 1; i >= 0; i-- {
			t0 := time.Now()
			if err := within(10*time.Second, stops[i])(); err != nil {
				s.log.Error("listener stopped", "err", err)
			}
			s.log.Info("listener stopped", "took", time.Since(t0).Round(time.Microsecond))
		}
		return nil
	}
	if err != nil {
		return stop, err
	}
	s.rd.listening.Store(true)
	if len(stops) == 0 {
		return nil, nil
	}
	return func() error { return stop() }, nil
}

// openReports opens the subscribers' reports (the relay, when the config
// names one) and the web dashboard, whose stop this is.
func (s *server) openReports(ctx context.Context) (func() error, error) {
	d, err := openMail(ctx, s.cfg, s.local, s.log.With("component", "mail"), s.metrics)
	if err != nil {
		return nil, err
	}
	s.mailer = d != nil
	s.reps = newReports(s.cfg, s.local, d, s.log.With("component", "reports"))
	return nil, nil
}

// startAPI starts the admin API with /metrics (behind the token, unless
// metrics.listen gives it an address of its own), /readyz, the subscribers'
// pull API and the dashboard beside it, and the feed's and the
// dashboard's own listeners when the config names them (publish.go).
func (s *server) startAPI(ctx context.Context) (stop func() error, err error) {
	token, err := EnsureToken(s.cfg.API.TokenFile)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	subFeed := pull.New(pullConfig(s.cfg, s.local.Registry, s.local.Store, s.reps, s.log.With("component", "feed")))
	mux.Handle("/api/", subFeed)
	mux.Handle("GET /readyz", s.rd)
	mux.Handle("GET /v1/backup", backupHandler(s.local, s.cfg.Store.Path, token, s.log.With("component", "backup")))
	feedMux := s.publicMux()
	feedMux.Handle("/api/", subFeed)
	if s.evid != nil {
		// Public: a log's checkpoints are meant to be mirrored.
		mux.Handle("GET /api/v1/evidence/", s.evid.handler())
		feedMux.Handle("GET /api/v1/evidence/", s.evid.handler())
	}
	// The web dashboard, under /ui/. It stops after the API.
	dash, stopDash, err := startDashboard(ctx, s.cfg, s.local, token, s.log.With("component", "dashboard"))
	if err != nil {
		return nil, err
	}
	dashMux := s.publicMux()
	if dash != nil {
		mux.Handle("/ui/", dash)
		mux.Handle("GET /ui", dash)
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
		pub := withoutBearer(dash)
		dashMux.Handle("/ui/", pub)
		dashMux.Handle("GET /ui", pub)
		dashMux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	in := ingest.New(ingest.Config{Pipeline: s.pipe, Spool: s.sp, Zones: s.served, Classifier: s.rules,
		Busy: ingest.SpoolBusy(s.sp, int64(s.cfg.Pipeline.SpoolMaxMB)<<20), Registerer: s.metrics})
	mux.Handle("/", api.New(api.Config{
		Registry: s.local.Registry, Events: s.local.Store, Token: token, Status: s.status.status, Reports: s.reps,
		Ingest: in.Ingest, Quarantine: &servedQuarantine{q: s.quar, pipe: s.pipe, sp: s.sp}, DNSSEC: s.keys,
		Metrics: s.apiMetrics(), Logger: s.log.With("component", "api"),
	}))
	listeners := []httpListener{{key: "api", addr: s.cfg.API.Listen, tls: s.cfg.API.TLS, handler: mux}}
	if s.cfg.Feed.Listen != "" {
		listeners = append(listeners, httpListener{key: "feed", addr: s.cfg.Feed.Listen, tls: s.cfg.Feed.TLS, handler: feedMux})
	}
	if s.cfg.Dashboard.Listen != "" && dash != nil {
		listeners = append(listeners, httpListener{key: "dashboard", addr: s.cfg.Dashboard.Listen, tls: s.cfg.Dashboard.TLS, handler: dashMux})
	}
	var srvs []*http.Server
	stop = func() error {
		err := shutdownAll(srvs)
		if stopDash != nil {
			t0 := time.Now()
			if err := stopDash(); err != nil {
				s.log.Error("dashboard stopped", "err", err)
			}
			s.log.Info("dashboard stopped", "took", time.Since(t0).Round(time.Microsecond))
		}
		return err
	}
	for _, l := range listeners {
		srv, ln, err := s.startHTTP(l)
		if err != nil {
			stop()
			return nil, err
		}
		// The followed event streams end before the shutdown waits for
		// them.
		srv.RegisterOnShutdown(subFeed.Close)
		srvs = append(srvs, srv)
		if l.key == "api" {
			s.ln = ln
		}
	}
	return stop, nil
}

// startDailyReports mails the previous day's reports at each subscriber's
// send time, when a relay is configured and reports.send is on. Building
// the day's reports can wait for the sinks: idle CPU class.
func (s *server) startDailyReports(ctx context.Context) (func() error, error) {
	if !s.mailer || !*s.cfg.Reports.Send {
		return nil, nil
	}
	s.log.Info("daily reports by e-mail", "relay", s.cfg.Mail.Relay)
	return loop(func(ctx context.Context) { idle.Run(func() { s.reps.Run(ctx) }) })(ctx)
}
