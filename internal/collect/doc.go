// Package collect is the central's collector: it takes the sensors' events
// from the JetStream stream TAKEDOWN_EVENTS and stores each of them exactly
// once, across crashes of the central, of the sensors and of the NATS
// servers.
//
// A sensor publishes its spool to the stream in batches (bus.Batch), each
// record with the spool position it ends at. The collector fetches
// messages from its durable pull consumer, checks them, decodes the
// records, classifies the DNS events, enriches and counts every event, and
// appends them to the store in one transaction with its mark (below). Only
// after that commit does it acknowledge the messages. A crash before the
// commit stores nothing and acknowledges nothing: the messages come again.
// A crash after the commit and before the acknowledgements leaves messages
// whose records the store holds: they come again too, and the mark says so.
//
// # Exactly once: the mark
//
// The mark holds, per sensor, the spool (its identity) and the position
// after the last record stored; a record at or before it is skipped. This
// is what makes a message that comes again harmless, and also a batch that
// a sensor published again with another grouping of its records (it died
// between the stream's acknowledgement and writing its own mark): its
// message id is new, the stream keeps it, and only the records after the
// mark are stored. A spool the mark does not know (the sensor's spool was
// deleted or replaced) starts over from its first record. The mark keeps the
// last 8 spools of each sensor, so that a message of a replaced spool that
// comes again is still known. The stream sequence of the last stored message
// is kept too, for the operator; it decides nothing, since a stream made
// again numbers from 1.
//
// Binary form (integers big-endian unless said; uvarint as encoding/binary):
//
//	magic     "TDCM"
//	version   1 byte: 1
//	sequence  8 bytes: the stream sequence of the last message stored
//	sensors   uvarint: the number of sensors, then for each, in id order:
//	  id        uvarint length, bytes (a valid sensor id)
//	  spools    uvarint: 1 to 8, then for each, most recent first:
//	    spool     16 bytes: the spool's identity (spool.ID)
//	    position  16 bytes: the position after the last stored record
//	              (spool.Pos: segment, offset; 8 bytes each)
//	crc       4 bytes: CRC-32C of all the above
//
// It is stored under the source "jetstream:TAKEDOWN_EVENTS"
// (eventstore.Writer.AppendMarked); a mark that does not read back stops
// Run with an error rather than storing events twice.
//
// # Exactly once: the order
//
// Positions work only if each sensor's records arrive in order: a record
// that came after one with a later position would be taken as stored. The
// stream delivers in order, except what it delivers again: a message whose
// delivery was lost on the way (a fetch that ended before it arrived, a
// connection that broke, a consumer leader that changed) or that a run
// before this one took and never acknowledged. Those come again only after
// AckWait (60 s), after the messages behind them. So the collector:
//
//   - makes its consumer anew at every start (delete, create): everything
//     still in the stream is delivered at once, from the first message;
//   - watches the consumer's delivery sequence, which counts every
//     delivery: a gap means a delivery was lost, and the consumer is made
//     anew, on a new subscription, after storing what came before the gap;
//   - says the messages it holds are in progress while the store refuses
//     them, so that they are not delivered again meanwhile.
//
// The stream is a work queue (EnsureStream): a message leaves it when
// acknowledged, so a consumer made anew delivers only what is not stored,
// and a full stream refuses new messages (the sensors keep their records
// in their spools) instead of dropping unstored ones. The pull requests
// are the collector's own (pull.go says why not the client library's
// Fetch).
//
// # Bad input
//
// What a sensor should never send is refused, counted by kind
// (takedown_collect_rejected_total{kind}, Stats.Rejected, the Reject
// constants), logged once per kind and sensor every 10 minutes with the
// number held back, acknowledged, and never stored; it never stops the
// consumer: a message larger than MaxMessageBytes, of a sensor not
// configured, that is not a batch, or whose batch names another sensor than
// its subject; a record that is not a valid event (to the quarantine, with
// the reason), an event that names another sensor than its batch, or one of
// a zone the central does not serve. The central trusts a configured
// sensor's attribution of its events otherwise (case, family and the
// classification of its listeners' requests, made inline as they answered).
//
// # Store errors
//
// An error of the store's engine (a full disk) keeps the messages and
// retries the same batch, waiting 1 s, doubling up to 5 s; nothing is
// acknowledged meanwhile. An error that names an event
// (eventstore.EventError) sets that event aside in the quarantine and
// retries the rest at once.
//
// # The central's NATS permissions
//
// The central's user publishes to $JS.API.STREAM.CREATE/UPDATE/INFO of
// TAKEDOWN_EVENTS, $JS.API.CONSUMER.CREATE.TAKEDOWN_EVENTS.<durable>.>,
// $JS.API.CONSUMER.DELETE/INFO/MSG.NEXT.TAKEDOWN_EVENTS.<durable> and
// $JS.ACK.TAKEDOWN_EVENTS.<durable>.>, and subscribes to
// takedown.sensors.* and its own inbox.
//
// # Config
//
// Every field of Config has a working zero value but JS and Store:
// Durable "takedown-central", BatchSize 20,000 events, FlushInterval
// 500 ms, MaxMessageBytes 4 MiB, MaxAckPending 1,024 messages,
// RetryInterval 1 s. Sensors lists the configured sensors; none refuses
// everything.
//
// # Cost
//
// BenchmarkCollect: 1,000,000 generated Waledac events of one sensor in
// 512 KiB batches, a backlog in the stream of an embedded server, stored
// into a DuckDB file, against the same records decoded and appended
// directly (the single process's path after its spool); 2 shared vCPUs,
// three runs each, median (range), CPU of the whole process, the server's
// deliveries included:
//
//	batch 20,000:  13.8 (12.9–15.3) µs/event, 77,500 events/s; direct 12.7 (12.2–13.4), 81,900
//	batch 122,880: 16.2 (15.5–17.7) µs/event, 66,200 events/s; direct 14.7 (12.9–14.7), 76,300
//
// The hop costs the central about 1 to 1.5 µs of CPU an event (8 to 10 %):
// reading the messages from the server, the checks, and the mark. The
// store's append is the rest, as in the single process.
package collect
