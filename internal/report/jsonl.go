package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// JSONLines writes a report as JSON lines: one flat object per infected
// host with the key names of IntelMQ's harmonisation, as the events export
// uses them, so that an IntelMQ JSON parser bot or an abuse desk's script
// reads it as it is:
//
//	time.source                    last callback, "2006-01-02T15:04:05+00:00"
//	feed.name                      "takedown-sinkhole"
//	feed.provider                  Options.Operator.Name
//	classification.taxonomy        "malicious-code"
//	classification.type            "infected-system"
//	classification.identifier      the family
//	malware.name                   the family ("unknown" if unattributed)
//	protocol.application           protocol of the last callback
//	protocol.transport             transport of the last callback
//	source.ip, source.port         address; source port of the last callback
//	source.asn, source.as_name     network
//	source.geolocation.cc, .region, .city, .latitude, .longitude
//	destination.port               destination port of the last callback
//	destination.fqdn               the seized name of the first callback
//	tlp                            the report's TLP as IntelMQ's TLP type takes
//	                               it (WHITE, GREEN, AMBER, RED): CLEAR is
//	                               WHITE, AMBER+STRICT is AMBER
//	extra.first_seen, extra.last_seen   as time.source
//	extra.callbacks                number of callbacks
//	extra.bot_ids                  distinct bot ids (NAT: more than 1)
//	extra.destination_ports        distinct destination ports, ascending
//	extra.other_ports              true when less common ports were called too
//	extra.case, extra.tag          the case of the domain; the classifier's tag
//
// Keys without a value (an unknown ASN, no coordinates) are left out.
type JSONLines struct {
	Options Options
}

var _ Writer = JSONLines{}

// JSONTime is the layout of the JSON lines' times: IntelMQ's.
const JSONTime = "2006-01-02T15:04:05-07:00"

func (JSONLines) Format() string      { return "json" }
func (JSONLines) ContentType() string { return "application/x-ndjson" }
func (JSONLines) Extension() string   { return "jsonl" }

// Write writes one line per host.
func (j JSONLines) Write(w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	tlp := intelmqTLP(r.TLP())
	var b []byte
	c := &clock{sep: "T", suffix: "+00:00"}
	for row := range r.Rows() {
		b = j.appendRow(b[:0], row, tlp, c)
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("report json: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	return nil
}

func (j JSONLines) appendRow(b []byte, r *eventstore.HostRow, tlp string, c *clock) []byte {
	o := jsonObject{b: append(b, '{')}
	o.time("time.source", r.LastSeen, c)
	o.str("feed.name", event.FeedName)
	o.str("feed.provider", j.Options.Operator.Name)
	o.str("classification.taxonomy", event.ClassificationTaxonomy)
	o.str("classification.type", event.ClassificationType)
	o.str("classification.identifier", r.Family)
	o.str("malware.name", r.Family)
	o.str("protocol.application", string(r.Protocol))
	o.str("protocol.transport", string(r.Transport))
	o.key("source.ip")
	o.b = append(o.b, '"')
	o.b = r.IP.AppendTo(o.b)
	o.b = append(o.b, '"')
	o.uint("source.port", uint64(r.SrcPort))
	o.uint("source.asn", uint64(r.ASN))
	o.str("source.as_name", r.ASName)
	o.str("source.geolocation.cc", r.Country)
	o.str("source.geolocation.region", r.Region)
	o.str("source.geolocation.city", r.City)
	if hasGeo(r) {
		o.key("source.geolocation.latitude")
		o.b = strconv.AppendFloat(o.b, r.Latitude, 'f', -1, 64)
		o.key("source.geolocation.longitude")
		o.b = strconv.AppendFloat(o.b, r.Longitude, 'f', -1, 64)
	}
	o.uint("destination.port", uint64(r.DstPort))
	o.str("destination.fqdn", r.Domain)
	o.str("tlp", tlp)
	o.time("extra.first_seen", r.FirstSeen, c)
	o.time("extra.last_seen", r.LastSeen, c)
	o.key("extra.callbacks")
	o.b = strconv.AppendInt(o.b, r.Events, 10)
	o.key("extra.bot_ids")
	o.b = strconv.AppendInt(o.b, r.BotIDs, 10)
	if len(r.DstPorts) > 0 {
		o.key("extra.destination_ports")
		o.b = append(o.b, '[')
		o.b = appendPorts(o.b, r.DstPorts, false, ',')
		o.b = append(o.b, ']')
	}
	if r.OtherPorts {
		o.key("extra.other_ports")
		o.b = append(o.b, "true"...)
	}
	o.str("extra.case", r.Case)
	o.str("extra.tag", r.Tag)
	return append(o.b, '}')
}

type jsonObject struct{ b []byte }

func (o *jsonObject) key(k string) {
	if o.b[len(o.b)-1] != '{' {
		o.b = append(o.b, ',')
	}
	o.b = event.AppendJSONString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *jsonObject) str(k, v string) {
	if v == "" {
		return
	}
	o.key(k)
	o.b = event.AppendJSONString(o.b, v)
}

func (o *jsonObject) uint(k string, v uint64) {
	if v == 0 {
		return
	}
	o.key(k)
	o.b = strconv.AppendUint(o.b, v, 10)
}

func (o *jsonObject) time(k string, t time.Time, c *clock) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = c.append(o.b, t)
	o.b = append(o.b, '"')
}

// intelmqTLP maps a TLP 2.0 label onto the four of IntelMQ's TLP type,
// which refuses CLEAR and AMBER+STRICT, as xarfTLP does for X-ARF.
func intelmqTLP(tlp string) string {
	return strings.ToUpper(xarfTLP(tlp))
}
