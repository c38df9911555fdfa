package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

// STIX writes a report as a STIX 2.1 bundle:
//
//   - an identity for the operator, the created_by_ref of every object and
//     the where_sighted_refs of the sightings;
//   - the TLP 2.0 marking-definition of the report (the fixed object of the
//     OASIS TLP 2.0 extension), in every object's object_marking_refs;
//   - a malware (is_family true, malware_types bot) per family;
//   - per seized domain called, a domain-name and an indicator
//     ([domain-name:value = '…'], pattern_type stix, valid_from the start
//     of the period), and a relationship "indicates" to each family seen
//     calling it;
//   - per infected host (address and family): an ipv4-addr or ipv6-addr,
//     an observed-data (first_observed, last_observed, number_observed:
//     the callbacks, object_refs: the address and the domain) and a
//     sighting of the indicator (of the malware when the host called no
//     name) with count, first_seen, last_seen and observed_data_refs.
//
// Ids are UUIDv5: cyber-observables' by STIX's own rule (section 2.9) from
// their value, the others from the subscriber, the period and what they
// describe, so that the same report gives the same bytes and a report made
// again gives new versions (created, modified: Options.Generated) of the
// same objects. Hosts of the family "unknown" get no malware object.
//
// The bundle is written as it goes, one object per line: the hosts' rows
// are read twice (families and domains first), never held.
type STIX struct {
	Options Options
}

var _ Writer = STIX{}

func (STIX) Format() string      { return "stix" }
func (STIX) ContentType() string { return "application/stix+json;version=2.1" }
func (STIX) Extension() string   { return "json" }

// stixObject has the properties of every object STIX writes, in the
// order they are written; empty ones are left out.
type stixObject struct {
	Type           string            `json:"type"`
	SpecVersion    string            `json:"spec_version"`
	ID             string            `json:"id"`
	Created        string            `json:"created,omitempty"`
	Modified       string            `json:"modified,omitempty"`
	CreatedByRef   string            `json:"created_by_ref,omitempty"`
	Name           string            `json:"name,omitempty"`
	Description    string            `json:"description,omitempty"`
	IdentityClass  string            `json:"identity_class,omitempty"`
	ContactInfo    string            `json:"contact_information,omitempty"`
	IsFamily       *bool             `json:"is_family,omitempty"`
	MalwareTypes   []string          `json:"malware_types,omitempty"`
	IndicatorTypes []string          `json:"indicator_types,omitempty"`
	Pattern        string            `json:"pattern,omitempty"`
	PatternType    string            `json:"pattern_type,omitempty"`
	ValidFrom      string            `json:"valid_from,omitempty"`
	Value          string            `json:"value,omitempty"`
	RelType        string            `json:"relationship_type,omitempty"`
	SourceRef      string            `json:"source_ref,omitempty"`
	TargetRef      string            `json:"target_ref,omitempty"`
	FirstObserved  string            `json:"first_observed,omitempty"`
	LastObserved   string            `json:"last_observed,omitempty"`
	NumberObserved int64             `json:"number_observed,omitempty"`
	ObjectRefs     []string          `json:"object_refs,omitempty"`
	FirstSeen      string            `json:"first_seen,omitempty"`
	LastSeen       string            `json:"last_seen,omitempty"`
	Count          *int64            `json:"count,omitempty"`
	SightingOfRef  string            `json:"sighting_of_ref,omitempty"`
	ObservedData   []string          `json:"observed_data_refs,omitempty"`
	WhereSighted   []string          `json:"where_sighted_refs,omitempty"`
	Markings       []string          `json:"object_marking_refs,omitempty"`
	Extensions     map[string]tlpExt `json:"extensions,omitempty"`
}

type tlpExt struct {
	ExtensionType string `json:"extension_type"`
	TLP           string `json:"tlp_2_0"`
}

// tlpExtension is the id of the OASIS TLP 2.0 extension definition.
const tlpExtension = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

