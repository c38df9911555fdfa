// Package uplink carries a sensor's events to the central: the sinks
// record into the disk spool (Record), and Run publishes the spool to the
// JetStream stream TAKEDOWN_EVENTS on takedown.events.<sensor>, exactly
// once as far as the central can tell, whatever crashes and whenever NATS
// is away.
//
// # The spool is the truth, the mark says what the stream has
//
// Record is the sensor's whole cost per event: encode, append to the
// spool, return. It never waits for NATS. Run reads the spool back in
// order and keeps one batch in flight: it fills a bus.Batch up to
// MaxBatchBytes or for Linger, publishes it with its message id
// (Nats-Msg-Id: batch.MsgID(), the sensor, the spool and the first and
// last record's positions) and the expected stream, and waits for the
// PubAck. Only then does it write the mark file (the spool's identity and
// the position after the batch's last record; a new file fsynced and
// renamed over the old one, then the directory fsynced) and release the
// spool's segments before that position. A batch that fails — no server,
// no stream yet, a timeout, a PubAck with an error — is sent again, the
// same records, after 100 ms, doubling to 5 s, and never skipped; a PubAck
// flagged duplicate is an acknowledgement like any other.
//
// One batch in flight, not a window of them: order comes free (the stream
// holds a sensor's records in spool order, which the central relies on to
// keep one position per sensor), the mark is one position, and a failure
// has one batch to resend. It costs a round trip per batch, which at
// 512 KiB (about 2,700 events) is nothing: BenchmarkUplink publishes
// 575,000–645,000 events/s to an embedded server on the 2-core test
// machine, far more than the sinks record.
//
// # What a crash costs
//
// Nothing is lost: a segment goes only after the stream acknowledged every
// record in it, and after the mark says so. A crash before the ack, or
// between the ack and the mark, sends the batch again after the restart.
// Read with the same grouping (the same records were on disk) it has the
// same id, and the stream drops it within its duplicate window (2 min);
// grouped otherwise, or later, the stream holds some records twice and the
// central drops them, since it keeps per sensor and spool the position it
// stored up to. A crash between the mark and the release leaves segments
// that Run releases when it starts. A missing or damaged mark file means
// the spool is published from its start, with the same outcome.
//
// After a restart reading resumes from the mark, by the pipeline's rules
// for its own mark: a spool with another identity (deleted, replaced) is
// read from its start, since the mark's numbers would point into its new
// segments and skip their first records; a mark past the spool's end (an
// older copy put back) starts at the newest segment. Stats.SpoolNote says
// which, and the log.
//
// # When NATS is away
//
// Run does not publish while the connection is down: a message sent then
// would wait in the client's reconnect buffer (1 MiB, bus.Connect) and
// only fill it. The batch waits in memory, the rest in the spool, which
// grows up to its limit while Record goes on without waiting. Memory stays
// at one batch whatever the backlog: its records and its binary form, each
// at most MaxBatchBytes and one record, and the spool reader's 1 MiB. When the
// connection is back Run wakes at once and delivers the backlog in order,
// in full batches. Losing and regaining the connection is logged once
// each; publish errors at most once per reason a minute, with the count
// of those held back.
//
// # Records too large for any message
//
// A record that does not fit in the largest message the server takes
// (its max_payload, 1 MiB by default) can never be published, and
// retrying it would stop the sensor's uplink for good. It is the one
// record Run skips: logged, counted (Stats.Skipped,
// takedown_uplink_skipped_records_total). The sinks' events are a few
// hundred bytes; only a server configured with a tiny max_payload makes
// this happen.
//
// # Heartbeat
//
// Every HeartbeatInterval, while connected, Run publishes a bus.Heartbeat
// on takedown.sensors.<sensor> (core NATS): recorded, dropped, published,
// the backlog and the served set's serial and size, for the central's
// status.
package uplink
