// Package delegation verifies that seized domains are delegated to the
// sinkhole: it asks a DNS server for each domain's NS records (and A/AAAA
// records) and compares them with the sinkhole's own name servers and
// addresses.
package delegation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Defaults applied to zero fields of Config.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultRetries     = 2
	DefaultConcurrency = 16
)

// Config says whom to ask and what counts as ours. The zero value of every
// field except Resolver works.
type Config struct {
	// Resolver is the host:port of the DNS server to ask: a recursive
	// resolver, or an authoritative server of the parent zone (the
	// registry's), whose referrals are read too. Required.
	Resolver string

	// NameServers are our name server names, e.g. "ns1.sinkhole.example".
	// They are compared case-insensitively; a trailing dot is optional.
	NameServers []string

	// Addrs are the sinkhole's addresses: A/AAAA answers that count as
	// ours. IPv4-mapped IPv6 addresses are treated as IPv4.
	Addrs []netip.Addr

	// Timeout bounds each attempt of each query. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	// Retries is how many more times a query that timed out or failed on
	// the network is sent. Zero means DefaultRetries; negative means none.
	Retries int

	// Concurrency is how many domains are checked in parallel. Zero or
	// negative means DefaultConcurrency.
	Concurrency int

	// Now gives Result.CheckedAt. Nil means time.Now.
	Now func() time.Time
}

// Result is the verdict for one domain.
type Result struct {
	// Domain is the domain as given to Check.
	Domain string

	// CheckedAt is when the check of this domain started; zero when ctx
	// ended before it started.
	CheckedAt time.Time

	// Verified is true when at least one NS name was found and every NS
	// name found is one of Config.NameServers.
	Verified bool

	// NS are the NS names found, lower-case without trailing dot, sorted.
	NS []string

	// Addrs are the A/AAAA addresses in the answer section of the address
	// queries, sorted. Empty when the server only refers (parent zone) or
	// the domain has none.
	Addrs []netip.Addr

	// AddrsOurs is true when addresses were found and all are in
	// Config.Addrs.
	AddrsOurs bool

	// DS are the domain's DS records at its parent: the answer to a DS
	// query (with DO and CD set, so a validating resolver passes them on
	// whatever it makes of them), sorted by key tag, algorithm, digest
	// type and digest. None when the parent has none or the domain does
	// not exist (NXDOMAIN).
	DS []*dns.DS

	// DSProblem says why the DS records could not be read: the DS query's
	// rcode ("SERVFAIL", "REFUSED", …), "resolver timeout", or the NS
	// query's problem when that query already failed. Empty when they
	// were read, even when there are none.
	DSProblem string

	// Problem explains, for people, why the domain is not verified, e.g.
	// "NS points elsewhere: ns1.parking.example" or "no NS records
	// (NXDOMAIN)". It is empty for a verified domain unless the address
	// queries failed, in which case it starts with "address lookup: ".
	Problem string
}

// Check checks every domain against cfg and returns one Result per domain,
// in input order. progress, if not nil, is called on the caller's goroutine
// with the number of domains finished so far, after each one.
//
// The error is non-nil for a bad Config (then no Results are returned), or
// when ctx ends before all domains were checked: then all Results are still
// returned, the unchecked ones with a Problem saying so, and the error is
// ctx.Err(). Failures of single domains (timeouts, SERVFAIL, NXDOMAIN, ...)
// are never errors; they are in Result.Problem.
func Check(ctx context.Context, cfg Config, domains []string, progress func(done int)) ([]Result, error) {
	c, err := newChecker(cfg)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(domains))
	if len(domains) == 0 {
		return results, nil
	}

	workers := min(c.concurrency, len(domains))
	jobs := make(chan int)
	done := make(chan int)
	var (
		wg          sync.WaitGroup
		interrupted atomic.Bool // a check was cut short by ctx
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				var cut bool
				results[i], cut = c.check(ctx, domains[i])
				if cut {
					interrupted.Store(true)
				}
				done <- i
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range domains {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(done) }()

	checked := make([]bool, len(domains))
	n := 0
	for i := range done {
		checked[i] = true
		n++
		if progress != nil {
			progress(n)
		}
	}
	if n == len(domains) {
		if interrupted.Load() {
			return results, ctx.Err()
		}
		return results, nil
	}
	// ctx ended before every domain was handed to a worker.
	for i, ok := range checked {
		if !ok {
			results[i] = Result{Domain: domains[i], Problem: notChecked + ctx.Err().Error(), DSProblem: notChecked + ctx.Err().Error()}
		}
	}
	return results, ctx.Err()
}

// checker is a validated, defaulted Config.
type checker struct {
	resolver    string
	ours        map[string]bool // fqdn, lower-case
	addrs       map[netip.Addr]bool
	timeout     time.Duration
	attempts    int
	concurrency int
	now         func() time.Time
}

