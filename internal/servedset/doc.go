// Package servedset is the served set: what the sinks of a takedown serve
// and attribute to. It holds the seized zones, the case that seized each
// (with the family the case names and the TXT that names the order), and
// what every zone answers (the name servers with their glue, the sinkhole
// addresses, the TTLs, the SOA contact).
//
// The registry side makes it (internal/registry's Publisher, from the
// audit log); the DNS sinkhole answers from it, the listeners and the
// ingest endpoint attribute a host name to its zone and case with it, and
// the RPZ feed and the transfer server follow its steps. A sensor that has
// no registry (the next step of takedown) will receive it over the network
// and keep the last one on disk: so it is serialisable, whole (the full
// form) and by step (the delta form), and imports nothing of ours but the
// DNSSEC key type (internal/dnssec): a case that signs carries its keys,
// private parts included, so that one central rolls the keys of every
// sensor's sinkhole. The file WriteFile writes is mode 0600 for that.
//
// # Snapshots
//
// A Snapshot is immutable; a Set holds the current one behind an atomic
// pointer, so that a reader (a DNS answer, a request attributed to its
// zone) takes no lock and never waits. A step is a Delta from serial N to
// serial M: the sinkhole's answers if they changed, cases added or
// changed, zones removed, zones put. Serials follow RFC 1982, and the
// registry side makes them the unix time of the change (NextSerial), so
// that they keep growing across restarts: they are the SOA serials of the
// zones and of the RPZ.
//
// # Cost of a step
//
// Applying a step costs in proportion to the step, not to the number of
// zones. The zones live in 4,096 maps (shards) chosen by a keyed hash of
// the apex; a step copies the array of shard pointers (32 KiB) and the
// shards it touches (about 244 zones each at a million), and leaves every
// other shard shared with the snapshot before it. A case's TXT and family
// are held once per case, so a change of a case touches no zone. On the
// development machine (2 cores, shared): one zone released or added in a
// set of 1,000,000 takes 33 to 45 µs and 55 KB; the full form of a million
// zones applies in 0.4 s; the set holds 109 bytes of heap a zone, its name
// included (104 MiB a million); a lookup of a name below a zone takes 39
// ns without allocating (BenchmarkApply, BenchmarkLookup).
//
// A lookup walks the name's labels from the right and asks the shard of
// each suffix only for the label counts that have zones (so a query for
// bot.example.com in a set of two-label zones costs one map access), down
// to the deepest zone of the set.
//
// # Names and checks
//
// Zone names are host names in A-label form: lower case (Apply folds
// case), no trailing dot, labels of 1 to 63 letters, digits, '-' or '_',
// at most 253 bytes. Case handles and family names follow the registry's
// rule. Everything that enters a snapshot — a delta from the registry or
// from the network, a file — goes through Snapshot.Apply, which refuses a
// step whole, naming the part at fault: a serial that does not follow
// (ErrSerial: ask for the full form), a name that is not a host name, a
// removal of a zone not served, a put for an unknown case, zones without a
// name server.
//
// # Binary forms
//
// The full form is a delta from serial 0 that names everything; the delta
// form names one step (see the layout in codec.go). Both end in a CRC-32C,
// and their decoders (UnmarshalDelta, ReadFull) bound every count by the
// bytes left, so that no input makes them allocate more than its size;
// both have fuzz targets. WriteFile writes the full form atomically (a
// temporary file, fsync, rename, fsync of the directory): 20 bytes a zone,
// a million zones encoded in 0.1 s (BenchmarkWriteTo).
package servedset
