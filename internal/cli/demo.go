package cli

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/chrun"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/natsrun"
	"github.com/takedown-project/takedown/internal/progress"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/sim"
	"github.com/takedown-project/takedown/internal/users"
)

// demoDomains is a fictional court-order list in the shape of Waledac's.
//
//go:embed demodata/waledac-domains.csv
var demoDomains []byte

type demoOptions struct {
	bots     int
	speed    float64
	duration time.Duration
	backfill int // days
	families string
	sensors  int // 0: one serve in this process
	store    string
}

func (e *env) demoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a Waledac-sized takedown on this machine: serve, a simulated botnet, the census",
		Long: `Run a Waledac-sized takedown end to end on this machine, with fictional data:

  1. seize     open a case before the court (a TRO, then a default judgement
               after a 14-day objection window), import its 276 seized
               domains and move them to sinkholed; a second case seizes a
               DGA family's names
  2. sinkhole  start serve on loopback high ports: the DNS sinkhole, the
               HTTP/HTTPS/SMTP listeners, the pipeline and the API
  3. simulate  70,000 bots (Waledac-like, a DGA family and a spam bot) with
               addresses of the demo world, calling home ~36 times a day
               each, time compressed by --speed
  4. measure   count the infected hosts by family, country and network, and
               check them against the simulator's ground truth

It runs for --duration (0: until Ctrl-C); Ctrl-C stops everything cleanly.
The data directory (new, or --data-dir, which must be empty) stays behind
for the other commands to explore.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.runDemo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.bots, "bots", 70_000, "infected hosts in the simulated botnet")
	f.Float64Var(&o.speed, "speed", 100, "time compression: simulated seconds per real second")
	f.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the botnet calls home (0: until Ctrl-C)")
	f.IntVar(&o.backfill, "backfill", 0, "days of history to generate first, through serve's ingest endpoint")
	f.StringVar(&o.families, "families", "waledac=0.8,conficker=0.1,rustock=0.1", "the botnet's families and their shares")
	f.StringVar(&o.store, "store", config.EngineDuckDB, "where the events go: duckdb, the database file; clickhouse, a clickhouse-server the demo starts (from the PATH), its data in the demo's directory")
	f.IntVar(&o.sensors, "sensors", 0, "run a central and this many sensors as processes of their own, joined by a local three-node NATS JetStream cluster (nats-server from the PATH); the bots are split between the sensors")
	return cmd
}

// demoDGASeized is how many of a DGA day's names the demo's second case
// seizes, out of sim.DGANamesPerDay.
const demoDGASeized = 25

// runDemo runs the demo until ctx ends it (SIGINT or SIGTERM: the command's
// context ends the live run, and a second signal the process).
func (e *env) runDemo(ctx context.Context, o demoOptions) error {
	if o.bots <= 0 || o.bots > 1_000_000 {
		return usage(fmt.Errorf("--bots: %d is not from 1 to 1,000,000", o.bots))
	}
	if o.speed <= 0 || o.speed > 100_000 {
		return usage(fmt.Errorf("--speed: %v is not above 0 and at most 100,000", o.speed))
	}
	if o.backfill < 0 || o.backfill > 60 {
		return usage(fmt.Errorf("--backfill: %d days is not from 0 to 60", o.backfill))
	}
	if o.sensors < 0 || o.sensors > 8 {
		return usage(fmt.Errorf("--sensors: %d is not from 0 to 8", o.sensors))
	}
	if o.sensors > 0 {
		if _, err := natsrun.Binary(); err != nil {
			return fmt.Errorf("--sensors: %w", err)
		}
	}
	switch o.store {
	case config.EngineDuckDB:
	case config.EngineClickHouse:
		if _, err := chrun.Binary(); err != nil {
			return fmt.Errorf("--store clickhouse: %w", err)
		}
	default:
		return usage(fmt.Errorf("--store: %q is not one of duckdb, clickhouse", o.store))
	}
	shares, err := sim.ParseShares(o.families)
	if err != nil {
		return usage(fmt.Errorf("--families: %w", err))
	}
	dir := e.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "takedown-demo-"); err != nil {
			return err
		}
	} else if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("--data-dir %s is not empty; the demo needs a fresh directory", dir)
	}
	base, err := e.config()
	if err != nil {
		return err
	}
	world, err := demoworld.New()
	if err != nil {
		return err
	}
	worldDB := filepath.Join(dir, demoworld.FileName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := world.WriteFile(worldDB); err != nil {
		return err
	}
	cfg, err := demoConfig(base, dir, worldDB)
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "takedown demo: a Waledac-sized takedown (fictional data) in %s\n\n", dir)
	var ch *demoCH
	if o.store == config.EngineClickHouse {
		if ch, err = demoClickHouse(ctx, w, &cfg, dir); err != nil {
			return err
		}
		defer ch.stop(w)
	}
	cfgFile := filepath.Join(dir, "takedown.yaml")
	if err := writeConfig(cfgFile, cfg); err != nil {
		return err
	}

	// 1. Seize.
	now := e.now().UTC()
	horizon := time.Duration(float64(o.duration)*o.speed) + 48*time.Hour
	if o.duration == 0 {
		horizon = 60 * 24 * time.Hour
	}
	waledac, dga, err := demoSeize(ctx, w, cfg, now, o.backfill, horizon)
	if err != nil {
		return err
	}
	password, err := demoUser(ctx, cfg)
	if err != nil {
		return err
	}

	// 2. Sinkhole: serve, in this process, logging to a file; or a
	// central and sensors, each a process, joined by NATS.
	logFile, err := os.OpenFile(filepath.Join(dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer logFile.Close()
	var (
		client   *api.Client
		fleet    *demoFleet
		shutdown func() error
	)
	if o.sensors > 0 {
		if fleet, err = startFleet(ctx, w, cfg, o.sensors, dir); err != nil {
			return err
		}
		client, shutdown = fleet.client, fleet.stopOnce(w)
	} else if client, shutdown, err = demoServe(ctx, w, cfg, logFile); err != nil {
		return err
	}
	defer shutdown()
	fmt.Fprintf(w, "            dashboard http://%s/ui/   (user demo, password %s)\n", cfg.API.Listen, password)
	fmt.Fprintf(w, "            API      http://%s/v1/status   (token in %s)\n", cfg.API.Listen, cfg.API.TokenFile)
	fmt.Fprintf(w, "            metrics  http://%s/metrics   (the same token)\n", cfg.API.Listen)

	// 3. Simulate.
	sc := sim.Config{
		Bots:     o.bots,
		Families: shares,
		Speed:    o.speed,
		Domains:  map[string][]string{sim.Waledac: waledac, sim.Conficker: dga},
		World:    world,
		Seed:     2010,
		Start:    now,
		Duration: o.duration,
		Logger:   slog.New(slog.NewTextHandler(logFile, nil)),
	}
	if fleet != nil {
		sc.Sensors = fleet.targets
	} else {
		sc.Targets = sim.Targets{DNS: cfg.DNS.Listen[0], HTTP: cfg.Listen.HTTP[0], SMTP: cfg.Listen.SMTP[0]}
	}
	s, err := sim.New(sc)
	if err != nil {
		return err
	}
	if o.backfill > 0 {
		t0 := time.Now()
		err := s.Backfill(ctx, time.Duration(o.backfill)*24*time.Hour, func(ctx context.Context, batch []event.Event) error {
			_, err := client.Ingest(ctx, sim.SensorID, batch)
			return err
		})
		if err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		fmt.Fprintf(w, "3. history  %d day(s) of callbacks generated and sent to serve's ingest endpoint in %s\n",
			o.backfill, time.Since(t0).Round(time.Millisecond))
	}
	until := "until Ctrl-C"
	if o.duration > 0 {
		until = "for " + o.duration.String() + " (Ctrl-C stops it early)"
	}
	fmt.Fprintf(w, "3. simulate %s bots call home, time ×%g, %s\n", thousands(int64(o.bots)), o.speed, until)
	simDone := make(chan error, 1)
	go func() { simDone <- s.Run(ctx) }()
	live := newLiveLine(e.stderr)
	tick := time.NewTicker(2 * time.Second)
	var simErr error
loop:
	for {
		select {
		case simErr = <-simDone:
			break loop
		case <-tick.C:
			live.show(ctx, client, s)
		}
	}
	tick.Stop()
	live.done()
	if simErr != nil && !errors.Is(simErr, context.Canceled) {
		return fmt.Errorf("simulate: %w", simErr)
	}

	// 4. Measure, once the pipeline has stored everything. A live run
	// that ended by the clock leaves the measuring to a Ctrl-C too; after
	// one that ended by a Ctrl-C, the next ends the process.
	measure := context.Background()
	if ctx.Err() == nil {
		measure = ctx
	}
	wctx, cancel := context.WithTimeout(measure, 5*time.Minute)
	defer cancel()
	truth := s.Truth()
	if fleet != nil {
		if err := fleet.waitStored(wctx, truth); err != nil {
			return err
		}
	}
	if err := waitStored(wctx, client); err != nil {
		return err
	}
	if fleet != nil {
		if err := fleet.shares(wctx, w, truth); err != nil {
			return err
		}
	}
	if err := demoMeasure(wctx, w, client, truth, now.AddDate(0, 0, -o.backfill-1), time.Now().Add(time.Hour)); err != nil {
		return err
	}
	if err := shutdown(); err != nil {
		return fmt.Errorf("stopping: %w", err)
	}
	local, err := app.Open(wctx, cfg)
	if err != nil {
		return err
	}
	defer local.Close()
	n, err := local.Registry.VerifyAudit(wctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n5. prove    audit log: %s entries, hash chain verified\n", thousands(n))
	if err := e.demoExhibit(wctx, w, cfg, local, now.AddDate(0, 0, -o.backfill-1)); err != nil {
		return err
	}
	if ch != nil {
		local.Close()
		ch.stop(w)
	}
	demoExplore(w, takedownCommand(), cfgFile, ch)
	return nil
}

// demoExplore prints the commands to run after the demo, each as it can be
// pasted into a shell: td is how to call this program, cfgFile the demo's
// config.
func demoExplore(w io.Writer, td, cfgFile string, ch *demoCH) {
	c := td + " -c " + shellQuote(cfgFile)
	fmt.Fprintf(w, "\nExplore it (its config: %s):\n", cfgFile)
	if td != "takedown" {
		fmt.Fprintf(w, "  # takedown is not on your PATH: `go install ./cmd/takedown` puts it in $(go env GOPATH)/bin;\n  # until then, these call it as %s\n", td)
	}
	if ch != nil {
		fmt.Fprintf(w, "  %s &    # first: the demo's ClickHouse, which keeps the events\n", ch.command)
	}
	for _, l := range []string{
		"cases show waledac-2010",
		"domains list --state sinkholed --case waledac-2010",
		"deadlines --within 30d",
		"stats hosts --by family,country",
		"audit verify",
		"serve &    # the sinkhole again, on the demo's ports; then, beside it:",
		"simulate --bots 2000 --speed 100 --duration 10s",
		"status",
	} {
		fmt.Fprintf(w, "  %s %s\n", c, l)
	}
	fmt.Fprintf(w, "  kill %%1    # stops serve (as Ctrl-C would)\n")
}

// takedownCommand is how a user calls this program from a shell: takedown
// when the PATH finds this very executable; after `go run`, whose
// executable goes away when it ends, `go run ./cmd/takedown`, valid where
// the user ran it; else the executable's absolute path.
func takedownCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "takedown"
	}
	if p, err := exec.LookPath("takedown"); err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(exe)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "takedown"
		}
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/takedown"
	}
	return shellQuote(exe)
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeConfig writes cfg as a config file at path, for the commands run
// after the demo.
func writeConfig(path string, cfg config.Config) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// demoServe starts serve in this process, logging to logFile, and
// returns its API's client and what stops it.
func demoServe(ctx context.Context, w io.Writer, cfg config.Config, logFile *os.File) (*api.Client, func() error, error) {
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		served <- app.Serve(serveCtx, cfg, newLogger(logFile, cfg), func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-served:
		stopServe()
		return nil, nil, fmt.Errorf("serve: %w (see %s)", err, logFile.Name())
	case <-ctx.Done():
		stopServe()
		<-served
		return nil, nil, ctx.Err()
	}
	stopped := false
	shutdown := func() error {
		if stopped {
			return nil
		}
		stopped = true
		t0 := time.Now()
		stopServe()
		err := <-served
		fmt.Fprintf(w, "            serve stopped in %s\n", time.Since(t0).Round(time.Millisecond))
		return err
	}
	token, err := app.ReadToken(cfg.API.TokenFile)
	if err != nil {
		shutdown()
		return nil, nil, err
	}
	fmt.Fprintf(w, "2. sinkhole serve is up (log: %s)\n", logFile.Name())
	fmt.Fprintf(w, "            DNS      %s   HTTP %s   HTTPS %s   SMTP %s\n",
		cfg.DNS.Listen[0], cfg.Listen.HTTP[0], cfg.Listen.HTTPS[0], cfg.Listen.SMTP[0])
	return api.NewClient(cfg.API.Listen, token, "demo"), shutdown, nil
}

// demoConfig is the demo's serve: everything on free loopback ports, the
// demo world database, and no response-rate limit (the simulated bots
// crowd into far fewer /24s than real ones).
func demoConfig(base config.Config, dir, worldDB string) (config.Config, error) {
	cfg, err := config.WithDataDir(base, dir)
	if err != nil {
		return cfg, err
	}
	cfg.Store.Path = filepath.Join(dir, "takedown.duckdb")
	cfg.Sensor = "demo"
	cfg.Operator = "the takedown demo"
	cfg.Enrich.Databases = []string{worldDB}
	cfg.DNS.RRL.ResponsesPerSecond = -1
	ports, err := freeport.Distinct(6)
	if err != nil {
		return cfg, err
	}
	at := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	cfg.API.Listen = at(0)
	cfg.DNS.Listen = []string{at(1)}
	cfg.Transfer.Listen = []string{at(2)}
	cfg.Listen.HTTP = []string{at(3)}
	cfg.Listen.HTTPS = []string{at(4)}
	cfg.Listen.SMTP = []string{at(5)}
	cfg.Listen.TCP, cfg.Listen.UDP = nil, nil
	return cfg, cfg.Validate()
}

// demoSeize opens the two cases and their domains, sinkholed, and returns
// the Waledac case's domains and the DGA names seized.
func demoSeize(ctx context.Context, w io.Writer, cfg config.Config, now time.Time, backfillDays int, horizon time.Duration) (waledac, dga []string, err error) {
	local, err := app.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	defer local.Close()
	reg := local.Registry
	ch := registry.Change{Actor: "demo", Reason: "demonstration"}

	// The case and its orders, in the sequence of the 2010 Waledac
	// operation: an ex parte TRO, then, when no defendant appeared, a
	// default judgement after a 14-day objection window (the dates of the
	// later orders are moved near today so that deadlines have something
	// to show).
	c, err := reg.AddCase(ctx, registry.NewCase{
		Name: "waledac-2010", Title: "Plaintiff v. John Does 1-27 (demo)",
		Court: "U.S. District Court, E.D. Va.", Docket: "1:10-cv-00156", Family: sim.Waledac,
	}, ch)
	if err != nil {
		return nil, nil, err
	}
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	today := now.Truncate(24 * time.Hour)
	orders := []registry.NewOrder{
		{Type: registry.OrderTRO, Reference: "Dkt. 12", Issued: d("2010-02-22"), Expires: d("2010-03-08")},
		{Type: registry.OrderPreliminaryInjunction, Reference: "Dkt. 33", Issued: d("2010-03-08"), ObjectionDeadline: d("2010-03-22")},
		{Type: registry.OrderDefaultJudgement, Reference: "Dkt. 58 (demo)", Issued: today.AddDate(0, 0, -3), ObjectionDeadline: today.AddDate(0, 0, 11)},
	}
	for _, o := range orders {
		if _, err := reg.AddOrder(ctx, c.Name, o, ch); err != nil {
			return nil, nil, err
		}
	}
	fmt.Fprintf(w, "1. seize    case %s, %s %s, %d orders (TRO; default judgement, 14-day objection window)\n", c.Name, c.Court, c.Docket, len(orders))
	res, err := reg.ImportDomains(ctx, c.Name, "waledac-domains.csv", demoDomains, ch)
	if err != nil {
		return nil, nil, err
	}
	if err := sinkhole(ctx, reg, res.Domains, ch); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(w, "            %d domains imported from the order's list, restrained, then sinkholed\n", len(res.Domains))
	waledac = res.Domains

	// The DGA family's case seizes a share of each day's generated names,
	// from the first day of the history to past the end of the run.
	dc, err := reg.AddCase(ctx, registry.NewCase{
		Name: "dga-2026", Title: "Plaintiff v. John Does (DGA demo)",
		Court: "U.S. District Court, E.D. Va.", Docket: "1:26-cv-00001", Family: sim.Conficker,
	}, ch)
	if err != nil {
		return nil, nil, err
	}
	if _, err := reg.AddOrder(ctx, dc.Name, registry.NewOrder{Type: registry.OrderTRO, Reference: "Dkt. 5 (demo)",
		Issued: today.AddDate(0, 0, -backfillDays-1), Expires: today.AddDate(0, 0, 13-backfillDays)}, ch); err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	list := []string{"name,registry"}
	for day := today.AddDate(0, 0, -backfillDays-1); !day.After(now.Add(horizon)); day = day.AddDate(0, 0, 1) {
		for _, n := range sim.DGANames(day, sim.DGANamesPerDay)[:demoDGASeized] {
			if !seen[n] {
				seen[n] = true
				dga = append(dga, n)
				list = append(list, n+","+demoRegistry(n))
			}
		}
	}
	res, err = reg.ImportDomains(ctx, dc.Name, "dga-names.csv", []byte(strings.Join(list, "\n")), ch)
	if err != nil {
		return nil, nil, err
	}
	if err := sinkhole(ctx, reg, res.Domains, ch); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(w, "            case %s: %s DGA names seized ahead (%d a day), sinkholed\n", dc.Name, thousands(int64(len(dga))), demoDGASeized)
	return waledac, dga, nil
}

// demoRegistry names the fictional registry of a demo name's TLD, as the
// demo's Waledac list does: the names are under reserved TLDs, which no
// real registry runs.
func demoRegistry(name string) string {
	return "Fictional ." + name[strings.LastIndexByte(name, '.')+1:] + " Registry"
}

// sinkhole moves freshly imported domains through restrained to sinkholed.
func sinkhole(ctx context.Context, reg *registry.Registry, names []string, ch registry.Change) error {
	for _, to := range []registry.State{registry.StateRestrained, registry.StateSinkholed} {
		if _, err := reg.SetState(ctx, names, to, ch); err != nil {
			return err
		}
	}
	return nil
}

// liveLine is the demo's running summary: callbacks sent, unique hosts
// counted today, the top countries. On a terminal it redraws one line;
// elsewhere it prints a line every ten seconds.
type liveLine struct {
	w        io.Writer
	terminal bool
	last     time.Time
	start    time.Time
}

func newLiveLine(w io.Writer) *liveLine {
	return &liveLine{w: w, terminal: progress.IsTerminal(w), start: time.Now()}
}

func (l *liveLine) show(ctx context.Context, c *api.Client, s *sim.Sim) {
	if !l.terminal && time.Since(l.last) < 10*time.Second {
		return
	}
	l.last = time.Now()
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st := s.Stats()
	line := fmt.Sprintf("%s  callbacks %s (%s/s), errors %s", time.Since(l.start).Round(time.Second),
		thousands(st.Callbacks), thousands(int64(st.Rate)), thousands(st.Errors))
	if st.Lag > time.Second {
		line += fmt.Sprintf(" (%s behind)", st.Lag.Round(time.Second))
	}
	if status, err := c.Status(qctx); err == nil {
		var hosts uint64
		for _, f := range status.Today {
			hosts += f.Hosts
		}
		line += fmt.Sprintf(" · unique hosts today %s", thousands(int64(hosts)))
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	rows, err := c.UniqueHosts(qctx, eventstore.HostQuery{From: day, To: day.Add(24 * time.Hour), GroupBy: []eventstore.Dimension{eventstore.DimCountry}, Infected: true, Limit: 3})
	if err == nil && len(rows) > 0 {
		var top []string
		for _, r := range rows {
			top = append(top, fmt.Sprintf("%s %s", orDash(r.Country), thousands(r.IPs)))
		}
		line += " · top " + strings.Join(top, ", ")
	}
	if l.terminal {
		fmt.Fprintf(l.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(l.w, line)
	}
}

func (l *liveLine) done() {
	if l.terminal {
		fmt.Fprintln(l.w)
	}
}

// waitStored waits until serve's pipeline has stored every event recorded.
func waitStored(ctx context.Context, c *api.Client) error {
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if st.Pipeline.Backlog == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the store is still %s events behind: %w", thousands(int64(st.Pipeline.Backlog)), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// demoMeasure prints the census of the run and checks it against the
// simulator's ground truth.
func demoMeasure(ctx context.Context, w io.Writer, c *api.Client, truth *sim.Truth, from, to time.Time) error {
	q := eventstore.HostQuery{From: from, To: to, GroupBy: []eventstore.Dimension{eventstore.DimFamily}, Infected: true}
	fams, err := c.UniqueHosts(ctx, q)
	if err != nil {
		return err
	}
	// A callback is what a bot does to call home once, and may leave more
	// than one event at the sinkhole (a Waledac bot's DNS query, then its
	// HTTP POST): the simulator counts both, the store only events.
	fmt.Fprintf(w, "4. measure  %s callbacks sent, %s events recorded for them (a Waledac callback is two: its DNS query and its HTTP POST);\n"+
		"            infected hosts counted by the sinkhole and by the simulator:\n\n", thousands(truth.Callbacks), thousands(truth.Events))
	t := newTable(w, "FAMILY", "IPS", "BOTS", "EVENTS", "TRUTH IPS", "TRUTH BOTS", "TRUTH EVENTS", "TRUTH CALLBACKS", "")
	for _, r := range fams {
		tf := truth.Families[r.Family]
		ok := "✓"
		if r.IPs != tf.IPs || (tf.Bots > 0 && r.Bots != tf.Bots) {
			ok = "✗ differs"
		}
		t.row(orDash(r.Family), thousands(r.IPs), thousands(r.Bots), thousands(r.Events), thousands(tf.IPs), thousands(tf.Bots),
			thousands(tf.Events), thousands(tf.Callbacks), ok)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, dim := range []eventstore.Dimension{eventstore.DimCountry, eventstore.DimASN} {
		q := eventstore.HostQuery{From: from, To: to, GroupBy: []eventstore.Dimension{dim}, Infected: true, Limit: 5}
		rows, err := c.UniqueHosts(ctx, q)
		if err != nil {
			return err
		}
		what := map[eventstore.Dimension]string{eventstore.DimCountry: "countries", eventstore.DimASN: "networks"}[dim]
		fmt.Fprintf(w, "\n            top %s:\n\n", what)
		if err := printHosts(w, q, rows); err != nil {
			return err
		}
	}
	return nil
}

// demoUser adds the dashboard's admin "demo" with a random password, which
// it returns for the demo to print.
func demoUser(ctx context.Context, cfg config.Config) (string, error) {
	local, err := app.Open(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer local.Close()
	us, err := users.Open(ctx, users.Config{DB: local.DB})
	if err != nil {
		return "", err
	}
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(b)
	if _, err := us.Add(ctx, "demo", users.Admin, []byte(password)); err != nil {
		return "", err
	}
	return password, nil
}
