// Package enrich attributes the source address of a sinkhole event to its
// network and place: AS number and name, country, region, city and
// coordinates, from offline databases (MaxMind-format files of MaxMind,
// DB-IP and IPinfo, and iptoasn TSV files), and finds the abuse contact of
// a network from the operator's own list and from RIR database dumps.
//
// Nothing here touches the network. Lookups read an immutable snapshot of
// the loaded files through an atomic pointer and a lock-free cache; a
// watcher reloads files that change on disk and swaps in a new snapshot.
//
// See README.md for the file formats and the precedence rules.
package enrich

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/event"
)

// Defaults for the zero values of Config.
const (
	DefaultCacheSize      = 1 << 16
	DefaultReloadInterval = time.Minute
)

// Config says which files to read. Its zero value enriches nothing and
// works.
type Config struct {
	// Databases are the geolocation and AS databases in order of
	// precedence: MaxMind-format files (.mmdb, in any layout that
	// DetectLayout knows) and iptoasn TSV files. The kind of a file is told
	// by its content, the layout of a MaxMind-format file by its metadata.
	// Files may be gzip-compressed.
	Databases []string
	// AbuseFiles are the operator's abuse-contact files (see
	// parseAbuseFile), in order of precedence. They beat RIRFiles.
	AbuseFiles []string
	// RIRFiles are RPSL database dumps of the RIRs, such as RIPE's split
	// files ripe.db.inetnum(.gz), ripe.db.inet6num, ripe.db.aut-num,
	// ripe.db.role and ripe.db.organisation. References between them are
	// resolved across all of them.
	RIRFiles []string
	// CacheSize is how many addresses the lookup cache holds (rounded up
	// to a power of two); 0 means DefaultCacheSize, a negative value turns
	// the cache off.
	CacheSize int
	// ReloadInterval is how often the watcher started by Start checks the
	// files for a change of size or modification time; 0 means
	// DefaultReloadInterval.
	ReloadInterval time.Duration
	// Logger receives load errors and reloads; nil discards them.
	Logger *slog.Logger
	// Registerer receives the enricher's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Result is the enrichment of one address. Fields that no source knows
// are zero.
type Result struct {
	ASN         uint32
	ASName      string
	CountryCode string // ISO 3166-1 alpha-2, upper case
	Region      string
	City        string
	Latitude    float64
	Longitude   float64
	// ASSource and GeoSource are the paths of the databases that gave the
	// AS number and the country.
	ASSource  string
	GeoSource string
}

// Found reports whether any source knew anything of the address.
func (r Result) Found() bool {
	return r.ASN != 0 || r.CountryCode != "" || r.City != "" || r.Latitude != 0 || r.Longitude != 0
}

// Source kinds in SourceInfo.Kind.
const (
	KindMMDB    = "mmdb"
	KindIPtoASN = "iptoasn"
	KindAbuse   = "abuse"
	KindRIR     = "rir"
)

// SourceInfo describes one configured file, for `takedown status`.
type SourceInfo struct {
	Path string
	// Kind is mmdb, iptoasn, abuse or rir.
	Kind string
	// Layout, DatabaseType and Vendor describe a MaxMind-format database.
	Layout       Layout
	DatabaseType string
	Vendor       string
	// Built is the build time in the metadata of a MaxMind-format
	// database, else the modification time of the file.
	Built time.Time
	// Records counts the networks of a database, the ranges of an iptoasn
	// file, the entries of an abuse file or the objects of an RPSL file.
	Records int
	// Size and Loaded describe the version being served: its size in
	// bytes and when it was read. Loaded is zero when no version is.
	Size   int64
	Loaded time.Time
	// Err is the last failure to load the file; a failed reload leaves the
	// older version in service.
	Err error
}

// unit is one configured file and the version of it in service.
type unit struct {
	path string
	kind string // KindMMDB (also for iptoasn until loaded), KindAbuse, KindRIR
	sig  fileSig
	info SourceInfo

	geo   geoSource   // Databases
	abuse *abuseTable // AbuseFiles
	rir   *rpslData   // RIRFiles
}

// geoSource is a loaded database.
type geoSource interface {
	lookup(netip.Addr) (record, bool, error)
}

type rangeSource struct{ t *rangeTable }

func (s rangeSource) lookup(a netip.Addr) (record, bool, error) {
	r, ok := s.t.lookup(a)
	return r, ok, nil
}

// fileSig is what the watcher compares to notice a change.
type fileSig struct {
	size  int64
	mtime time.Time
	inode uint64 // where the system has one: a file replaced by rename has a new one
	ok    bool
}

func statSig(path string) (fileSig, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileSig{}, err
	}
	return fileSig{size: fi.Size(), mtime: fi.ModTime(), inode: inodeOf(fi), ok: true}, nil
}