func newChecker(cfg Config) (*checker, error) {
	if cfg.Resolver == "" {
		return nil, errors.New("delegation: no resolver configured")
	}
	host, port, err := net.SplitHostPort(cfg.Resolver)
	if err != nil {
		return nil, fmt.Errorf("delegation: resolver %q: %w", cfg.Resolver, err)
	}
	if host == "" {
		return nil, fmt.Errorf("delegation: resolver %q: missing host", cfg.Resolver)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return nil, fmt.Errorf("delegation: resolver %q: bad port %q", cfg.Resolver, port)
	}
	c := &checker{
		resolver:    cfg.Resolver,
		ours:        make(map[string]bool, len(cfg.NameServers)),
		addrs:       make(map[netip.Addr]bool, len(cfg.Addrs)),
		timeout:     cfg.Timeout,
		attempts:    1 + cfg.Retries,
		concurrency: cfg.Concurrency,
		now:         cfg.Now,
	}
	for _, ns := range cfg.NameServers {
		name := strings.TrimSpace(ns)
		if _, ok := dns.IsDomainName(name); !ok || name == "" || name == "." {
			return nil, fmt.Errorf("delegation: name server %q is not a domain name", ns)
		}
		c.ours[dns.CanonicalName(name)] = true
	}
	for _, a := range cfg.Addrs {
		if !a.IsValid() {
			return nil, errors.New("delegation: invalid (zero) sinkhole address")
		}
		c.addrs[a.Unmap()] = true
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case cfg.Retries == 0:
		c.attempts = 1 + DefaultRetries
	case cfg.Retries < 0:
		c.attempts = 1
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultConcurrency
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// check checks one domain. cut is true when ctx ended during the check.
func (c *checker) check(ctx context.Context, domain string) (res Result, cut bool) {
	res = Result{Domain: domain, CheckedAt: c.now()}
	defer func() { cut = ctx.Err() != nil && strings.Contains(res.Problem, notChecked) }()
	name := strings.TrimSpace(domain)
	if _, ok := dns.IsDomainName(name); !ok || name == "" || name == "." {
		res.Problem = fmt.Sprintf("invalid domain name %q", domain)
		res.DSProblem = res.Problem
		return res, false
	}
	qname := dns.CanonicalName(name)

	resp, err := c.query(ctx, qname, dns.TypeNS)
	if err != nil {
		res.Problem = describeErr(ctx, err)
		res.DSProblem = res.Problem
		return res, false
	}
	ns, problem := nsNames(resp, qname)
	res.NS = ns
	var foreign []string
	for _, n := range ns {
		if !c.ours[n+"."] {
			foreign = append(foreign, n)
		}
	}
	switch {
	case problem != "":
		res.Problem = problem
	case len(foreign) > 0:
		res.Problem = "NS points elsewhere: " + strings.Join(foreign, ", ")
	default:
		res.Verified = true
	}
	if resp.Rcode == dns.RcodeNameError {
		return res, false // no addresses or DS records to look for
	}

	if dsResp, err := c.query(ctx, qname, dns.TypeDS); err != nil {
		res.DSProblem = describeErr(ctx, err)
	} else {
		res.DS, res.DSProblem = dsRecords(dsResp, qname)
	}

	var addrProblems []string
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, err := c.query(ctx, qname, qtype)
		if err != nil {
			addrProblems = append(addrProblems, dns.TypeToString[qtype]+": "+describeErr(ctx, err))
			continue
		}
		if resp.Rcode != dns.RcodeSuccess {
			addrProblems = append(addrProblems, dns.TypeToString[qtype]+": "+rcodeText(resp.Rcode))
			continue
		}
		res.Addrs = append(res.Addrs, answerAddrs(resp)...)
	}
	slices.SortFunc(res.Addrs, netip.Addr.Compare)
	res.Addrs = slices.Compact(res.Addrs)
	res.AddrsOurs = len(res.Addrs) > 0
	for _, a := range res.Addrs {
		if !c.addrs[a] {
			res.AddrsOurs = false
		}
	}
	if len(addrProblems) > 0 {
		ap := "address lookup: " + strings.Join(addrProblems, "; ")
		if res.Problem == "" {
			res.Problem = ap
		} else {
			res.Problem += "; " + ap
		}
	}
	return res, false
}

// nsNames takes the NS names for qname from the answer section or, when the
// answer has none and the response is a referral, from the authority
// section. problem is non-empty when no NS names could be taken.
func nsNames(resp *dns.Msg, qname string) (names []string, problem string) {
	if resp.Rcode != dns.RcodeSuccess {
		if resp.Rcode == dns.RcodeNameError {
			return nil, "no NS records (NXDOMAIN)"
		}
		return nil, rcodeText(resp.Rcode)
	}
	collect := func(rrs []dns.RR) {
		for _, rr := range rrs {
			if ns, ok := rr.(*dns.NS); ok && strings.EqualFold(ns.Hdr.Name, qname) {
				names = append(names, strings.TrimSuffix(dns.CanonicalName(ns.Ns), "."))
			}
		}
	}
	collect(resp.Answer)
	if len(names) == 0 && len(resp.Answer) == 0 {
		collect(resp.Ns) // a referral from the parent zone
	}
	if len(names) == 0 {
		if len(resp.Answer) > 0 {
			return nil, "no NS records (answer has other records, e.g. a CNAME)"
		}
		return nil, "no NS records (NODATA)"
	}
	slices.Sort(names)
	return slices.Compact(names), ""
}

// dsRecords takes the DS records owned by qname from the answer section of
// a DS query's response, sorted. NXDOMAIN means none; other rcodes are a
// problem.
func dsRecords(resp *dns.Msg, qname string) (ds []*dns.DS, problem string) {
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, ""
	default:
		return nil, rcodeText(resp.Rcode)
	}
	for _, rr := range resp.Answer {
		if d, ok := rr.(*dns.DS); ok && strings.EqualFold(d.Hdr.Name, qname) {
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b *dns.DS) int {
		return cmp.Or(cmp.Compare(a.KeyTag, b.KeyTag), cmp.Compare(a.Algorithm, b.Algorithm),
			cmp.Compare(a.DigestType, b.DigestType), cmp.Compare(strings.ToUpper(a.Digest), strings.ToUpper(b.Digest)))
	})
	ds = slices.CompactFunc(ds, func(a, b *dns.DS) bool {
		return a.KeyTag == b.KeyTag && a.Algorithm == b.Algorithm && a.DigestType == b.DigestType && strings.EqualFold(a.Digest, b.Digest)
	})
	return ds, ""
}

