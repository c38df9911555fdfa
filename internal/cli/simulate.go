package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/sim"
)

// simOptions are the flags of `takedown simulate`.
type simOptions struct {
	dns, http, smtp string
	bots            int
	families        string
	natShare        float64
	natMax          int
	perDay, speed   float64
	churn, notChurn float64
	notified        string
	notifiedShare   float64
	duration        time.Duration
	maxCallbacks    int64
	backfill        string
	live            bool
	truth           string
	seed            uint64
	allowRemote     bool
	concurrency     int
}

// defaultFamilies: mostly Waledac, the demo's case, with a tenth each of
// the DGA and spam families so that every sink and rule is exercised.
const defaultFamilies = "waledac=0.8,conficker=0.1,rustock=0.1"

func (e *env) simulateCommand() *cobra.Command {
	var o simOptions
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run a synthetic botnet against this machine's sinkhole and count exactly what it got",
		Long: `Run a synthetic botnet of --bots infected hosts against the sinkhole on loopback:
Waledac bots resolve a seized name and POST to the HTTP listener, Conficker bots
look up the day's DGA names, Rustock bots send spam to the SMTP listener. Each
bot calls from its own 127.x.y.z address, which the demo world database maps to
a fictional network and country; some share an address behind NAT. Callbacks
follow a Poisson process, --callbacks-per-day per bot, in simulated time that
runs --speed times faster than real time; infections are cleaned at --churn per
day (--notified-churn in notified networks).

The seized names come from the registry (the running serve's API, else the
database): the served domains of each family's cases. --backfill first sends
the history of the past span to the running serve (POST /v1/ingest, sensor
"simulated") without network traffic, then the live run goes on with the bots
still infected. Seize the names first: serve follows the registry within a
second, and the backfill's DNS events count only for names it serves.

At the end: the ground truth — unique IPs, bot ids, callbacks and events per
family, network, country and day — as a summary, as JSON (--json) or into a
file (--truth), to compare with what the store counts. Progress goes to
stderr. The simulator refuses targets outside loopback unless --allow-remote.`,
		Example: `  takedown simulate --bots 1000 --speed 1000 --duration 1m
  takedown simulate --backfill 30d --duration 10m --truth truth.json
  takedown simulate --families waledac --max-callbacks 10000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.runSimulate(cmd.Context(), cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dns, "dns", "", "the sinkhole's DNS, host:port (default: the first dns.listen of the config)")
	f.StringVar(&o.http, "http", "", "the sinkhole's HTTP listener (default: the first listen.http)")
	f.StringVar(&o.smtp, "smtp", "", "the sinkhole's SMTP listener (default: the first listen.smtp)")
	f.IntVar(&o.bots, "bots", sim.DefaultBots, "infected hosts when simulated time begins")
	f.StringVar(&o.families, "families", defaultFamilies, "families and their shares of the bots: waledac, conficker, rustock")
	f.Float64Var(&o.natShare, "nat-share", sim.DefaultNATShare, "share of the bots behind NAT (several bots on one address)")
	f.IntVar(&o.natMax, "nat-max", sim.DefaultNATMax, "most bots on one NAT address")
	f.Float64Var(&o.perDay, "callbacks-per-day", sim.DefaultCallbacksPerDay, "mean callbacks per bot and simulated day")
	f.Float64Var(&o.speed, "speed", 1, "simulated seconds per real second")
	f.Float64Var(&o.churn, "churn", sim.DefaultChurn, "share of the infections cleaned per simulated day")
	f.Float64Var(&o.notChurn, "notified-churn", sim.DefaultNotifiedChurn, "the same in notified networks")
	f.StringVar(&o.notified, "notified", "", "notified networks: AS numbers, comma-separated (AS64512,64513)")
	f.Float64Var(&o.notifiedShare, "notified-share", 0, "share of the demo world's networks notified, picked from the seed")
	f.DurationVar(&o.duration, "duration", 0, "stop the live run after this long (0: at --max-callbacks or Ctrl-C)")
	f.Int64Var(&o.maxCallbacks, "max-callbacks", 0, "stop the live run after this many callbacks (0: no limit)")
	f.StringVar(&o.backfill, "backfill", "0", "send the history of this span before the live run, e.g. 30d or 12h (needs a running serve)")
	f.BoolVar(&o.live, "live", true, "call the sinkhole live after the backfill (--live=false: only the backfill)")
	f.StringVar(&o.truth, "truth", "", "write the ground truth to this file (JSON)")
	f.Uint64Var(&o.seed, "seed", 2010, "seed of the population and the callbacks")
	f.BoolVar(&o.allowRemote, "allow-remote", false, "allow targets outside loopback")
	f.IntVar(&o.concurrency, "concurrency", sim.DefaultConcurrency, "callbacks in flight at most")
	e.jsonFlag(cmd)
	return cmd
}

func (e *env) runSimulate(ctx context.Context, cmd *cobra.Command, o simOptions) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	shares, err := sim.ParseShares(o.families)
	if err != nil {
		return usage(fmt.Errorf("--%v", err))
	}
	span, err := parseSpan(o.backfill)
	if err != nil {
		return err
	}
	if !o.live && span == 0 {
		return usage(errors.New("--live=false runs only the backfill: give --backfill SPAN too, else nothing is simulated"))
	}
	notified, err := parseASNs(o.notified)
	if err != nil {
		return err
	}
	targets := sim.Targets{
		DNS:  targetOr(o.dns, cfg.DNS.Listen),
		HTTP: targetOr(o.http, cfg.Listen.HTTP),
		SMTP: targetOr(o.smtp, cfg.Listen.SMTP),
	}
	if err := targets.Check(o.allowRemote); err != nil {
		return usage(errors.New(strings.TrimPrefix(err.Error(), "sim: ")))
	}
	share := map[string]float64{}
	for _, s := range shares {
		share[s.Family] = s.Share
	}
	for _, need := range []struct{ family, flag, key, addr string }{
		{sim.Waledac, "dns", "dns.listen", targets.DNS}, {sim.Waledac, "http", "listen.http", targets.HTTP},
		{sim.Conficker, "dns", "dns.listen", targets.DNS}, {sim.Rustock, "smtp", "listen.smtp", targets.SMTP},
	} {
		if share[need.family] > 0 && need.addr == "" {
			return usage(fmt.Errorf("family %s needs the sinkhole's %s address: give --%s host:port (%s of the config has none with a fixed port)",
				need.family, strings.ToUpper(need.flag), need.flag, need.key))
		}
	}

	b, closeBackend, err := e.backend(ctx)
	if err != nil {
		return err
	}
	domains, err := seizedByFamily(ctx, b)
	if err == nil && span > 0 {
		if _, remote := b.(*api.Client); !remote {
			err = errors.New("--backfill sends events to a running takedown serve, and none answers: start `takedown serve` first")
		}
	}
	if cerr := closeBackend(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if share[sim.Waledac] > 0 && len(domains[sim.Waledac]) == 0 {
		return errors.New("no served domain belongs to a waledac case: seize some first (takedown demo, or cases add --family waledac, domains import and set-state), or choose other --families")
	}
	if share[sim.Conficker] > 0 && len(domains[sim.Conficker]) == 0 {
		fmt.Fprintln(e.stderr, "simulate: no conficker DGA names are served: the conficker bots' lookups will be refused and not stored")
	}

	natShare, churn, notChurn := o.natShare, o.churn, o.notChurn
	for _, v := range []*float64{&natShare, &churn, &notChurn} {
		if *v == 0 {
			*v = -1 // none; sim.Config's zero means the default
		}
	}
	s, err := sim.New(sim.Config{
		Targets: targets, AllowRemote: o.allowRemote,
		Bots: o.bots, Families: shares, NATShare: natShare, NATMax: o.natMax,
		CallbacksPerDay: o.perDay, Speed: o.speed, Churn: churn, NotifiedChurn: notChurn,
		NotifiedASNs: notified, NotifiedShare: o.notifiedShare,
		Domains: domains, Seed: o.seed, Start: e.now(),
		Duration: o.duration, MaxCallbacks: o.maxCallbacks, Concurrency: o.concurrency,
		Progress: e.stderr, Logger: newLogger(e.stderr, cfg),
	})
	if err != nil {
		// sim.New checks the values of the flags (its only other
		// error, reading the demo world built into the binary, does
		// not happen).
		return usage(errors.New(strings.TrimPrefix(err.Error(), "sim: ")))
	}
	if span > 0 {
		c := b.(*api.Client)
		err := s.Backfill(ctx, span, func(ctx context.Context, batch []event.Event) error {
			_, err := c.Ingest(ctx, sim.SensorID, batch)
			return err
		})
		if err != nil {
			return err
		}
	}
	if ctx.Err() == nil && o.live {
		if err := s.Run(ctx); err != nil {
			return err
		}
	}
	tr := s.Truth()
	if o.truth != "" {
		if err := tr.WriteFile(o.truth); err != nil {
			return fmt.Errorf("--truth: %w", err)
		}
	}
	if e.jsonOut {
		return tr.WriteJSON(e.stdout)
	}
	return printTruth(e.stdout, tr, o.speed)
}

// targetOr returns flag, else the first listen address with a fixed port,
// an unspecified host (0.0.0.0, ::) taken as 127.0.0.1.
func targetOr(flag string, listen []string) string {
	if flag != "" || len(listen) == 0 {
		return flag
	}
	host, port, err := net.SplitHostPort(listen[0])
	if err != nil || port == "0" {
		return ""
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// parseSpan reads a backfill span: Nd (days), or a Go duration such as
// 12h.
func parseSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.ParseFloat(n, 64); err == nil && d >= 0 && d <= 3660 {
			return time.Duration(d * float64(24*time.Hour)), nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 && d <= 3660*24*time.Hour {
		return d, nil
	}
	return 0, usage(fmt.Errorf("--backfill: %q is not a span of days (30d) or hours (12h) up to ten years", s))
}

// parseASNs reads "AS64512,64513".
func parseASNs(s string) ([]uint32, error) {
	var out []uint32
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(p), "AS"), 10, 32)
		if err != nil {
			return nil, usage(fmt.Errorf("--notified: %q is not an AS number", p))
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// seizedByFamily returns the names the sinkhole serves, by the family of
// their case (else the domain's own).
func seizedByFamily(ctx context.Context, b Backend) (map[string][]string, error) {
	served, err := app.LoadServed(ctx, b)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, sd := range served {
		fam := sd.Case.Family
		if fam == "" {
			fam = sd.Domain.Family
		}
		if fam = strings.ToLower(fam); fam != "" {
			out[fam] = append(out[fam], sd.Domain.Name)
		}
	}
	return out, nil
}

// printTruth writes the short human summary of a simulation.
func printTruth(w io.Writer, tr *sim.Truth, speed float64) error {
	fmt.Fprintf(w, "simulated %s to %s (speed %g): %s callbacks, %s events, %s errors, %s refused",
		stamp(tr.From), stamp(tr.To), speed, thousands(tr.Callbacks), thousands(tr.Events), thousands(tr.Errors), thousands(tr.Refused))
	if tr.MaxLagSeconds > 0 {
		fmt.Fprintf(w, ", max lag %s", time.Duration(tr.MaxLagSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\n%s of %s infected bots not yet cleaned\n\n", thousands(int64(tr.Active)), thousands(int64(tr.Infected)))
	t := newTable(w, "FAMILY", "INFECTED", "IPS", "BOTS", "CALLBACKS", "EVENTS", "ERRORS")
	names := make([]string, 0, len(tr.Families))
	for name := range tr.Families {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := tr.Families[name]
		t.row(f.Family, thousands(int64(f.Infected)), thousands(f.IPs), thousands(f.Bots), thousands(f.Callbacks), thousands(f.Events), thousands(f.Errors))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(tr.ByCountry) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ntop countries (unique IPs, all families)")
	t = newTable(w, "COUNTRY", "IPS", "BOTS", "CALLBACKS")
	for i, c := range tr.ByCountry {
		if i == 10 {
			break
		}
		t.row(c.Country, thousands(c.IPs), thousands(c.Bots), thousands(c.Callbacks))
	}
	return t.flush()
}
