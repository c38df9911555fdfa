package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/servedset"
)

// DefaultPublishEvery is how often a Publisher reads the audit log.
const DefaultPublishEvery = 250 * time.Millisecond

// PublisherConfig configures a Publisher. Served is required; the zero
// values of the other fields work.
type PublisherConfig struct {
	// Served is the set the publisher keeps in step with the registry.
	Served *servedset.Set
	// Sinkhole is what every zone answers (name servers, addresses, TTLs,
	// SOA contact).
	Sinkhole servedset.Sinkhole
	// Operator is named in the TXT of every zone; "" names none.
	Operator string
	// Every is how often the audit log is read for changes; default
	// DefaultPublishEvery.
	Every time.Duration
	// Logger receives a line per step and the errors (at most one a
	// minute while they repeat); nil discards.
	Logger *slog.Logger
	// Now gives the time that serials are made of; nil means time.Now.
	Now func() time.Time
	// Keys, if set, gives the DNSSEC keys of a case for the sinks (none:
	// its zones are unsigned); an error stops the load, or the step, that
	// asked. Touch makes the next step ask again.
	Keys func(ctx context.Context, caseName string) ([]dnssec.Key, error)
}

// Publisher is the registry's side of the served set: it loads the set
// whole at start (Load) and then, every Every, reads the audit entries
// written since the last one it read and turns them into one step of the
// set: the domains that entered a served state are put, those that left it
// removed, cases added or changed are put with their TXT and family. A
// change costs in proportion to itself: a domain released among a million
// is one audit entry read and one zone removed.
type Publisher struct {
	r   *Registry
	cfg PublisherConfig
	log *slog.Logger
	seq int64 // the newest audit entry the set reflects
	// The last error, and how many times it repeated since it was logged.
	lastErr  string
	errAt    time.Time
	repeated int
	// touched are the cases whose keys changed, for the next Poll.
	mu      sync.Mutex
	touched []string
}