// snapshot is an immutable view of the loaded sources; lookups use one
// snapshot from start to end.
type snapshot struct {
	dbs   []namedGeo
	user  *abuseTable // AbuseFiles merged, first file wins
	rir   *abuseTable
	cache *cache
	infos []SourceInfo
}

type namedGeo struct {
	path string
	src  geoSource
}

// Enricher looks up addresses in the configured files. Its methods are
// safe for concurrent use.
type Enricher struct {
	cfg Config
	log *slog.Logger
	m   metrics

	snap atomic.Pointer[snapshot]

	mu     sync.Mutex // serialises loads; guards units
	units  []*unit
	closed bool

	stop chan struct{}
	done chan struct{}
}

// New reads the configured files and returns an Enricher serving what
// loaded. A file that is missing or unreadable does not make New fail: it
// is logged, reported by Sources and Err, and loaded by the watcher once it
// appears or is fixed. New fails for a bad Config or metrics that cannot be
// registered.
func New(cfg Config) (*Enricher, error) {
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.ReloadInterval < 0 {
		return nil, fmt.Errorf("enrich: reload interval %v is negative", cfg.ReloadInterval)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Enricher{cfg: cfg, log: log.With("component", "enrich")}
	units, err := newUnits(cfg.Databases, cfg.AbuseFiles, cfg.RIRFiles, nil)
	if err != nil {
		return nil, err
	}
	e.units = units
	m, err := newMetrics(cfg.Registerer, e)
	if err != nil {
		return nil, err
	}
	e.m = m
	e.Reload()
	return e, nil
}

// newUnits returns the units of the configured files, in Config order,
// taking over the loaded ones of old whose path and kind are the same.
func newUnits(databases, abuseFiles, rirFiles []string, old []*unit) ([]*unit, error) {
	have := map[string]*unit{}
	for _, u := range old {
		have[u.path] = u
	}
	var units []*unit
	seen := map[string]string{}
	add := func(kind string, paths []string) error {
		for _, p := range paths {
			if strings.TrimSpace(p) == "" {
				return fmt.Errorf("enrich: an empty path in the %s files", kind)
			}
			if k, dup := seen[p]; dup {
				return fmt.Errorf("enrich: %s is configured twice (as %s and %s file)", p, k, kind)
			}
			seen[p] = kind
			if u := have[p]; u != nil && u.kind == kind {
				units = append(units, u)
				continue
			}
			units = append(units, &unit{path: p, kind: kind, info: SourceInfo{Path: p, Kind: kind}})
		}
		return nil
	}
	if err := errors.Join(add(KindMMDB, databases), add(KindAbuse, abuseFiles), add(KindRIR, rirFiles)); err != nil {
		return nil, err
	}
	return units, nil
}

// SetFiles replaces the configured files, as a SIGHUP after a change of
// the enrich section does: files already loaded stay in service as they
// are (and are reloaded if they changed), new ones are read now, and the
// ones no longer named are dropped. A bad list (an empty path, a file
// named twice) changes nothing and is returned. It reports whether a new
// snapshot was made.
func (e *Enricher) SetFiles(databases, abuseFiles, rirFiles []string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	units, err := newUnits(databases, abuseFiles, rirFiles, e.units)
	if err != nil {
		return false, err
	}
	same := len(units) == len(e.units)
	rirChanged := false // an RIR file added or dropped: the table is rebuilt
	in := func(list []*unit, u *unit) bool { return slices.Contains(list, u) }
	for i, u := range units {
		same = same && u == e.units[i]
		rirChanged = rirChanged || u.kind == KindRIR && !in(e.units, u)
	}
	for _, u := range e.units {
		rirChanged = rirChanged || u.kind == KindRIR && !in(units, u)
	}
	e.units = units
	changed, loadedRIR := e.reload()
	if same && !changed {
		return false, nil
	}
	e.publish(rirChanged || loadedRIR)
	return true, nil
}

// Lookup returns what the databases know of ip. IPv4-mapped IPv6
// addresses are looked up as IPv4.
//
// Precedence, per group of fields: the AS number and name come from the
// first database, in Config order, that knows the AS number (a later one
// that reports the same number may fill a missing name); the country from
// the first that knows a country; region, city and coordinates each from
// the first database that knows them and does not place the address in
// another country.
func (e *Enricher) Lookup(ip netip.Addr) Result {
	s := e.snap.Load()
	if s == nil || !ip.IsValid() {
		return Result{}
	}
	ip = ip.Unmap().WithZone("")
	if s.cache != nil {
		if r, ok := s.cache.get(ip); ok {
			e.m.hits.Inc()
			return r
		}
		e.m.misses.Inc()
	}
	r := e.lookup(s, ip)
	if s.cache != nil {
		s.cache.put(ip, r)
	}
	return r
}

func (e *Enricher) lookup(s *snapshot, ip netip.Addr) Result {
	var r Result
	for _, db := range s.dbs {
		rec, ok, err := db.src.lookup(ip)
		if err != nil {
			e.m.lookupErrors.Inc()
			continue
		}
		if !ok {
			continue
		}
		if rec.ASN != 0 {
			if r.ASN == 0 {
				r.ASN, r.ASName, r.ASSource = rec.ASN, rec.ASName, db.path
			} else if r.ASName == "" && rec.ASN == r.ASN {
				r.ASName = rec.ASName
			}
		}
		if r.CountryCode == "" && rec.CountryCode != "" {
			r.CountryCode, r.GeoSource = rec.CountryCode, db.path
		}
		if rec.CountryCode == "" || rec.CountryCode == r.CountryCode {
			if r.Region == "" {
				r.Region = rec.Region
			}
			if r.City == "" {
				r.City = rec.City
			}
			if r.Latitude == 0 && r.Longitude == 0 && rec.hasGeo() {
				r.Latitude, r.Longitude = rec.Latitude, rec.Longitude
			}
		}
		if r.ASName != "" && r.City != "" && r.Region != "" && (r.Latitude != 0 || r.Longitude != 0) {
			break
		}
	}
	return r
}

// Enrich fills the enrichment fields of ev from its source address: those
// that the databases know are overwritten, the others left as they are.
// It allocates nothing when the address is in the cache.
func (e *Enricher) Enrich(ev *event.Event) {
	r := e.Lookup(ev.SrcIP)
	if r.ASN != 0 {
		ev.ASN = r.ASN
		ev.ASName = r.ASName
	}
	if r.CountryCode != "" {
		ev.CountryCode = r.CountryCode
	}
	if r.Region != "" {
		ev.Region = r.Region
	}
	if r.City != "" {
		ev.City = r.City
	}
	if r.Latitude != 0 || r.Longitude != 0 {
		ev.Latitude, ev.Longitude = r.Latitude, r.Longitude
	}
}

// Abuse returns the abuse contact of the network of ip and where it was
// found (a file and line, or a file and RPSL object). asn may be 0, in
// which case the databases are asked for it.
//
// Precedence: the operator's abuse files beat the RIR dumps; within each,
// the most specific network that contains ip wins, then the AS number. So
// the order is: abuse-file network, abuse-file AS, RIR network, RIR
// aut-num. Both are empty when nothing is known.
func (e *Enricher) Abuse(ip netip.Addr, asn uint32) (contact, source string) {
	s := e.snap.Load()
	if s == nil || !ip.IsValid() {
		return "", ""
	}
	ip = ip.Unmap().WithZone("")
	if asn == 0 {
		asn = e.Lookup(ip).ASN
	}
	for _, t := range []*abuseTable{s.user, s.rir} {
		if t == nil {
			continue
		}
		if v, _, ok := t.nets.lookup(ip); ok {
			return v.contact, v.source
		}
		if v, ok := t.asns[asn]; ok && asn != 0 {
			return v.contact, v.source
		}
	}
	return "", ""
}

// Sources describes every configured file, in Config order (databases,
// abuse files, RIR files).
func (e *Enricher) Sources() []SourceInfo {
	s := e.snap.Load()
	if s == nil {
		return nil
	}
	return append([]SourceInfo(nil), s.infos...)
}

// Err returns the load errors of the files that have one, joined; nil when
// every configured file is in service.
func (e *Enricher) Err() error {
	var errs []error
	for _, si := range e.Sources() {
		if si.Err != nil {
			errs = append(errs, si.Err)
		}
	}
	return errors.Join(errs...)
}

// Start starts the watcher that reloads changed files every
// Config.ReloadInterval, until ctx is done or Close is called. It does not
// block.
func (e *Enricher) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("enrich: start after close")
	}
	if e.stop != nil {
		return errors.New("enrich: started twice")
	}
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go e.watch(ctx.Done(), e.stop, e.done)
	return nil
}

