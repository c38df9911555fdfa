// Package cli is takedown's command line: the subcommands, their flags and
// their output. Commands that read or change the registry talk to a running
// `takedown serve` through its API when one answers, and open the database
// file themselves otherwise; the result is the same either way.
package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/registry"
)

// Backend is what the registry commands need; the local registry and the API
// client both provide it.
type Backend interface {
	api.Registry
	api.Events
	api.Reports
	api.Quarantine
	api.DNSSEC
	Status(ctx context.Context) (api.Status, error)
}

var (
	_ Backend = (*api.Client)(nil)
	_ Backend = localBackend{}
)

// localBackend joins the registry, the store and the reports opened in this
// process.
type localBackend struct {
	*registry.Registry
	app.EventStore
	api.Reports
	app.LocalQuarantine
	*app.Keys
	cfg config.Config
	db  *sql.DB // the takedown database file, for the evidence log
}

// Status describes the files, since no server runs.
func (l localBackend) Status(ctx context.Context) (api.Status, error) {
	return app.OfflineStatus(ctx, l.cfg, l.EventStore, l.db)
}

// env is what every command shares: the global flags, the config, the
// streams.
type env struct {
	configPath string
	dataDir    string
	actor      string
	mode       string // auto, local, remote
	jsonOut    bool
	// role, if set (serve --role), replaces the config file's role.
	role *string

	stdout, stderr io.Writer
	now            func() time.Time

	cfg    config.Config
	loaded bool
}

// Main runs the command line with args (without the program name) and
// returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, now: time.Now}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Add cobra's help and completion commands now, so that their errors
	// too count as run errors.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	markRunErrors(root)
	if err := root.ExecuteContext(ctx); err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	return ExitOK
}

func printError(w io.Writer, err error) {
	var ie *registry.ImportError
	if errors.As(err, &ie) {
		// As many as the API sends, so that both modes print the same.
		ie = ie.Shorten(api.MaxProblems)
		fmt.Fprintf(w, "takedown: %s: %d problem(s), nothing was imported:\n", ie.File, ie.Count())
		for _, p := range ie.Problems {
			fmt.Fprintf(w, "%s:%d: %s", ie.File, p.Line, p.Msg)
			if p.Text != "" {
				fmt.Fprintf(w, ": %q", p.Text)
			}
			fmt.Fprintln(w)
		}
		if more := ie.Count() - len(ie.Problems); more > 0 {
			fmt.Fprintf(w, "takedown: and %d more problem(s), not listed\n", more)
		}
		return
	}
	fmt.Fprintf(w, "takedown: %v\n", err)
}

