package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/takedown-project/takedown/internal/enrich/demoworld"
)

// The families the simulator knows.
const (
	Waledac   = "waledac"
	Conficker = "conficker"
	Rustock   = "rustock"
)

// SensorID is the sensor id that backfilled events are sent under.
const SensorID = "simulated"

// Defaults of Config fields left zero.
const (
	DefaultBots            = 70_000
	DefaultNATShare        = 0.10
	DefaultNATMax          = 8
	DefaultCallbacksPerDay = 36 // per host and day: the b49 sinkhole's figure
	DefaultChurn           = 0.02
	DefaultNotifiedChurn   = 0.10
	DefaultConcurrency     = 256
	DefaultTimeout         = 2 * time.Second
	DefaultProgress        = 5 * time.Second
	// MaxBots bounds Config.Bots.
	MaxBots = 10_000_000
	// BatchSize is the most events Backfill hands to send at once.
	BatchSize = 50_000
)

const day = int64(24 * time.Hour)

// Targets are the sinkhole's addresses, host:port each. An empty one means
// no family that needs it may run.
type Targets struct {
	DNS  string // UDP: waledac and conficker
	HTTP string // waledac
	SMTP string // rustock
}

// Check reports the first target that is not host:port or, unless
// allowRemote, not on loopback; New checks the same.
func (t Targets) Check(allowRemote bool) error {
	for _, c := range [...][2]string{{"dns", t.DNS}, {"http", t.HTTP}, {"smtp", t.SMTP}} {
		if c[1] == "" {
			continue
		}
		if _, err := resolveTarget(c[0], c[1], allowRemote); err != nil {
			return err
		}
	}
	return nil
}

// Share is a family's share of the bots.
type Share struct {
	Family string
	Share  float64
}

// ParseShares reads "waledac=0.8,conficker=0.1,rustock=0.1"; a family
// without "=share" gets 1.
func ParseShares(s string) ([]Share, error) {
	var out []Share
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, has := strings.Cut(part, "=")
		sh := Share{Family: strings.ToLower(strings.TrimSpace(name)), Share: 1}
		if has {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return nil, fmt.Errorf("families: share %q of %s is not a number", val, sh.Family)
			}
			sh.Share = v
		}
		out = append(out, sh)
	}
	if len(out) == 0 {
		return nil, errors.New("families: none given")
	}
	return out, nil
}

// Config configures a simulation. Every zero value works, but for the
// targets that the chosen families need.
type Config struct {
	// Targets are where the bots call.
	Targets Targets
	// Sensors, if set, replaces Targets: each names the sinkhole addresses
	// of one sensor of a deployment with several, and the bots are split
	// between them (bot i calls sensor i mod len(Sensors), always the
	// same one). Truth.Sensors counts what each got.
	Sensors []Targets
	// AllowRemote lets a target be outside loopback (127.0.0.0/8, ::1).
	// Bots then connect from this machine's own address, not from their
	// demo-world addresses, so the truth's addresses are not what the
	// sinkhole sees.
	AllowRemote bool

	// Bots is the number of infected hosts when simulated time begins
	// (at the start of the backfill, if any). Default 70,000.
	Bots int
	// Families share out the bots; the shares are relative. Default all
	// waledac.
	Families []Share
	// NATShare is the share of the bots that sit behind NAT, NATMax the
	// most bots on one NAT address (at least 2). Defaults 0.10 and 8;
	// a negative share means no NAT.
	NATShare float64
	NATMax   int

	// CallbacksPerDay is each bot's mean rate of callbacks per simulated
	// day (Poisson). Default 36.
	CallbacksPerDay float64
	// Speed is simulated seconds per real second. Default 1.
	Speed float64
	// Churn is the share of infections cleaned per simulated day,
	// NotifiedChurn the same in notified networks. Defaults 0.02 and
	// 0.10; negative means none.
	Churn, NotifiedChurn float64
	// NotifiedASNs and a share of the demo world's networks, picked from
	// the seed, are the notified networks.
	NotifiedASNs  []uint32
	NotifiedShare float64

	// Domains gives the seized names by family: "waledac" the names its
	// bots resolve and post to (required for waledac), "conficker" the
	// DGA names that are seized (what Backfill emits; live lookups of
	// other names are refused by the sinkhole).
	Domains map[string][]string
	// World is the demo world of the bots' addresses; nil builds it.
	World *demoworld.World
	// Seed makes the population and the callbacks reproducible.
	Seed uint64
	// Start is when live simulated time begins. Default now.
	Start time.Time

	// Duration bounds Run in real time; MaxCallbacks bounds the callbacks
	// Run starts. Zero: no bound.
	Duration     time.Duration
	MaxCallbacks int64
	// Concurrency is the number of callbacks in flight at most. Default
	// 256.
	Concurrency int
	// Timeout bounds one DNS try (three tries) and one HTTP or SMTP
	// exchange. Default 2 s.
	Timeout time.Duration

	// Progress, if set, receives a line every ProgressInterval (default
	// 5 s) and at the end: callbacks, rate, errors, lag, simulated time.
	Progress         io.Writer
	ProgressInterval time.Duration
	// Logger receives start, stop and first-error lines. Default: discard.
	Logger *slog.Logger
}

