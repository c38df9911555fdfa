// Package rawsink is takedown's catch-all for TCP and UDP: bots that call
// home on a port no other listener serves (a custom binary protocol, a
// peer-to-peer fallback, a UDP beacon) reach it, usually by an nftables
// redirect of every other port (see README.md). The listener reads the
// first bytes a client sends, records their size, SHA-256 and head as an
// event, and closes. It never sends anything, or at most a configured
// static banner (TCP) or static reply no larger than the request (UDP).
//
// See README.md for the configuration, metrics, limits and event fields.
package rawsink

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/takedown-project/takedown/internal/listen/sink"
)

// The listener's consumers, declared once for every listener in package
// sink.
type (
	Recorder   = sink.Recorder
	Classifier = sink.Classifier
)

// Defaults of Config fields left zero.
const (
	DefaultMaxBytes      = 4 << 10
	DefaultHeadBytes     = 512
	DefaultReadTimeout   = 10 * time.Second
	DefaultMaxConns      = 10_000
	DefaultMaxConnsPerIP = 64
)

// maxDatagram is the largest UDP payload; every UDP reader has one buffer
// of this size.
const maxDatagram = 64 << 10

// Config configures a Server. Every field's zero value works.
type Config struct {
	// TCP lists the TCP addresses to serve, e.g. "0.0.0.0:9999" or
	// "127.0.0.1:0".
	TCP []string
	// UDP lists the UDP addresses to serve.
	UDP []string
	// Sensor names this node in events.
	Sensor string

	// MaxBytes is how much of a TCP stream is read before the connection
	// is closed, and how much of a datagram the classifier sees. Default
	// 4 KiB.
	MaxBytes int
	// HeadBytes is how much of the payload goes into PayloadHead.
	// Default 512; negative keeps none. Never more than MaxBytes.
	HeadBytes int
	// ReadTimeout is how long a TCP connection may take to send MaxBytes;
	// then what came is recorded and the connection closed. Default 10 s.
	ReadTimeout time.Duration

	// Banner, if set, is written to every TCP connection on accept.
	// Static: never built from request data. Default: nothing is sent.
	Banner []byte
	// UDPReply, if set, answers every datagram at least as long as it;
	// shorter datagrams get no answer, so the listener never amplifies.
	// Default: no reply.
	UDPReply []byte
	// UDPReaders is the number of goroutines reading each UDP socket.
	// Default 2.
	UDPReaders int

	// MaxConns bounds the open TCP connections of each listening address;
	// MaxConnsPerIP those from one source address. A refused connection
	// is recorded and closed at once. Defaults 10,000 and 64; negative
	// means no limit.
	MaxConns      int
	MaxConnsPerIP int

	// Classifier names the family of each payload; nil gives "unknown".
	Classifier Classifier
	// Recorder receives an event per TCP connection and per datagram.
	// Nil records nothing.
	Recorder Recorder

	// Logger receives start, stop and error lines (never one per
	// connection or datagram). Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Now returns the current time for events; nil means time.Now.
	Now func() time.Time
}