// tlpMarkings are the fixed ids of the TLP 2.0 marking definitions.
var tlpMarkings = map[string]string{
	"CLEAR":        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
	"GREEN":        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
	"AMBER":        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
	"AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
	"RED":          "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

// tlpMarking returns the marking-definition of a TLP 2.0 label, as OASIS
// publishes it.
func tlpMarking(tlp string) stixObject {
	return stixObject{
		Type: "marking-definition", SpecVersion: "2.1", ID: tlpMarkings[tlp],
		Created: "2022-10-01T00:00:00.000Z", Name: "TLP:" + tlp,
		Extensions: map[string]tlpExt{tlpExtension: {"property-extension", strings.ToLower(tlp)}},
	}
}

// stixTime is STIX's timestamp: UTC, to the millisecond.
func stixTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Write writes the bundle of r.
func (s STIX) Write(w io.Writer, r *Report) error {
	tlp := r.TLP()
	gen := stixTime(s.Options.generated(r))
	key := r.Subscriber.Name + "|" + periodString(r.From, r.To)
	id := func(typ, what string) string { return typ + "--" + uuid5(reportNamespace, typ+"|"+key+"|"+what) }
	marks := []string{tlpMarkings[tlp]}

	// Pass 1: the families and the domains, sorted.
	families := map[string]bool{}
	domains := map[string]string{} // domain → case
	pairs := map[[2]string]bool{}  // domain, family
	// An address with several families is one ipv4-addr or ipv6-addr:
	// adjacent in address order, or remembered when rows are not in it.
	inOrder := true
	var prev netip.Addr
	for row := range r.Rows() {
		if prev.IsValid() && row.IP.Less(prev) {
			inOrder = false
		}
		prev = row.IP
		if row.Family != eventstore.UnknownFamily {
			families[row.Family] = true
		}
		if row.Domain != "" {
			if _, ok := domains[row.Domain]; !ok || row.Case != "" {
				domains[row.Domain] = row.Case
			}
			if row.Family != eventstore.UnknownFamily {
				pairs[[2]string{row.Domain, row.Family}] = true
			}
		}
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	n := 0
	put := func(o *stixObject) error {
		buf.Reset()
		if err := enc.Encode(o); err != nil {
			return err
		}
		if n > 0 {
			bw.WriteString(",\n")
		}
		n++
		bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		return nil
	}
	fmt.Fprintf(bw, `{"type":"bundle","id":"bundle--%s","objects":[`+"\n", uuid5(reportNamespace, "bundle|"+key))

	opName := orDefault(s.Options.Operator.Name, "takedown sinkhole")
	identity := "identity--" + uuid5(reportNamespace, "identity|"+opName)
	mark := tlpMarking(tlp)
	head := []*stixObject{
		{Type: "identity", SpecVersion: "2.1", ID: identity, Created: gen, Modified: gen, Name: opName,
			IdentityClass: "organization", ContactInfo: s.Options.Operator.Email},
		&mark,
	}
	yes := true
	malware := map[string]string{}
	for _, f := range slices.Sorted(maps.Keys(families)) {
		malware[f] = id("malware", f)
		head = append(head, &stixObject{Type: "malware", SpecVersion: "2.1", ID: malware[f], Created: gen, Modified: gen,
			CreatedByRef: identity, Name: f, IsFamily: &yes, MalwareTypes: []string{"bot"}, Markings: marks})
	}
	indicator := map[string]string{}
	domainObj := map[string]string{}
	validFrom := stixTime(r.From)
	for _, d := range slices.Sorted(maps.Keys(domains)) {
		indicator[d] = id("indicator", d)
		domainObj[d] = scoID("domain-name", d)
		desc := "A name seized from a botnet and sinkholed: a host that resolves or calls it is likely infected."
		if c := domains[d]; c != "" {
			desc = "A name seized in case " + c + " and sinkholed: a host that resolves or calls it is likely infected."
		}
		head = append(head,
			&stixObject{Type: "domain-name", SpecVersion: "2.1", ID: domainObj[d], Value: d, Markings: marks},
			&stixObject{Type: "indicator", SpecVersion: "2.1", ID: indicator[d], Created: gen, Modified: gen, CreatedByRef: identity,
				Name: "Sinkholed domain " + d, Description: desc, IndicatorTypes: []string{"malicious-activity"},
				Pattern: "[domain-name:value = '" + stixQuote(d) + "']", PatternType: "stix", ValidFrom: validFrom, Markings: marks})
	}
	pairList := slices.SortedFunc(maps.Keys(pairs), func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	for _, p := range pairList {
		head = append(head, &stixObject{Type: "relationship", SpecVersion: "2.1", ID: id("relationship", "indicates|"+p[0]+"|"+p[1]),
			Created: gen, Modified: gen, CreatedByRef: identity, RelType: "indicates", SourceRef: indicator[p[0]], TargetRef: malware[p[1]], Markings: marks})
	}
	for _, o := range head {
		if err := put(o); err != nil {
			return fmt.Errorf("report stix: %w", err)
		}
	}

	// Pass 2: the hosts.
	var seen map[netip.Addr]bool
	if !inOrder {
		seen = map[netip.Addr]bool{}
	}
	prev = netip.Addr{}
	for row := range r.Rows() {
		addr := &stixObject{Type: sourceType(row.IP) + "-addr", SpecVersion: "2.1", Value: row.IP.String(), Markings: marks}
		addr.ID = scoID(addr.Type, addr.Value)
		dup := row.IP == prev || seen[row.IP]
		prev = row.IP
		if seen != nil {
			seen[row.IP] = true
		}
		what := row.IP.String() + "|" + row.Family
		od := &stixObject{Type: "observed-data", SpecVersion: "2.1", ID: id("observed-data", what), Created: gen, Modified: gen,
			CreatedByRef: identity, FirstObserved: stixTime(row.FirstSeen), LastObserved: stixTime(row.LastSeen),
			NumberObserved: min(max(row.Events, 1), stixMaxCount), ObjectRefs: []string{addr.ID}, Markings: marks}
		of := malware[row.Family]
		if row.Domain != "" {
			od.ObjectRefs = append(od.ObjectRefs, domainObj[row.Domain])
			of = indicator[row.Domain]
		}
		objs := []*stixObject{addr, od}
		if dup {
			objs = objs[1:]
		}
		for _, o := range objs {
			if err := put(o); err != nil {
				return fmt.Errorf("report stix: %w", err)
			}
		}
		if of == "" { // a host of no known family that called no name
			continue
		}
		count := min(row.Events, stixMaxCount)
		si := &stixObject{Type: "sighting", SpecVersion: "2.1", ID: id("sighting", what), Created: gen, Modified: gen,
			CreatedByRef: identity, FirstSeen: stixTime(row.FirstSeen), LastSeen: stixTime(row.LastSeen), Count: &count,
			SightingOfRef: of, ObservedData: []string{od.ID}, WhereSighted: []string{identity}, Markings: marks}
		if err := put(si); err != nil {
			return fmt.Errorf("report stix: %w", err)
		}
	}
	bw.WriteString("\n]}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report stix: %w", err)
	}
	return nil
}

// stixMaxCount is the largest count and number_observed STIX allows.
const stixMaxCount = 999_999_999

// scoID is the deterministic id of a cyber-observable whose only
// id-contributing property is value (ipv4-addr, ipv6-addr, domain-name):
// UUIDv5 in STIX's namespace of the canonical JSON {"value":"…"}.
func scoID(typ, value string) string {
	name := append([]byte(`{"value":`), event.AppendJSONString(nil, value)...)
	return typ + "--" + uuid5(stixSCONamespace, string(append(name, '}')))
}

// stixQuote escapes a string for a STIX pattern's single-quoted literal.
func stixQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}