func (e *Enricher) watch(ctxDone <-chan struct{}, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(e.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctxDone:
			return
		case <-stop:
			return
		case <-t.C:
			e.Reload()
		}
	}
}

// Close stops the watcher and waits for it. Lookups keep working with the
// files loaded last.
func (e *Enricher) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	stop, done := e.stop, e.done
	e.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	return nil
}

// Reload checks every file for a change of size or modification time,
// reads the changed ones and, if anything changed, serves a new snapshot.
// The watcher calls it; a SIGHUP handler may too. It reports whether a new
// snapshot was made.
func (e *Enricher) Reload() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed, rirChanged := e.reload()
	if !changed {
		return false
	}
	e.publish(rirChanged)
	return true
}

// reload reads the files that changed into their units and reports
// whether any did (and whether an RIR file did). Called with mu.
func (e *Enricher) reload() (changed, rirChanged bool) {
	changed = e.snap.Load() == nil
	for _, u := range e.units {
		sig, err := statSig(u.path)
		if err != nil {
			if u.info.Err == nil || u.sig.ok {
				e.fail(u, err)
				u.sig = fileSig{}
				changed = true
			}
			continue
		}
		if sig == u.sig {
			continue
		}
		changed = true
		if err := e.load(u, sig); err != nil {
			e.fail(u, err)
			// Remember the failed version only if it was stable while
			// read, so that a file caught half-written is read again.
			if after, serr := statSig(u.path); serr == nil && after == sig {
				u.sig = sig
			}
			continue
		}
		u.sig = sig
		if u.kind == KindRIR {
			rirChanged = true
		}
		e.m.reloads.WithLabelValues("ok").Inc()
		e.log.Info("loaded", "path", u.path, "kind", u.info.Kind, "layout", u.info.Layout, "records", u.info.Records)
	}
	return changed, rirChanged
}

