// Package sim is takedown's botnet simulator: a synthetic botnet of N bots
// that calls one sinkhole, and only that one, over loopback, so that demos,
// tests and benchmarks have traffic whose exact count is known.
//
// Each bot has a stable identity: an index, a loopback source address from
// the demo world (demoworld.World.Addr), which maps it to a fictional
// network and country, and for Waledac a bot id. A share of the bots sit
// behind NAT: several bots on one address. Each bot belongs to one family,
// which decides what a callback is:
//
//   - waledac: an A query for a random seized name at the sinkhole's DNS
//     (UDP, from the bot's address), then an HTTP POST to the sinkhole's
//     HTTP listener with Host set to that name, in the form the shipped
//     rule waledac-http-post recognises (User-Agent "Mozilla", a random
//     .htm or .png path, body "a=<base64 payload>&b=<base64 bot id>"), on a
//     new connection;
//   - conficker: an A query for a random name of the day's DGA list
//     (DGANames); only seized names are answered and stored;
//   - rustock: an SMTP session that sends one spam message (EHLO with an
//     address literal or a bare word, MAIL, 2–6 RCPT at fictional
//     example.* domains, DATA, QUIT).
//
// Callbacks follow a Poisson process per bot in simulated time, which runs
// Speed times faster than real time; a min-heap of next-callback times
// feeds a bounded pool of workers, so a machine that cannot keep up makes
// callbacks late (the lag is reported), never queues them without bound.
// Infections are cleaned at a rate per simulated day, faster in notified
// networks; a cleaned bot never calls again.
//
// Backfill generates the past days of callbacks as events, without
// network traffic, in the shape the sinks would have recorded them; Run
// then sends live traffic. Truth counts what the sinkhole demonstrably got
// — a DNS answer other than REFUSED, an HTTP response, the reply to the end
// of an SMTP message — by family, network, country and day, as the store
// counts them.
package sim