func (e *env) rootCommand() *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "takedown",
		Short: "Botnet takedown platform: seized domains, DNS sinkhole, bot census, remediation reports",
		Long: `takedown tracks the domains a court order seizes, serves them from a DNS
sinkhole, records every bot that calls home, and tells each network owner
which of its machines are infected.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion {
				return e.showVersion(cmd.Context())
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print the version and exit (with --json: as JSON)")
	root.Flags().BoolVar(&e.jsonOut, "json", false, "with --version: print JSON")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	pf := root.PersistentFlags()
	pf.StringVarP(&e.configPath, "config", "c", os.Getenv("TAKEDOWN_CONFIG"), "config file (YAML); default: none, built-in defaults ($TAKEDOWN_CONFIG)")
	pf.StringVar(&e.dataDir, "data-dir", "", "data directory, overriding data_dir of the config")
	pf.StringVar(&e.actor, "actor", "", "who makes the change, for the audit log (default $TAKEDOWN_ACTOR or the login name)")
	pf.StringVar(&e.mode, "mode", "auto", "auto: use the running server's API when one answers, else open the database; local: always open the database; remote: always use the API")
	root.AddCommand(
		e.serveCommand(),
		e.configCommand(),
		e.casesCommand(),
		e.domainsCommand(),
		e.deadlinesCommand(),
		e.registrarsCommand(),
		e.auditCommand(),
		e.statsCommand(),
		e.rpzCommand(),
		e.demoCommand(),
		e.statusCommand(),
		e.quarantineCommand(),
		e.simulateCommand(),
		e.subscribersCommand(),
		e.mapCommand(),
		e.reportCommand(),
		e.usersCommand(),
		e.evidenceCommand(),
		e.dnssecCommand(),
		e.versionCommand(),
		e.docsCommand(),
	)
	root.AddCommand(newWorldDBCmd(), newEnrichCmd())
	root.AddCommand(e.backupCommands()...)
	return root
}

// config loads the configuration once.
func (e *env) config() (config.Config, error) {
	if e.loaded {
		return e.cfg, nil
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return cfg, err
	}
	e.cfg, e.loaded = cfg, true
	return cfg, nil
}

// loadConfig reads the configuration: the --config file (or the
// defaults) with --data-dir applied, and the defaults that the packages
// own filled in (app.Effective). serve calls it again on SIGHUP.
func (e *env) loadConfig() (config.Config, error) {
	var cfg config.Config
	var err error
	if e.configPath != "" {
		cfg, err = config.Load(e.configPath)
	} else {
		cfg, err = config.Parse("defaults", nil)
	}
	if err != nil {
		return cfg, err
	}
	if e.dataDir != "" {
		if cfg, err = config.WithDataDir(cfg, e.dataDir); err != nil {
			return cfg, err
		}
	}
	if e.role != nil {
		cfg.Role = *e.role
		if cfg.Role == "single" {
			cfg.Role = config.RoleSingle
		}
		if err := cfg.Validate(); err != nil {
			return cfg, fmt.Errorf("--role %s: %w", *e.role, err)
		}
	}
	return app.Effective(cfg), nil
}

func (e *env) actorName() string {
	if e.actor != "" {
		return e.actor
	}
	if a := os.Getenv("TAKEDOWN_ACTOR"); a != "" {
		return a
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "cli"
}

func (e *env) change(reason string) registry.Change {
	return registry.Change{Actor: e.actorName(), Reason: reason}
}

// backend returns the running server's API when one answers (and the mode
// allows it), else the database opened here. close releases it.
func (e *env) backend(ctx context.Context) (b Backend, close func() error, err error) {
	cfg, err := e.config()
	if err != nil {
		return nil, nil, err
	}
	switch e.mode {
	case "auto", "local", "remote":
	default:
		return nil, nil, usage(fmt.Errorf("--mode: %q is not one of auto, local, remote", e.mode))
	}
	if e.mode != "local" {
		c, err := e.remote(ctx, cfg)
		if err == nil {
			return c, func() error { return nil }, nil
		}
		if e.mode == "remote" || !errors.Is(err, api.ErrUnreachable) {
			return nil, nil, err
		}
	}
	l, err := app.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	// The CLI prints what it did; of the reports' log only warnings (a
	// delivery attempt failed) go to stderr.
	repLog := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	keys := &app.Keys{Cfg: cfg, Store: l.Keys, Registry: l.Registry, ParentDS: l.Registry.ParentDS}
	return localBackend{l.Registry, l.Store, app.LocalReports(cfg, l, repLog), app.LocalQuarantine{Cfg: cfg, Log: repLog}, keys, cfg, l.DB}, l.Close, nil
}

func (e *env) remote(ctx context.Context, cfg config.Config) (*api.Client, error) {
	tok, err := app.ReadToken(cfg.API.TokenFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	c := app.NewAPIClient(cfg, tok, e.actorName())
	if err := c.Ping(ctx); err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, fmt.Errorf("a takedown server answers at %s but the API token file %s does not exist: run the CLI as the server's user or with its config", cfg.API.Listen, cfg.API.TokenFile)
	}
	return c, nil
}

// withBackend runs fn with a backend and closes it after.
func (e *env) withBackend(cmd *cobra.Command, fn func(ctx context.Context, b Backend) error) error {
	ctx := cmd.Context()
	b, closeFn, err := e.backend(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx, b)
	if _, remote := b.(*api.Client); remote && err != nil {
		err = lostServer(err)
	}
	if cerr := closeFn(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	log, _ := newLeveledLogger(w, cfg)
	return log
}

// newLeveledLogger returns a logger of cfg's level and format, and its
// level, which serve sets again on SIGHUP.
func newLeveledLogger(w io.Writer, cfg config.Config) (*slog.Logger, *slog.LevelVar) {
	lvl := new(slog.LevelVar)
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(cfg.Log.Level)))
	lvl.Set(l)
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lvl
	}
	return slog.New(slog.NewTextHandler(w, opts)), lvl
}
