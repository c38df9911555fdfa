// Package dnssink is takedown's authoritative DNS sinkhole: it answers for
// every seized zone (SOA, NS, A/AAAA, MX, TXT naming the case, the same
// records for any name below the apex), refuses everything else, limits the
// rate of each response per client prefix so that it can never be used as a
// reflector, and turns every query for a seized name into an event.
//
// It answers from the served set (internal/servedset): the seized zones,
// their cases and what every zone answers, an immutable snapshot read
// through an atomic pointer, so that the query path takes no lock.
//
// The zones of a case with an active DNSSEC key are signed ahead of the
// queries, once per zone and key (every name below a zone is the
// wildcard's expansion), by a goroutine that keeps the signatures fresh;
// queries with the DO bit get them (README.md, "DNSSEC").
package dnssink

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/servedset"
)

// Recorder receives the events of the sinkhole. Record must not block: the
// answer waits for it. The event is the server's to reuse once Record
// returns: a Recorder that keeps it must copy it.
type Recorder interface {
	Record(e *event.Event)
}

// RRLConfig configures response-rate limiting per client prefix and
// response (see the README: what a response is keyed by, and its classes).
type RRLConfig struct {
	// ResponsesPerSecond allowed per prefix and response: per answer
	// (owner and qtype), per zone's NODATA and per zone's NXDOMAIN; 0
	// disables the limit.
	ResponsesPerSecond int
	// SignedPerSecond allowed per prefix over all signed answers (DO set,
	// zone signed), whatever their zone, name or type, on top of each
	// answer's own budget: it bounds a flood that rotates over many
	// signed zones. 0 disables it.
	SignedPerSecond int
	// ErrorsPerSecond allowed per prefix for errors (REFUSED, BADVERS…)
	// and, in a budget of their own, for the answers to malformed queries
	// (FORMERR, NOTIMP); 0 means ResponsesPerSecond.
	ErrorsPerSecond int
	// Slip: every Slip-th limited response goes out truncated (TC) so that
	// a real client retries over TCP; the others are dropped. 0 drops all.
	Slip int
	// IPv4PrefixLen and IPv6PrefixLen group clients; defaults 24 and 56.
	IPv4PrefixLen int
	IPv6PrefixLen int
	// Exempt lists client prefixes that are never limited, e.g. the
	// resolvers of subscribed networks.
	Exempt []netip.Prefix
}

// Config configures the sinkhole.
type Config struct {
	// Listen lists the addresses served over both UDP and TCP.
	Listen []string
	// Sensor names this node in events.
	Sensor string
	// Served is the served set the sinkhole answers from: the zones, their
	// cases and TXT, and what every zone answers (name servers and glue,
	// sinkhole addresses, TTL — default 300 s —, negative TTL — default
	// 60 s —, SOA contact — default hostmaster.<zone>). Required. The
	// server follows its steps until Shutdown.
	Served *servedset.Set
	// A and AAAA, if either is set, are the addresses the names below
	// every zone resolve to instead of the served set's: a sensor answers
	// with its own listeners' addresses, so that the bots it answers call
	// it. The name servers, TTLs and SOA stay the served set's, the same
	// at every sensor.
	A, AAAA []netip.Addr
	// RRL limits responses per client prefix.
	RRL RRLConfig
	// Recorder receives an event per query for a served name and per
	// packet that fails to parse. Nil records nothing.
	Recorder Recorder
	// Logger and Registerer; nil means discard / do not register.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// MaxUDPSize caps UDP responses to EDNS0 clients (512..4096); default
	// 1232, the DNS Flag Day 2020 size that avoids IP fragmentation.
	// Clients without EDNS0 get at most 512 bytes.
	MaxUDPSize int
	// UDPWorkers is the number of goroutines reading each UDP socket (on
	// Linux each blocks in recvmmsg on a thread of its own and lends the
	// Go scheduler a P while it serves); default the number of CPUs, at
	// most GOMAXPROCS.
	UDPWorkers int
	// MaxTCPConns bounds the open TCP connections over all listeners;
	// default 1024. Connections beyond it are closed at once.
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP connection that sends no query for this
	// long; default 10 s.
	TCPIdleTimeout time.Duration
	// RRLTableSize is the number of buckets (client prefix and response)
	// the rate limiter tracks at once (rounded up to a power of two);
	// default 65536. Memory is fixed: 26 bytes per bucket. A bucket idle
	// for a second holds nothing a new one would not, so the table needs
	// room for the responses of one second only.
	RRLTableSize int
}