// NewPublisher returns a publisher of r's served domains into cfg.Served.
func (r *Registry) NewPublisher(cfg PublisherConfig) *Publisher {
	if cfg.Every <= 0 {
		cfg.Every = DefaultPublishEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{r: r, cfg: cfg, log: log.With("component", "served")}
}

// servedCase is c as the sinks see it.
func (p *Publisher) servedCase(ctx context.Context, c Case) (servedset.Case, error) {
	sc := servedset.Case{Name: c.Name, Family: strings.ToLower(c.Family), TXT: SinkholeTXT(c, p.cfg.Operator)}
	if p.cfg.Keys != nil {
		keys, err := p.cfg.Keys(ctx, c.Name)
		if err != nil {
			return sc, fmt.Errorf("the DNSSEC keys of case %s: %w", c.Name, err)
		}
		sc.Keys = keys
	}
	return sc, nil
}

// Touch makes the next Poll put the case named again, with its keys as
// PublisherConfig.Keys gives them then (after a key rollover).
func (p *Publisher) Touch(caseName string) {
	p.mu.Lock()
	if !slices.Contains(p.touched, caseName) {
		p.touched = append(p.touched, caseName)
	}
	p.mu.Unlock()
}

// Load reads every served domain and every case, and replaces the set with
// them (the full load, at start).
func (p *Publisher) Load(ctx context.Context) error {
	t0 := time.Now()
	cur := p.cfg.Served.Load()
	d := &servedset.Delta{To: servedset.NextSerial(cur.Serial(), p.cfg.Now().Unix()), Sinkhole: &p.cfg.Sinkhole}
	seq, err := p.r.ServedDomains(ctx, func(name, caseName string) error {
		d.Put = append(d.Put, servedset.Zone{Name: name, Case: caseName})
		return nil
	})
	if err != nil {
		return err
	}
	// After the domains: cases are never removed, so this holds every
	// case a domain read names.
	cases, err := p.r.casesNamed(ctx, nil)
	if err != nil {
		return err
	}
	for _, c := range cases {
		sc, err := p.servedCase(ctx, c)
		if err != nil {
			return err
		}
		d.Cases = append(d.Cases, sc)
	}
	snap, err := servedset.Empty().Apply(d)
	if err != nil {
		return fmt.Errorf("loading the served set: %w", err)
	}
	p.cfg.Served.Replace(snap)
	p.seq = seq
	p.log.Info("served set loaded", "zones", snap.Len(), "cases", len(cases), "serial", snap.Serial(), "audit_seq", seq,
		"took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// Poll reads the changes since the last poll and applies them to the set
// as one step; it reports whether the set changed.
func (p *Publisher) Poll(ctx context.Context) (bool, error) {
	t0 := time.Now()
	p.mu.Lock()
	touched := p.touched
	p.touched = nil
	p.mu.Unlock()
	ch, err := p.r.ChangesSince(ctx, p.seq)
	if err != nil || (ch.Seq == p.seq && len(touched) == 0) {
		p.retouch(touched)
		return false, err
	}
	cur := p.cfg.Served.Load()
	d := &servedset.Delta{From: cur.Serial(), To: servedset.NextSerial(cur.Serial(), p.cfg.Now().Unix())}
	// Added, those of the domains put that the set lacks, those touched.
	need := slices.Clone(ch.Cases)
	for _, name := range touched {
		if _, ok := cur.CaseNamed(name); ok && !slices.Contains(need, name) {
			need = append(need, name)
		}
	}
	for _, dc := range ch.Domains {
		c, served := cur.Has(dc.Name)
		switch {
		case dc.State.Served() && (!served || c.Name != dc.Case):
			d.Put = append(d.Put, servedset.Zone{Name: dc.Name, Case: dc.Case})
			if _, ok := cur.CaseNamed(dc.Case); !ok && !slices.Contains(need, dc.Case) {
				need = append(need, dc.Case)
			}
		case !dc.State.Served() && served:
			d.Remove = append(d.Remove, dc.Name)
		}
	}
	if len(need) > 0 {
		cases, err := p.r.casesNamed(ctx, need)
		if err != nil {
			p.retouch(touched)
			return false, err
		}
		for _, c := range cases {
			sc, err := p.servedCase(ctx, c)
			if err != nil {
				p.retouch(touched)
				return false, err
			}
			d.Cases = append(d.Cases, sc)
		}
	}
	if d.Empty() {
		p.seq = ch.Seq // nothing the sinks serve changed
		return false, nil
	}
	if err := p.cfg.Served.Apply(d); err != nil {
		p.retouch(touched)
		if errors.Is(err, servedset.ErrSerial) {
			// Someone else moved the set: start again from the registry.
			return true, p.Load(ctx)
		}
		return false, err
	}
	p.seq = ch.Seq
	p.log.Info("served set stepped", "put", len(d.Put), "removed", len(d.Remove), "cases", len(d.Cases),
		"serial", d.To, "audit_seq", ch.Seq, "took", time.Since(t0).Round(time.Microsecond))
	return true, nil
}

// retouch gives back the cases touched to a Poll that failed.
func (p *Publisher) retouch(names []string) {
	for _, n := range names {
		p.Touch(n)
	}
}

// Run polls every Every until ctx is done. Load first.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := p.Poll(ctx); err != nil && ctx.Err() == nil {
				p.logError(err)
			} else if err == nil {
				p.lastErr = ""
			}
		}
	}
}

// logError logs err, or counts it if it repeats the last error logged less
// than a minute ago.
func (p *Publisher) logError(err error) {
	now := time.Now()
	if msg := err.Error(); msg == p.lastErr && now.Sub(p.errAt) < time.Minute {
		p.repeated++
		return
	}
	p.log.Error("reading the registry's changes", "err", err, "repeated", p.repeated)
	p.lastErr, p.errAt, p.repeated = err.Error(), now, 0
}