// Sim is one simulation: New, then optionally Backfill, then Run, then
// Truth.
type Sim struct {
	cfg   Config
	log   *slog.Logger
	world *demoworld.World

	// sinks are the targets of each sensor (one without Config.Sensors);
	// a bot calls sinks[bot % len(sinks)].
	sinks     []sinkTargets
	perSensor []sensorTally
	start     int64   // ns since the epoch: live simulated time begins
	mean      float64 // ns between a bot's callbacks
	rate      [2]float64
	notified  []bool // by network index
	pop       population
	names     []string        // waledac's seized names
	seizedDGA map[string]bool // conficker's seized names
	tally     *tally
	dga       dgaCache

	mu         sync.Mutex
	origin     atomic.Int64 // ns: when infections began (start, or start of the backfill)
	begin      time.Time    // when Run began
	base       [3]int64     // callbacks, errors, refusals before Run (the backfill's)
	backfilled bool
	ran        bool
	reached    atomic.Int64 // simulated time reached, ns

	// progress of Run
	started, sent atomic.Int64 // callbacks started; backfilled events sent
	lag, maxLag   atomic.Int64
	firstErr      [numFamilies]atomic.Bool
}

// sinkTargets are the addresses of one sensor.
type sinkTargets struct{ dns, http, smtp target }

// sensorTally counts what one sensor got.
type sensorTally struct{ callbacks, events atomic.Int64 }

// sinkOf returns the targets bot calls.
func (s *Sim) sinkOf(bot uint32) *sinkTargets { return &s.sinks[int(bot)%len(s.sinks)] }

// target is one of the sinkhole's addresses.
type target struct {
	ap   netip.AddrPort
	bind bool // bots bind their own loopback source address
}

func (t target) ok() bool { return t.ap.IsValid() }

// New checks cfg, fills in its defaults and builds the bots.
func New(cfg Config) (*Sim, error) {
	if err := defaults(&cfg); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, world: cfg.World}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "sim")
	if s.world == nil {
		w, err := demoworld.New()
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		s.world = w
	}
	weights, err := familyWeights(cfg.Families)
	if err != nil {
		return nil, err
	}
	sensors := cfg.Sensors
	if len(sensors) == 0 {
		sensors = []Targets{cfg.Targets}
	}
	s.sinks = make([]sinkTargets, len(sensors))
	s.perSensor = make([]sensorTally, len(sensors))
	for i, ts := range sensors {
		st := &s.sinks[i]
		for _, t := range []struct {
			name string
			addr string
			dst  *target
		}{{"dns", ts.DNS, &st.dns}, {"http", ts.HTTP, &st.http}, {"smtp", ts.SMTP, &st.smtp}} {
			if t.addr == "" {
				continue
			}
			if *t.dst, err = resolveTarget(t.name, t.addr, cfg.AllowRemote); err != nil {
				return nil, err
			}
		}
		need := [numFamilies][]struct {
			name string
			t    target
		}{
			famWaledac:   {{"dns", st.dns}, {"http", st.http}},
			famConficker: {{"dns", st.dns}},
			famRustock:   {{"smtp", st.smtp}},
		}
		for f, w := range weights {
			if w == 0 {
				continue
			}
			for _, n := range need[f] {
				if !n.t.ok() {
					which := ""
					if len(cfg.Sensors) > 0 {
						which = fmt.Sprintf(" of sensor %d", i)
					}
					return nil, fmt.Errorf("sim: family %s needs the %s target%s, which is not set", familyNames[f], n.name, which)
				}
			}
		}
	}
	for _, d := range cfg.Domains[Waledac] {
		if d = normName(d); d != "" {
			s.names = append(s.names, d)
		}
	}
	if weights[famWaledac] > 0 && len(s.names) == 0 {
		return nil, errors.New("sim: family waledac needs seized names to resolve (Domains[\"waledac\"] is empty)")
	}
	s.seizedDGA = map[string]bool{}
	for _, d := range cfg.Domains[Conficker] {
		if d = normName(d); d != "" {
			s.seizedDGA[d] = true
		}
	}
	if s.notified, err = notifiedNetworks(s.world, cfg); err != nil {
		return nil, err
	}
	s.start = cfg.Start.UnixNano()
	s.origin.Store(s.start)
	s.reached.Store(s.start)
	s.mean = float64(day) / cfg.CallbacksPerDay
	s.rate = [2]float64{churnRate(cfg.Churn), churnRate(cfg.NotifiedChurn)}
	if err := s.pop.build(s.world, cfg, weights); err != nil {
		return nil, err
	}
	s.tally = newTally(&s.pop, len(s.world.Networks))
	return s, nil
}