// answerAddrs returns the A/AAAA addresses in the answer section. A chain a
// recursive resolver already followed (CNAME then A) counts, as that is what
// clients get; referrals and additional records do not.
func answerAddrs(resp *dns.Msg) []netip.Addr {
	var out []netip.Addr
	for _, rr := range resp.Answer {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// notChecked starts the Problem of a domain whose check ctx cut short.
const notChecked = "not checked: "

// errTimeout is the error of a query whose attempts all timed out.
var errTimeout = errors.New("resolver timeout")

// query sends one question with RD=1 over UDP, repeats it over TCP when the
// answer is truncated, and retries timeouts and network errors.
func (c *checker) query(ctx context.Context, qname string, qtype uint16) (*dns.Msg, error) {
	var lastErr error
	for range c.attempts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := new(dns.Msg)
		m.SetQuestion(qname, qtype)
		m.RecursionDesired = true
		// DS records are asked with DO (else there is nothing to see) and
		// CD (else a validating resolver that finds them bogus keeps them).
		m.SetEdns0(1232, qtype == dns.TypeDS)
		m.CheckingDisabled = qtype == dns.TypeDS
		resp, err := c.exchange(ctx, "udp", m)
		if err == nil && resp.Truncated {
			resp, err = c.exchange(ctx, "tcp", m)
		}
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
	}
	return nil, lastErr
}

// exchange does one attempt over network, bounded by c.timeout and
// interrupted when ctx ends.
func (c *checker) exchange(ctx context.Context, network string, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl := &dns.Client{Net: network, Timeout: c.timeout}
	conn, err := cl.DialContext(ctx, c.resolver)
	if err != nil {
		return nil, wrapTimeout(err)
	}
	defer conn.Close()
	// ExchangeWithConnContext obeys the deadline but not cancellation:
	// close the connection when ctx ends. (A deadline set to now is not
	// enough: the exchange sets its own read deadline after the write, and
	// a cancellation between the two would be lost.)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	resp, _, err := cl.ExchangeWithConnContext(ctx, m, conn)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %w", errTimeout, err)
		}
		return nil, wrapTimeout(err)
	}
	if len(resp.Question) > 0 {
		q, want := resp.Question[0], m.Question[0]
		if q.Qtype != want.Qtype || !strings.EqualFold(q.Name, want.Name) {
			return nil, fmt.Errorf("answer for %s %s instead of %s %s",
				q.Name, dns.TypeToString[q.Qtype], want.Name, dns.TypeToString[want.Qtype])
		}
	}
	return resp, nil
}

func wrapTimeout(err error) error {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return fmt.Errorf("%w: %w", errTimeout, err)
	}
	return err
}

// describeErr turns a query error into Problem text.
func describeErr(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return notChecked + ctx.Err().Error()
	case errors.Is(err, errTimeout):
		return "resolver timeout"
	default:
		return "query failed: " + err.Error()
	}
}

// rcodeText names an rcode, e.g. "SERVFAIL".
func rcodeText(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(rcode)
}
