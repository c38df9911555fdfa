package app

import (
	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
)

// dnsClassifier names the family of DNS query events in the pipeline, off
// the answer path: the rules see the name, its zone and the family the
// zone's case names (which they fall back to). Other events were
// classified by their listener, per request.
type dnsClassifier struct{ rules *classify.Holder }

func (c dnsClassifier) ClassifyEvent(e *event.Event) {
	if e.Protocol != event.ProtoDNS || e.Malformed {
		return
	}
	r := classify.Request{
		Protocol: e.Protocol, Transport: e.Transport, Port: e.DstPort,
		Domain: e.Domain, Zone: e.Zone, Case: e.Case, CaseFamily: e.Family,
	}
	res := c.rules.Classify(&r)
	e.Family, e.Tag = res.Family, res.Tag
	if res.BotID != "" {
		e.BotID = res.BotID
	}
}