func defaults(c *Config) error {
	fdef := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	if c.Bots == 0 {
		c.Bots = DefaultBots
	}
	if c.Bots < 0 || c.Bots > MaxBots {
		return fmt.Errorf("sim: bots: %d is not from 1 to %d", c.Bots, MaxBots)
	}
	if len(c.Families) == 0 {
		c.Families = []Share{{Family: Waledac, Share: 1}}
	}
	fdef(&c.NATShare, DefaultNATShare)
	if c.NATMax == 0 {
		c.NATMax = DefaultNATMax
	}
	fdef(&c.CallbacksPerDay, DefaultCallbacksPerDay)
	fdef(&c.Speed, 1)
	fdef(&c.Churn, DefaultChurn)
	fdef(&c.NotifiedChurn, DefaultNotifiedChurn)
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgress
	}
	if c.Start.IsZero() {
		c.Start = time.Now()
	}
	c.Start = c.Start.UTC()
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case bad(c.NATShare) || c.NATShare > 1:
		return fmt.Errorf("sim: nat share: %v is not from 0 to 1", c.NATShare)
	case c.NATMax < 2 || c.NATMax > 64:
		return fmt.Errorf("sim: nat max: %d is not from 2 to 64 bots per address", c.NATMax)
	case bad(c.CallbacksPerDay) || c.CallbacksPerDay <= 0 || c.CallbacksPerDay > 1e6:
		return fmt.Errorf("sim: callbacks per day: %v is not above 0 and at most 1,000,000", c.CallbacksPerDay)
	case bad(c.Speed) || c.Speed <= 0 || c.Speed > 1e7:
		return fmt.Errorf("sim: speed: %v is not above 0 and at most 10,000,000", c.Speed)
	case bad(c.Churn) || c.Churn >= 1:
		return fmt.Errorf("sim: churn: %v is not below 1 (a share of the bots per day)", c.Churn)
	case bad(c.NotifiedChurn) || c.NotifiedChurn >= 1:
		return fmt.Errorf("sim: notified churn: %v is not below 1 (a share of the bots per day)", c.NotifiedChurn)
	case bad(c.NotifiedShare) || c.NotifiedShare < 0 || c.NotifiedShare > 1:
		return fmt.Errorf("sim: notified share: %v is not from 0 to 1", c.NotifiedShare)
	case c.Concurrency < 1 || c.Concurrency > 65536:
		return fmt.Errorf("sim: concurrency: %d is not from 1 to 65536", c.Concurrency)
	case c.Timeout < 0:
		return fmt.Errorf("sim: timeout: %v is negative", c.Timeout)
	case c.Duration < 0:
		return fmt.Errorf("sim: duration: %v is negative", c.Duration)
	case c.MaxCallbacks < 0:
		return fmt.Errorf("sim: max callbacks: %d is negative", c.MaxCallbacks)
	}
	return nil
}