func (e *Enricher) fail(u *unit, err error) {
	if errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("%s: file does not exist", u.path)
	} else if !strings.Contains(err.Error(), u.path) {
		err = fmt.Errorf("%s: %w", u.path, err)
	}
	u.info.Err = err
	e.m.reloads.WithLabelValues("error").Inc()
	if u.info.Loaded.IsZero() {
		e.log.Warn("not loaded", "path", u.path, "err", err)
	} else {
		e.log.Warn("reload failed, serving the version loaded before", "path", u.path, "err", err)
	}
}

// load reads u's file and, if it parses, puts it in service in u.
func (e *Enricher) load(u *unit, sig fileSig) error {
	info := SourceInfo{Path: u.path, Kind: u.kind, Size: sig.size, Built: sig.mtime}
	switch u.kind {
	case KindMMDB:
		data, err := readFile(u.path)
		if err != nil {
			return err
		}
		switch {
		case bytes.Contains(data[max(0, len(data)-128<<10):], mmdbMarker):
			src, md, vendor, n, err := openMMDB(data)
			if err != nil {
				if md.DatabaseType != "" {
					return fmt.Errorf("%s (database type %q): %w", u.path, md.DatabaseType, err)
				}
				return fmt.Errorf("%s: %w", u.path, err)
			}
			info.Layout, info.DatabaseType, info.Vendor = src.layout, md.DatabaseType, vendor
			info.Built, info.Records = md.BuildTime(), n
			u.geo = src
		case isText(data):
			t, err := parseIPtoASN(bytes.NewReader(data), u.path)
			if err != nil {
				return err
			}
			info.Kind, info.Layout, info.Records = KindIPtoASN, LayoutIPtoASN, t.len()
			u.geo = rangeSource{t}
		default:
			return fmt.Errorf("%s: neither a MaxMind DB (no metadata marker) nor an iptoasn TSV file", u.path)
		}
	case KindAbuse:
		var t *abuseTable
		err := withReader(u.path, func(r io.Reader) (err error) {
			t, err = parseAbuseFile(r, u.path)
			return err
		})
		if err != nil {
			return err
		}
		info.Records = t.len()
		u.abuse = t
	case KindRIR:
		var d *rpslData
		err := withReader(u.path, func(r io.Reader) (err error) {
			d, err = readRPSL(r, u.path)
			return err
		})
		if err != nil {
			return err
		}
		info.Records = d.objects
		u.rir = d
	}
	info.Loaded = time.Now()
	u.info = info
	return nil
}

