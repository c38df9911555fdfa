package classify

import "github.com/takedown-project/takedown/internal/event"

// ClassifyEvent names the family, tag and bot id of an event from what the
// event keeps of its request: the one place that classifies an event after
// the fact, for the events that no listener classified as it answered (DNS
// queries, in the pipeline, off the answer path) and for the events a
// sensor sends (whose own family is not trusted: the rules decide, as the
// listener that saw them would have). e.Family holds, on the way in, the
// family of the case that seized e's zone (the rules' fallback), and on the
// way out the result.
//
// A DNS event keeps a bot id it had when the rules find none (the
// sinkhole's own do not set one); any other event takes the rules' bot id,
// or none.
func (h *Holder) ClassifyEvent(e *event.Event) {
	r := EventRequest(e)
	res := h.Classify(&r)
	e.Family, e.Tag = res.Family, res.Tag
	if res.BotID != "" || e.Protocol != event.ProtoDNS {
		e.BotID = res.BotID
	}
}

// EventRequest is the request that e describes, with e.Family as the case's
// family.
func EventRequest(e *event.Event) Request {
	r := Request{
		Protocol: e.Protocol, Transport: e.Transport, Port: e.DstPort,
		Domain: e.Domain, Zone: e.Zone, Case: e.Case, CaseFamily: e.Family,
	}
	if e.Protocol == event.ProtoDNS {
		return r
	}
	r.Method, r.Path, r.UserAgent = e.HTTPMethod, e.HTTPPath, e.HTTPUserAgent
	r.Headers, r.Body = eventHeaders{e}, e.PayloadHead
	r.TLSFingerprint, r.HELO = e.TLSFingerprint, e.SMTPHelo
	if e.Protocol == event.ProtoHTTPS {
		r.SNI = e.Domain
	}
	return r
}

// eventHeaders gives the rules the HTTP headers an event keeps.
type eventHeaders struct{ e *event.Event }

func (h eventHeaders) Values(name string) []string {
	var v string
	switch name {
	case "User-Agent":
		v = h.e.HTTPUserAgent
	case "Referer":
		v = h.e.HTTPReferer
	case "Content-Type":
		v = h.e.HTTPContentType
	case "X-Forwarded-For":
		v = h.e.HTTPForwardedBy
	case "Host":
		v = h.e.Domain
	}
	if v == "" {
		return nil
	}
	return []string{v}
}