// familyWeights checks the shares and returns them by family, summing to 1.
func familyWeights(shares []Share) ([numFamilies]float64, error) {
	var w [numFamilies]float64
	var seen [numFamilies]bool
	var sum float64
	for _, sh := range shares {
		f, ok := familyOf(sh.Family)
		if !ok {
			return w, fmt.Errorf("sim: families: %q is not one of %s", sh.Family, strings.Join(familyNames[:], ", "))
		}
		if seen[f] {
			return w, fmt.Errorf("sim: families: %s is listed twice", sh.Family)
		}
		seen[f] = true
		if math.IsNaN(sh.Share) || math.IsInf(sh.Share, 0) || sh.Share < 0 {
			return w, fmt.Errorf("sim: families: share %v of %s is not a number from 0 up", sh.Share, sh.Family)
		}
		w[f] = sh.Share
		sum += sh.Share
	}
	if sum == 0 {
		return w, errors.New("sim: families: every share is 0")
	}
	for f := range w {
		w[f] /= sum
	}
	return w, nil
}

// resolveTarget parses host:port and checks that it is on loopback unless
// remote targets are allowed.
func resolveTarget(kind, hostport string, allowRemote bool) (target, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return target{}, fmt.Errorf("sim: target %s %q: %v", kind, hostport, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return target{}, fmt.Errorf("sim: target %s %q: port %q is not from 1 to 65535", kind, hostport, port)
	}
	addrs := []netip.Addr{}
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, a)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil || len(addrs) == 0 {
			return target{}, fmt.Errorf("sim: target %s %q: cannot resolve %s: %v", kind, hostport, host, err)
		}
		// Prefer IPv4: the bots' own addresses are IPv4.
		slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
			switch {
			case a.Unmap().Is4() == b.Unmap().Is4():
				return 0
			case a.Unmap().Is4():
				return -1
			}
			return 1
		})
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() && !allowRemote {
			return target{}, fmt.Errorf("sim: target %s %s is not on loopback (127.0.0.0/8, ::1); pass --allow-remote (AllowRemote) to send bot traffic there", kind, hostport)
		}
	}
	a := addrs[0].Unmap()
	return target{ap: netip.AddrPortFrom(a, uint16(p)), bind: a.Is4() && a.IsLoopback()}, nil
}

func normName(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// churnRate turns a share cleaned per day into a rate per nanosecond.
func churnRate(p float64) float64 {
	if p <= 0 {
		return 0
	}
	return -math.Log1p(-p) / float64(day)
}

// notifiedNetworks marks the networks named by ASN and a share picked
// from the seed.
func notifiedNetworks(w *demoworld.World, cfg Config) ([]bool, error) {
	out := make([]bool, len(w.Networks))
	for _, asn := range cfg.NotifiedASNs {
		i := slices.IndexFunc(w.Networks, func(n demoworld.Network) bool { return n.ASN == asn })
		if i < 0 {
			return nil, fmt.Errorf("sim: notified AS%d is not a network of the demo world", asn)
		}
		out[i] = true
	}
	if k := int(math.Round(cfg.NotifiedShare * float64(len(w.Networks)))); k > 0 {
		r := newRand(cfg.Seed, saltNotified)
		for _, i := range r.Perm(len(w.Networks))[:k] {
			out[i] = true
		}
	}
	return out, nil
}

// Notified returns the AS numbers of the notified networks.
func (s *Sim) Notified() []uint32 {
	var out []uint32
	for i, n := range s.notified {
		if n {
			out = append(out, s.world.Networks[i].ASN)
		}
	}
	return out
}

// cleanAt returns when bot is cleaned, in ns since the epoch: drawn once
// per bot (an exponential time from the origin), never for no churn.
func (s *Sim) cleanAt(bot uint32) int64 {
	rate := s.rate[0]
	if s.notified[s.pop.netOf(bot)] {
		rate = s.rate[1]
	}
	if rate == 0 {
		return math.MaxInt64
	}
	e := -math.Log1p(-unit(hash(s.cfg.Seed, saltClean, uint64(bot))))
	at := float64(s.origin.Load()) + e/rate
	if at >= math.MaxInt64/2 {
		return math.MaxInt64
	}
	return int64(at)
}

// gap draws the time to a bot's next callback.
func (s *Sim) gap(r interface{ ExpFloat64() float64 }) int64 {
	return max(int64(r.ExpFloat64()*s.mean), 1)
}