// mmdbMarker precedes the metadata at the end of a MaxMind DB file.
var mmdbMarker = []byte("\xab\xcd\xefMaxMind.com")

// publish builds a snapshot from the units and serves it. Called with mu.
func (e *Enricher) publish(rirChanged bool) {
	old := e.snap.Load()
	s := &snapshot{cache: newCache(e.cfg.CacheSize)}
	var user []*abuseTable
	var rir []*rpslData
	for _, u := range e.units {
		s.infos = append(s.infos, u.info)
		switch {
		case u.geo != nil:
			s.dbs = append(s.dbs, namedGeo{path: u.path, src: u.geo})
		case u.abuse != nil:
			user = append(user, u.abuse)
		case u.rir != nil:
			rir = append(rir, u.rir)
		}
	}
	if len(user) > 0 {
		s.user = newAbuseTable()
		for _, t := range user {
			for p, v := range t.nets.m {
				s.user.nets.add(p, v)
			}
			for a, v := range t.asns {
				if _, ok := s.user.asns[a]; !ok {
					s.user.asns[a] = v
				}
			}
		}
	}
	if old != nil && !rirChanged {
		s.rir = old.rir
	} else if len(rir) > 0 {
		s.rir = buildRIRTable(rir)
	}
	e.snap.Store(s)
}

// readFile reads a whole file, gunzipping it when it is compressed.
func readFile(path string) ([]byte, error) {
	var data []byte
	err := withReader(path, func(r io.Reader) (err error) {
		data, err = io.ReadAll(r)
		return err
	})
	return data, err
}

// withReader opens path, decompressing it if it starts with the gzip magic
// number, and passes it to fn.
func withReader(path string, fn func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	if err := fn(r); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) || strings.HasPrefix(err.Error(), path) {
			return err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
