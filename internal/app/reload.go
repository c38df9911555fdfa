package app

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich"
)

// Hooks tie a serve to the command that runs it; every one is optional.
// (A Config is what a component is made with, Options the knobs of one
// call that produces something, such as a report; these are neither.)
type Hooks struct {
	// Ready, if set, is called with the API address once everything
	// accepts requests.
	Ready func(addr string)
	// Reloads asks for reloads: each value received reloads the config
	// (with Reload), the rules and the enrichment files. takedown serve
	// passes the channel that signal.Notify fills with SIGHUP; serve
	// itself handles no signal. Nil: no reloads (the rules and the
	// enrichment files still follow their files).
	Reloads <-chan os.Signal
	// Reload, if set, reads the configuration again for a reload (the
	// file serve was started with). An error leaves the running
	// configuration as it is. Nil: a reload re-reads the rules and
	// enrichment files of the configuration in force.
	Reload func() (config.Config, error)
	// LogLevel, if set, is the level of the logger's handler; a reload
	// sets it from log.level. Without it a change of log.level waits for
	// a restart.
	LogLevel *slog.LevelVar
}

// reloader applies a configuration read again (on SIGHUP) to a running
// serve: what can change live (liveKey) is applied, every other change is
// logged as waiting for a restart.
type reloader struct {
	// cur is the configuration in force: the one serve started with, with
	// the live changes of the reloads since.
	cur   config.Config
	load  func() (config.Config, error)
	level *slog.LevelVar
	rules *classify.Holder
	enr   *enrich.Enricher
	log   *slog.Logger
}

// liveKey reports whether a reload applies a change of key.
func (r *reloader) liveKey(key string) bool {
	switch key {
	case "classify.rules", "enrich.databases", "enrich.abuse_files", "enrich.rir_files":
		if r.rules == nil {
			return false // a sensor
		}
		return true
	case "log.level":
		return r.level != nil
	}
	return false
}

// reload reads the configuration, or takes the one in force when there is
// no file, re-reads the rules and the enrichment files, and applies the
// live changes. A configuration that does not load or validate changes
// nothing; a rules file that does not load leaves the rules in force
// (and the key unchanged, so that the next reload tries again).
func (r *reloader) reload() {
	t0 := time.Now()
	next := r.cur
	if r.load != nil {
		c, err := r.load()
		if err != nil {
			r.log.Error("SIGHUP: config not reloaded; the running config stays", "err", err)
			return
		}
		next = Effective(c)
	}
	var live, restart []string
	for _, key := range config.Changed(r.cur, next) {
		if r.liveKey(key) {
			live = append(live, key)
		} else {
			restart = append(restart, key)
		}
	}
	for _, key := range restart {
		r.log.Warn(key + " changed; takes effect on restart")
	}
	// The level first, so that what follows logs at the new one.
	if r.level != nil {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(next.Log.Level)); err == nil {
			r.level.Set(lvl)
			r.cur.Log.Level = next.Log.Level
		}
	}
	// The rules file is read again even when its name is the same, and so
	// are the enrichment files that changed on disk.
	if r.rules == nil {
		// A sensor: its rules are the central's, it enriches nothing.
		r.log.Info("SIGHUP: reloaded config", "applied", strings.Join(live, ","),
			"restart_needed", strings.Join(restart, ","), "took", time.Since(t0).Round(time.Microsecond))
		return
	}
	var failed []string
	if err := r.rules.SetPath(next.Classify.Rules); err != nil {
		failed = append(failed, "classify.rules") // logged by the Holder; the rules in force stay
	} else {
		r.cur.Classify.Rules = next.Classify.Rules
	}
	e := next.Enrich
	if _, err := r.enr.SetFiles(e.Databases, e.AbuseFiles, e.RIRFiles); err != nil {
		// config.Validate refuses what SetFiles does; this is a guard.
		r.log.Error("SIGHUP: enrichment files not changed", "err", err)
		failed = append(failed, "enrich")
	} else {
		r.cur.Enrich.Databases, r.cur.Enrich.AbuseFiles, r.cur.Enrich.RIRFiles = e.Databases, e.AbuseFiles, e.RIRFiles
	}
	applied := slices.DeleteFunc(live, func(k string) bool {
		return slices.ContainsFunc(failed, func(f string) bool { return strings.HasPrefix(k, f) })
	})
	r.log.Info("SIGHUP: reloaded config, rules and enrichment files",
		"applied", strings.Join(applied, ","), "failed", strings.Join(failed, ","),
		"restart_needed", strings.Join(restart, ","),
		"rules", r.rules.Rules().Len(), "enrich_files", len(r.enr.Sources()),
		"took", time.Since(t0).Round(time.Microsecond))
}
