// Package bus is what a sensor and the central share about NATS
// JetStream: the subjects and stream names, the connection (servers,
// TLS, one credential per sensor), and the two messages that cross it
// besides the served set — a batch of spool records and a sensor's
// heartbeat — with their binary and JSON forms.
//
// # Subjects
//
// A sensor publishes its events to takedown.events.<sensor>, captured by
// the stream TAKEDOWN_EVENTS (replicated, R3 on a three-node cluster), and
// its heartbeat, every few seconds, on takedown.sensors.<sensor> (core
// NATS: the central keeps the last one of each sensor in memory). The
// central publishes the served set on takedown.served.delta (stream
// TAKEDOWN_SERVED) and in the object store takedown_served (package
// servedsync). Every connection has an inbox prefix of its own,
// _INBOX_<user>, so that the server's permissions can give a sensor its
// own replies and nothing else: with the default _INBOX prefix, any
// client allowed to read replies could read the batches the central's
// consumer pulls.
//
// # Why batches
//
// One message carries up to a few hundred KiB of spool records, not one
// event: JetStream remembers every message id for its duplicate window,
// and at tens of thousands of events a second per sensor one id per event
// would cost the servers more memory than the events. Each record keeps
// the spool position it ends at, so that the central can tell, record by
// record, what it has stored already from a sensor even when a retry
// groups the records differently (see the central's consumer, package
// collect).
//
// # Credentials
//
// A credential file holds one line: an NKey user seed (SU…), or
// user:password. It must not be readable by group or others: Connect
// refuses it with the fix in the error, as ssh does a private key.
package bus
