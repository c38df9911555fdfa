// Package app wires takedown's capability packages together: it opens the
// database file, the registry and the event store from the configuration, and
// runs the server. It is the only package that knows them all.
package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/cpuload"
	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/dnssink"
	"github.com/takedown-project/takedown/internal/enrich"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/feed"
	"github.com/takedown-project/takedown/internal/idle"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/spool"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/uniq"
	"github.com/takedown-project/takedown/internal/xfr"
)

// Local is the database opened in this process.
type Local struct {
	DB       *sql.DB
	Registry *registry.Registry
	Store    *store.Store
}

// Open opens (creating if needed) the database file that cfg names, with its
// registry and event store.
func Open(ctx context.Context, cfg config.Config) (*Local, error) {
	if dir := filepath.Dir(cfg.Store.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	db, err := dbfile.Open(ctx, cfg.Store.Path)
	if err != nil {
		return nil, err
	}
	if mb := cfg.Store.MemoryLimitMB; mb > 0 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("SET memory_limit = '%dMiB'", mb)); err != nil {
			db.Close()
			return nil, fmt.Errorf("store.memory_limit_mb: %w", err)
		}
	}
	reg, err := registry.New(ctx, registry.Config{DB: db})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening registry: %w", err)
	}
	st, err := store.Open(ctx, store.Config{DB: db})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening event store: %w", err)
	}
	return &Local{DB: db, Registry: reg, Store: st}, nil
}

// Close closes the store and the database.
func (l *Local) Close() error {
	return errors.Join(l.Store.Close(), l.DB.Close())
}

// EnsureToken returns the API token in path, creating the file with a new
// random token (mode 0600) when it does not exist.
func EnsureToken(path string) (string, error) {
	if tok, err := ReadToken(path); err == nil {
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating token directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating API token file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("writing API token file: %w", err)
	}
	return tok, f.Close()
}

// ReadToken reads the API token file.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("API token file %s is empty", path)
	}
	return tok, nil
}

// Serve runs `takedown serve` until ctx is cancelled; see ServeWith. ready,
// if not nil, is called with the API address once everything accepts
// requests.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(addr string)) error {
	return ServeWith(ctx, cfg, log, Options{Ready: ready})
}

