// Package servedsync carries the served set (internal/servedset) and the
// classification rules from the central to the sensors over NATS
// JetStream: the Publisher on the central, a Follower on each sensor.
//
// # Why a stream and an object store
//
// A change of the set is a step (a servedset.Delta from serial N to M),
// and steps must be applied in order, once each: that is a log, so the
// steps go to the stream TAKEDOWN_SERVED, one message each on
// takedown.served.delta, with limits retention (24 h, 100,000 messages,
// 256 MiB by default). A sensor that starts, or has missed steps, needs
// the whole set instead, and the full form of a million zones is 18 MB,
// far above a message's 1 MB: the object store takedown_served keeps it
// in chunks, as the object "full", next to the rules file ("rules"). A KV
// bucket would hold neither: a value is one message.
//
// The full object says, in its metadata, its serial and the stream
// sequence of the last delta it includes ("serial", "seq", "zones"): the
// deltas after that sequence continue from that serial. A follower reads
// the serial without downloading the object, and knows where in the
// stream to start. A delta message carries its serials in the headers
// Takedown-Served-From and Takedown-Served-To (so a follower skips one it
// has without decoding it) and a Nats-Msg-Id of the publisher's run and
// the serials (so a retry after a lost acknowledgement is dropped by the
// stream).
//
// # Publisher
//
// The set calls its subscribers under its lock, so the publisher's
// subscriber only appends the step to a queue; one goroutine publishes
// the queue in order and retries each step (250 ms doubling to 5 s) while
// NATS is away. Past QueueLen steps the queue is dropped for one full form
// of the newest set, put when NATS is back. The full form is put at start,
// after a Replace, after a step that does not follow the last one
// published, instead of a delta too big for the server's maximum payload,
// every FullEvery deltas (500; at most half the stream's message limit,
// so that the stream always holds the deltas after the last full form),
// after deltas that add up to more bytes than the full form, and every
// FullInterval (10 min) if the set changed or the object is gone. The
// rules are read every second and put when their SHA-256 changes; an
// empty object means the shipped rules.
//
// # Follower
//
// LoadDisk, before anything else, puts the set kept on disk
// (<dir>/served.tdsf) in place, so that a restarted sensor answers at
// once, with NATS down too. Run then binds (waiting, without creating
// anything, until the central has made the stream and the bucket), reads
// the descriptions of the objects with an ordered consumer (the last of
// each, then every new one), and on the first description of "full":
// reads the deltas after its sequence if the set is that full form or
// newer (a set from disk), or loads it.
//
// A delta whose From is the set's serial is applied; one the set already
// includes is skipped; one that does not follow, or does not apply, is a
// gap, answered by the full form. The full form is not put in place as
// is: the deltas the stream holds after it are applied to it first, and
// the result replaces the set, so that the set never goes back to an
// older state and is never half-applied. If those deltas do not lead to
// the stream's end (deleted, or lost to the limits while the sensor was
// away), the set stays as it is and the follower waits for a newer full
// form (the central's next one, at most FullEvery deltas or FullInterval
// later). A message that does not decode is counted and passed over: it
// is not a step; if it hid one, the next delta does not follow and the
// full form comes then (at once if a full form newer than the one the
// set comes from is there). When the deltas reach the sequence of a new
// full form and none after it changed the set, the set must be that full
// form: if it is not, the central replaced its set, and the follower
// loads it. Every CheckEvery (10 s) it also reads the stream's state (a
// stream that went back, deleted and made again, binds it again) and the
// full object's description (in case a consumer missed one).
//
// The set is written to disk (servedset.WriteFile: temporary file, fsync,
// rename) one second after a change, the changes meanwhile in the same
// write, and when Run ends. The rules object is written to RulesFile the
// same way when its digest differs from the file's, then OnRules is
// called (the lead reloads its classify.Holder there).
//
// Problems are counted by kind (takedown_served_follower_errors_total,
// takedown_served_publisher_errors_total) and logged once per kind per
// 10 minutes; none stops either side.
//
// # What a sensor may do
//
// A follower only reads, with pull consumers (no flow control replies,
// no acknowledgements) and direct gets, so that a sensor's NATS
// permissions grant it nothing that writes. It publishes to these
// subjects, and subscribes to its own inbox (_INBOX_<sensor>.>):
//
//	$JS.API.STREAM.INFO.TAKEDOWN_SERVED
//	$JS.API.STREAM.INFO.OBJ_takedown_served
//	$JS.API.CONSUMER.CREATE.TAKEDOWN_SERVED.>     (name and filter tokens)
//	$JS.API.CONSUMER.CREATE.OBJ_takedown_served.>
//	$JS.API.CONSUMER.MSG.NEXT.TAKEDOWN_SERVED.*
//	$JS.API.CONSUMER.MSG.NEXT.OBJ_takedown_served.*
//	$JS.API.CONSUMER.DELETE.TAKEDOWN_SERVED.*     (the client drops an ordered
//	$JS.API.CONSUMER.DELETE.OBJ_takedown_served.*  consumer it replaces)
//	$JS.API.DIRECT.GET.OBJ_takedown_served.>      (the last description of an object)
//
// TestSensorSubjects lists them through a start, rules, garbage, a Replace
// and a server restart, under exactly these permissions. Everything here
// works on nats-server 2.9 (one filter per consumer, direct get, no
// metadata on streams): the tests pass against Debian's 2.9.10 run as a
// process (SERVEDSYNC_NATS_SERVER=/usr/sbin/nats-server) as well as the
// embedded 2.15.
//
// # Figures
//
// On the development machine (2 cores, shared), with one server on
// loopback: a change reaches a sensor's set in 0.25 ms (median of 100
// changes of a 10,000-zone set; max 1.6 to 3 ms) against the 2 s target.
// At a million zones the full form is 18 bytes a zone (18 MB), put in 0.2
// to 0.27 s; a fresh follower goes from its start to the central's set in
// 0.7 to 0.8 s (bind, fetch, decode, replace); a change of one zone
// reaches it in 0.6 to 0.9 ms on average, 9 ms at worst over 300 changes
// (BenchmarkFollower).
package servedsync
