// Package httpsink is takedown's HTTP and HTTPS sinkhole listener. Bots
// whose seized domains resolve to the sinkhole connect to it and call home;
// the listener records every connection and request as an event, answers
// with the classifier's reviewed static response (or an empty default),
// and never lets a client hold more than a bounded share of time, memory,
// file descriptors or goroutines.
//
// HTTP/1.x (plain and over TLS) is read by the package's own small parser,
// so that whatever a client sends — a malformed request line, ten thousand
// headers, a body of a gigabyte, a slow drip — is recorded as what it is,
// with the bytes it started with. HTTP/2 (over TLS, by ALPN) is served by
// net/http. TLS certificates come from a certs.Authority: one leaf per SNI
// name, minted on first use.
//
// On Linux an idle plain-HTTP connection (waiting for its first request,
// or between keep-alive requests) costs no goroutine: after a short
// wait it is parked in an epoll instance of the server's own, and a
// goroutine is started again when the client sends or closes. The
// timeouts hold as before (up to a sweep interval late). HTTPS and
// HTTP/2 connections keep a goroutine while idle: crypto/tls may already
// hold a record read from the socket, which epoll cannot see; on other
// systems every connection does.
//
// See README.md for the configuration, metrics, limits and event fields.
package httpsink

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/listen/certs"
	"github.com/takedown-project/takedown/internal/listen/sink"
)

// The listener's consumers, declared once for every listener in package
// sink.
type (
	Recorder   = sink.Recorder
	Classifier = sink.Classifier
	Zones      = sink.Zones
)

// Defaults of Config fields left zero.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultConnTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = 1 << 20
	DefaultHeadBytes         = 512
	DefaultMatchBytes        = 4 << 10
	DefaultMaxConns          = 100_000
	DefaultMaxConnsPerIP     = 256
	DefaultMaxStreams        = 100
	DefaultDeferAccept       = time.Second
	DefaultStatus            = 200 // of Config.DefaultStatus
	DefaultMaxLingering      = 1024
)

// Config configures a Server. Every field's zero value works.
type Config struct {
	// HTTP lists the addresses served with plain HTTP/1.x, e.g.
	// "0.0.0.0:80" or "127.0.0.1:0".
	HTTP []string
	// HTTPS lists the addresses served with TLS: HTTP/1.1 and HTTP/2 by
	// ALPN.
	HTTPS []string
	// Sensor names this node in events.
	Sensor string

	// Certs mints the HTTPS certificates. Nil with HTTPS addresses: New
	// makes an in-memory authority, a new CA at every start; give one
	// from certs.Open with a directory to keep the CA across restarts
	// and to share it with the SMTP listener.
	Certs *certs.Authority
	// Classifier names the family of each request and picks the response;
	// nil gives every request the case's family (else "unknown") and the
	// default response.
	Classifier Classifier
	// Zones attributes a request's host to a seized zone and case; nil
	// leaves Zone and Case empty.
	Zones Zones
	// Recorder receives an event per request and per connection that
	// ended without one (refused, failed handshake, closed or timed out
	// before a complete request). Nil records nothing.
	Recorder Recorder

	// DefaultStatus answers requests whose rule has no response: 200 or
	// 404, with an empty body. Default 200.
	DefaultStatus int

	// ReadHeaderTimeout bounds the reading of a request's line and
	// headers, from its first byte (for the first request of a
	// connection: from the accept; over TLS it also bounds the handshake).
	// Default 10 s.
	ReadHeaderTimeout time.Duration
	// WriteTimeout bounds the writing of one response. Default 10 s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that starts no new
	// request for this long. Default 60 s.
	IdleTimeout time.Duration
	// ConnTimeout is the longest a connection stays open, whatever it
	// does: it bounds slow bodies and endless keep-alive. Default 2 min.
	ConnTimeout time.Duration

	// MaxHeaderBytes bounds a request's line and headers together.
	// Default 64 KiB; more is answered 431 and the connection closed
	// (after a lingering read: see the package README).
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body: up to it the body is hashed and
	// counted, past it the listener answers 413, stops reading and
	// closes. Default 1 MiB.
	MaxBodyBytes int64
	// HeadBytes is how much of a body (or of a malformed request, or of a
	// failed handshake) goes into the event's PayloadHead. Default 512;
	// negative keeps none.
	HeadBytes int
	// MatchBytes is how much of the body the classifier sees
	// (classify.Request.Body). Default 4 KiB; never less than HeadBytes.
	MatchBytes int

	// MaxConns bounds the open connections of each listening address;
	// MaxConnsPerIP those from one source address. A refused connection
	// is recorded and closed at once. Defaults 100,000 and 256; negative
	// means no limit.
	MaxConns      int
	MaxConnsPerIP int
	// MaxLingering bounds the connections whose close lingers at once:
	// after a refused request (400, 413, 431) the listener reads and
	// discards what the client still sends for up to 2 s, so that the
	// client gets the answer, and each such connection holds a goroutine.
	// Past the bound a refused connection is closed at once (the client
	// may then see a reset instead of the answer). Default 1,024 (at
	// least 8 MiB of goroutine stacks under a flood of garbage);
	// negative: never linger.
	MaxLingering int
	// Loops is the number of threads that serve the plain-HTTP listeners
	// from epoll instances of their own (Linux): a whole request that
	// has arrived is served on the loop's thread, without a goroutine.
	// 0 gives one per two CPUs, at least one: the other CPUs answer DNS,
	// TLS and SMTP and run the store writer. (On the two-CPU benchmark
	// machine one loop also served more requests than two, at less CPU
	// per request: see BENCHMARKS.md.) Negative: none, a goroutine serves
	// each connection, as on other systems.
	Loops int
	// DeferAccept is how long the kernel holds a new HTTP or HTTPS
	// connection whose client has sent nothing yet (TCP_DEFER_ACCEPT,
	// Linux; whole seconds, rounded up). HTTP clients speak first, and a
	// bot sends its request at once: its connection is accepted with the
	// request already there, and served without a wait in epoll (a
	// fifth less CPU a request under the Connection: close load, see
	// BENCHMARKS.md). A client that stays silent is accepted about this
	// much later, when it acknowledges the kernel's second SYN-ACK, and
	// recorded as before; one that connects and closes is accepted at
	// its FIN. Default 1 s; negative: off.
	DeferAccept time.Duration
	// MaxStreams bounds the concurrent HTTP/2 streams of one connection.
	// Default 100.
	MaxStreams int

	// Logger receives start, stop and error lines (never one per
	// request). Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Now returns the current time for events; nil means time.Now.
	Now func() time.Time
}