// ServeWith runs `takedown serve` until ctx is cancelled: it opens the
// database, starts the event pipeline, the DNS sinkhole, the listeners and
// the API, keeps the zones in step with the registry, and reloads on
// SIGHUP (see Options). At the end it shuts down in reverse order, logging
// how long each step took: it stops accepting (API, listeners, DNS), drains
// the pipeline for at most pipeline.drain_timeout_ms, and closes the spool
// and the store.
func ServeWith(ctx context.Context, cfg config.Config, log *slog.Logger, opt Options) (err error) {
	start := time.Now()
	var stack []func()
	rd := new(readiness) // GET /readyz
	defer func() {
		rd.stopping.Store(true)
		log.Info("shutting down")
		for i := len(stack) - 1; i >= 0; i-- {
			stack[i]()
		}
		log.Info("stopped", "uptime", time.Since(start).Round(time.Millisecond))
	}()
	step := func(what string, t0 time.Time) { log.Info(what, "took", time.Since(t0).Round(time.Microsecond)) }
	onStop := func(what string, fn func() error) {
		stack = append(stack, func() {
			t0 := time.Now()
			if err := fn(); err != nil {
				log.Error(what, "err", err)
			}
			step(what, t0)
		})
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	t0 := time.Now()
	// Before the database opens: DuckDB's workers are started then, and
	// keep the CPUs of the thread that starts them.
	idle.SetBackgroundCPUs(cfg.Pipeline.BackgroundCPUs)
	local, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	step("database open", t0)
	onStop("database closed", local.Close)

	// Enrichment: offline databases, reloaded when they change.
	t0 = time.Now()
	enr, err := enrich.New(enrich.Config{
		Databases: cfg.Enrich.Databases, AbuseFiles: cfg.Enrich.AbuseFiles, RIRFiles: cfg.Enrich.RIRFiles,
		CacheSize: cfg.Enrich.CacheSize, Logger: log, Registerer: metrics,
	})
	if err != nil {
		return fmt.Errorf("enrich: %w", err)
	}
	if err := enr.Start(ctx); err != nil {
		return fmt.Errorf("enrich: %w", err)
	}
	onStop("enrichment stopped", enr.Close)
	if n := len(enr.Sources()); n > 0 {
		step("enrichment databases loaded", t0)
	}

	// The pipeline: every event goes to the disk spool, and from there in
	// batches to the store; sinks never wait for the store.
	t0 = time.Now()
	sp, err := spool.Open(spoolOptions(cfg, log.With("component", "spool"), metrics))
	if err != nil {
		return fmt.Errorf("pipeline.spool_dir: %w", err)
	}
	onStop("spool closed", sp.Close)
	quar, err := quarantine.Open(cfg.Pipeline.QuarantineDir)
	if err != nil {
		return fmt.Errorf("pipeline.quarantine_dir: %w", err)
	}
	hosts := uniq.New(uniq.Config{})
	rules, err := classify.New(classify.Config{Path: cfg.Classify.Rules, Logger: log, Registerer: metrics})
	if err != nil {
		return fmt.Errorf("classify.rules: %w", err)
	}
	rulesCtx, stopRules := context.WithCancel(ctx)
	rulesDone := make(chan struct{})
	go func() { defer close(rulesDone); rules.Run(rulesCtx) }()
	onStop("rules watcher stopped", func() error { stopRules(); <-rulesDone; return nil })
	// SIGHUP reads the config file again and applies what can change
	// live: the log level, the rules and the enrichment files (both also
	// follow their files on their own); it re-reads those files too.
	rl := &reloader{cur: cfg, load: opt.Reload, level: opt.LogLevel, rules: rules, enr: enr, log: log}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		for {
			select {
			case <-rulesCtx.Done():
				return
			case <-hup:
				rl.reload()
			}
		}
	}()
	onStop("SIGHUP handler stopped", func() error { signal.Stop(hup); stopRules(); <-hupDone; return nil })
	load := cpuload.Start(ctx, 100*time.Millisecond)
	pipe, err := pipeline.New(pipeline.Config{
		Spool: sp, SpoolMaxBytes: int64(cfg.Pipeline.SpoolMaxMB) << 20, Saturated: load.Saturated,
		Store: local.Store, Classifier: dnsClassifier{rules}, Enricher: enr, Observer: hosts, Quarantine: quar,
		BatchSize: cfg.Pipeline.BatchSize, FlushInterval: time.Duration(cfg.Pipeline.FlushMS) * time.Millisecond,
		MaxLag: time.Duration(cfg.Pipeline.MaxLagS) * time.Second,
		Logger: log.With("component", "pipeline"), Registerer: metrics,
	})
	if err != nil {
		return err
	}
	pctx, stopPipeline := context.WithCancel(context.Background())
	pipeErr := make(chan error, 1)
	go func() { pipeErr <- pipe.Run(pctx, time.Duration(cfg.Pipeline.DrainTimeoutMS)*time.Millisecond) }()
	onStop("pipeline drained", func() error {
		stopPipeline()
		err := <-pipeErr
		s := pipe.Stats()
		log.Info("pipeline", "recorded", s.Recorded, "stored", s.Stored, "dropped", s.Dropped,
			"left_in_spool", s.Backlog, "left_in_spool_bytes", s.BacklogBytes, "invalid", s.Invalid, "quarantined", s.Quarantined)
		return err
	})
	step("pipeline started", t0)
	seedCtx, stopSeed := context.WithCancel(ctx)
	seeded := make(chan struct{})
	go func() { defer close(seeded); seedHosts(seedCtx, local.Store, hosts, time.Now(), log) }()
	onStop("host counters seeded", func() error { stopSeed(); <-seeded; return nil })
	rd.db, rd.pipe, rd.sp = local.DB, pipe, sp
	status := newStatusSource(cfg, local.Store, sp, pipe, enr, hosts, quar, start)

	// The DNS sinkhole, fed from the registry.
	var sink *dnssink.Server
	if len(cfg.DNS.Listen) > 0 {
		dc := dnsConfig(cfg)
		dc.Recorder = recorder{pipe}
		dc.Logger = log
		dc.Registerer = metrics
		if sink, err = dnssink.New(dc); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	// The transfer server: AXFR/IXFR of the sinkhole zones and the RPZ
	// feed, with NOTIFY.
	var xs *xfr.Server
	if len(cfg.Transfer.Listen) > 0 {
		xc, err := xfrConfig(cfg)
		if err != nil {
			return err
		}
		if sink != nil {
			xc.Fallback = sink
		}
		xc.Logger = log
		xc.Registerer = metrics
		if xs, err = xfr.New(xc); err != nil {
			return fmt.Errorf("transfer: %w", err)
		}
	}
	rpzCfg := RPZConfig(cfg)
	rpzPub := &rpzFeed{cfg: rpzCfg, xs: xs}
	sync := &zoneSync{
		reg: local.Registry, log: log.With("component", "zones"), every: 250 * time.Millisecond,
		apply: func(ctx context.Context, list []ServedDomain) error {
			if sink != nil {
				zones := make([]dnssink.Zone, len(list))
				for i, sd := range list {
					zones[i] = dnssink.Zone{Name: sd.Domain.Name, Case: sd.Case.Name, Family: sd.Case.Family, TXT: TXT(sd.Case, cfg.Operator)}
				}
				sink.SetZones(zones)
			}
			if xs == nil {
				return nil
			}
			entries, err := RPZEntries(cfg, list)
			if err != nil {
				return err
			}
			added, err := rpzPub.publish(entries)
			if err != nil {
				return err
			}
			// Tell secondaries of the sinkhole zones that are new.
			if len(added) > 0 && len(cfg.Transfer.Notify) > 0 {
				xs.Notify(added...)
			}
			return nil
		},
	}
	t0 = time.Now()
	if err := sync.once(ctx, true); err != nil {
		return fmt.Errorf("loading zones: %w", err)
	}
	if sink != nil {
		if err := sink.Start(ctx); err != nil {
			return fmt.Errorf("dns.listen: %w", err)
		}
		onStop("dns stopped", within(5*time.Second, sink.Shutdown))
		log.Info("dns sinkhole listening", "addrs", fmt.Sprint(sink.Addrs()), "serial", sink.Serial())
	}
	step("sinkhole started", t0)
	if xs != nil {
		if err := xs.Start(ctx); err != nil {
			return fmt.Errorf("transfer.listen: %w", err)
		}
		onStop("transfer stopped", within(5*time.Second, xs.Shutdown))
		log.Info("transfer server listening", "addrs", fmt.Sprint(xs.Addrs()), "rpz", rpzCfg.ZoneName())
	}
	// The listeners: HTTP, HTTPS, SMTP and the catch-alls.
	t0 = time.Now()
	var zones zoneSource // a nil interface, not a nil *dnssink.Server
	if sink != nil {
		zones = sink
	}
	stops, err := startListeners(ctx, cfg, recorder{pipe}, rules, zones, log, metrics)
	for _, stop := range stops {
		onStop("listener stopped", within(10*time.Second, stop))
	}
	if err != nil {
		return err
	}
	step("listeners started", t0)
	rd.listening.Store(true) // and the sinkhole and the transfer server, started before
	syncCtx, stopSync := context.WithCancel(ctx)
	syncDone := make(chan struct{})
	go func() { defer close(syncDone); sync.run(syncCtx) }()
	onStop("zone sync stopped", func() error { stopSync(); <-syncDone; return nil })

	// The API, with /metrics beside it.
	token, err := EnsureToken(cfg.API.TokenFile)
	if err != nil {
		return err
	}
	// The subscribers' reports: their pull feed, and the daily e-mail.
	mailer, err := openMail(ctx, cfg, local, log.With("component", "mail"), metrics)
	if err != nil {
		return err
	}
	reps := newReports(cfg, local, mailer, log.With("component", "reports"))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	subFeed := feed.New(reps.feedConfig(cfg, log.With("component", "feed")))
	mux.Handle("/api/", subFeed)
	mux.Handle("GET /readyz", rd)
	// The web dashboard, under /ui/.
	dash, stopDash, err := startDashboard(ctx, cfg, local, token, log.With("component", "dashboard"))
	if err != nil {
		return err
	}
	if dash != nil {
		onStop("dashboard stopped", stopDash)
		mux.Handle("/ui/", dash)
		mux.Handle("GET /ui", dash)
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	mux.Handle("/", api.New(api.Config{
		Registry: local.Registry, Events: local.Store, Token: token, Status: status.status, Reports: reps,
		Ingest:     newIngester(pipe, sp, zones, rules, ingestBusy(sp, int64(cfg.Pipeline.SpoolMaxMB)<<20), metrics).ingest,
		Quarantine: &servedQuarantine{q: quar, pipe: pipe, sp: sp},
		Logger:     log.With("component", "api"),
	}))
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(subFeed.Close)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	onStop("api stopped", within(10*time.Second, srv.Shutdown))
	if mailer != nil && *cfg.Reports.Send {
		repCtx, stopReports := context.WithCancel(ctx)
		repDone := make(chan struct{})
		// Building the day's reports can wait for the sinks: idle class.
		go func() { defer close(repDone); idle.Run(func() { reps.run(repCtx) }) }()
		onStop("daily reports stopped", func() error { stopReports(); <-repDone; return nil })
		log.Info("daily reports by e-mail", "relay", cfg.Mail.Relay)
	}
	log.Info("api listening", "addr", ln.Addr().String(), "db", cfg.Store.Path)

	retCtx, stopRetention := context.WithCancel(ctx)
	retDone := make(chan struct{})
	go func() {
		defer close(retDone)
		runRetention(retCtx, local.Store, cfg.Store.RetentionDays, log.With("component", "retention"))
	}()
	onStop("retention stopped", func() error { stopRetention(); <-retDone; return nil })

	log.Info("takedown serving", "startup", time.Since(start).Round(time.Microsecond))
	if opt.Ready != nil {
		opt.Ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return fmt.Errorf("api server: %w", err)
	}
}

// within adapts a Shutdown(ctx) method to a stop step with a deadline.
func within(d time.Duration, shutdown func(context.Context) error) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return shutdown(ctx)
	}
}

