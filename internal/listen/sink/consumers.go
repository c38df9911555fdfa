package sink

import (
	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
)

// What every listener needs from the rest of serve, declared once for all
// of them.

// Recorder receives a listener's events (pipeline.Pipeline.Record, through
// app). Record must not block for long: the connection, session or UDP
// reader waits for it. The event is the listener's to reuse once Record
// returns; a Recorder that keeps it must copy it (its strings are
// immutable, PayloadHead is not).
type Recorder interface {
	Record(e *event.Event)
}

// Classifier names the family of a request, a message or a payload and
// picks the listener's response. *classify.Holder and *classify.Rules
// satisfy it.
type Classifier interface {
	Classify(r *classify.Request) classify.Result
}

// Zones tells which seized zone a host name falls under, which case seized
// it and which malware family that case names. servedset.Set satisfies it.
type Zones interface {
	Zone(host string) (zone, caseName, caseFamily string, ok bool)
}