// nextSerial returns a SOA serial after prev: the unix time, or prev+1 when
// that is not larger.
func nextSerial(prev uint32, now time.Time) uint32 {
	s := uint32(now.Unix())
	if int32(s-prev) <= 0 {
		s = prev + 1
	}
	return s
}

// recorder adapts the pipeline to the sinks' Recorder interfaces.
type recorder struct{ p *pipeline.Pipeline }

func (r recorder) Record(e *event.Event) { r.p.Record(e) }

// spoolOptions are the spool's options from cfg.
func spoolOptions(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) spool.Options {
	o := spool.Options{
		Dir: cfg.Pipeline.SpoolDir, MaxBytes: int64(cfg.Pipeline.SpoolMaxMB) << 20,
		SyncInterval:  syncInterval(cfg.Pipeline.SyncMS),
		FlushInterval: time.Duration(cfg.Pipeline.SpoolFlushMS) * time.Millisecond,
		Logger:        log, Registerer: reg,
	}
	if cfg.Pipeline.DiskReserveMB > 0 {
		o.MinFreeBytes = int64(cfg.Pipeline.DiskReserveMB) << 20
	}
	return o
}

// syncInterval turns pipeline.sync_ms into the spool's SyncInterval: -1
// means every write.
func syncInterval(ms int) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// runRetention deletes events older than days, at start and then hourly.
func runRetention(ctx context.Context, st *store.Store, days int, log *slog.Logger) {
	if days <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		cutoff := time.Now().UTC().AddDate(0, 0, -days)
		n, err := st.DeleteBefore(ctx, cutoff)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("deleting old events", "err", err)
		case n > 0:
			log.Info("deleted old events", "events", n, "before", cutoff.Format(time.DateOnly))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
