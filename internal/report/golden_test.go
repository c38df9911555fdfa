package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range max(len(gl), len(wl)) {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("%s differs at line %d:\n got %q\nwant %q\n(go test -update rewrites it)", path, i+1, g, w)
			}
		}
	}
}

// fixtureReport is the report of the golden files and the rows it must hold.
func fixtureReport(t *testing.T) (*Report, []eventstore.HostRow) {
	t.Helper()
	rows := fixtureRows()
	r, err := NewReport(fixtureSubscriber(), fxDay, fxDay.AddDate(0, 0, 1), rows)
	if err != nil {
		t.Fatal(err)
	}
	return r, rows[:6] // the last is out of scope
}

func write(t *testing.T, format string, r *Report) []byte {
	t.Helper()
	w, err := NewWriter(format, fixtureOptions())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := w.Write(&b, r); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	r, _ := fixtureReport(t)
	for _, f := range Formats() {
		checkGolden(t, "isp-a."+f+".golden", write(t, f, r))
	}
}

func compareRows(t *testing.T, format string, got, want []eventstore.HostRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows read back, want %d", format, len(got), len(want))
	}
	for i := range want {
		w := want[i]
		if len(w.DstPorts) == 0 {
			w.DstPorts = nil
		}
		if !reflect.DeepEqual(got[i], w) {
			t.Errorf("%s row %d:\n got %+v\nwant %+v", format, i, got[i], w)
		}
	}
}

func TestCSVReadsBack(t *testing.T) {
	r, want := fixtureReport(t)
	recs, err := csv.NewReader(bytes.NewReader(write(t, "csv", r))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], CSVColumns()) {
		t.Fatalf("header %q", recs[0])
	}
	var got []eventstore.HostRow
	for _, rec := range recs[1:] {
		f := map[string]string{}
		for i, c := range recs[0] {
			f[c] = rec[i]
		}
		if f["timestamp"] != f["last_seen"] || f["infection"] != f["family"] || f["src_hostname"] != "" {
			t.Errorf("timestamp %q, last_seen %q, infection %q, family %q, src_hostname %q", f["timestamp"], f["last_seen"], f["infection"], f["family"], f["src_hostname"])
		}
		row := eventstore.HostRow{
			IP: netip.MustParseAddr(f["src_ip"]), Family: f["family"], Tag: f["tag"], Domain: f["domain"], Case: f["case"],
			Protocol: event.Protocol(f["application"]), Transport: event.Transport(f["protocol"]),
			ASName: f["as_name"], Country: f["src_geo"], Region: f["src_region"], City: f["src_city"],
			FirstSeen: csvTime(t, f["first_seen"]), LastSeen: csvTime(t, f["last_seen"]),
			Events: atoi(t, f["callbacks"]), BotIDs: atoi(t, f["bot_ids"]),
			SrcPort: uint16(atoi(t, f["src_port"])), DstPort: uint16(atoi(t, f["dst_port"])), ASN: uint32(atoi(t, f["src_asn"])),
			Latitude: atof(t, f["latitude"]), Longitude: atof(t, f["longitude"]),
		}
		for _, p := range strings.Fields(f["dst_ports"]) {
			if p == "+" {
				row.OtherPorts = true
				continue
			}
			row.DstPorts = append(row.DstPorts, uint16(atoi(t, p)))
		}
		got = append(got, row)
	}
	compareRows(t, "csv", got, want)
}

func csvTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(CSVTime, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	if s == "" {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	if s == "" {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJSONReadsBack(t *testing.T) {
	r, want := fixtureReport(t)
	sc := bufio.NewScanner(bytes.NewReader(write(t, "json", r)))
	var got []eventstore.HostRow
	for sc.Scan() {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		for k, v := range map[string]string{"feed.name": event.FeedName, "feed.provider": "Example CERT sinkhole", "tlp": "AMBER",
			"classification.taxonomy": "malicious-code", "classification.type": "infected-system"} {
			if m[k] != v {
				t.Errorf("%s = %v, want %q", k, m[k], v)
			}
		}
		if m["classification.identifier"] != m["malware.name"] || m["time.source"] != m["extra.last_seen"] {
			t.Errorf("identifier %v / malware %v, time.source %v / last_seen %v", m["classification.identifier"], m["malware.name"], m["time.source"], m["extra.last_seen"])
		}
		s := func(k string) string { v, _ := m[k].(string); return v }
		n := func(k string) int64 {
			v, ok := m[k].(json.Number)
			if !ok {
				return 0
			}
			i, err := v.Int64()
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			return i
		}
		f := func(k string) float64 {
			v, ok := m[k].(json.Number)
			if !ok {
				return 0
			}
			x, _ := v.Float64()
			return x
		}
		tm := func(k string) time.Time {
			v, err := time.Parse(time.RFC3339, s(k))
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			return v.UTC()
		}
		row := eventstore.HostRow{
			IP: netip.MustParseAddr(s("source.ip")), Family: s("malware.name"), Tag: s("extra.tag"),
			Domain: s("destination.fqdn"), Case: s("extra.case"),
			Protocol: event.Protocol(s("protocol.application")), Transport: event.Transport(s("protocol.transport")),
			ASN: uint32(n("source.asn")), ASName: s("source.as_name"), Country: s("source.geolocation.cc"),
			Region: s("source.geolocation.region"), City: s("source.geolocation.city"),
			Latitude: f("source.geolocation.latitude"), Longitude: f("source.geolocation.longitude"),
			FirstSeen: tm("extra.first_seen"), LastSeen: tm("extra.last_seen"), Events: n("extra.callbacks"), BotIDs: n("extra.bot_ids"),
			SrcPort: uint16(n("source.port")), DstPort: uint16(n("destination.port")), OtherPorts: m["extra.other_ports"] == true,
		}
		if ports, ok := m["extra.destination_ports"].([]any); ok {
			for _, p := range ports {
				v, _ := p.(json.Number).Int64()
				row.DstPorts = append(row.DstPorts, uint16(v))
			}
		}
		got = append(got, row)
	}
	compareRows(t, "json", got, want)
}

// The properties of X-ARF's abuse_bot-infection 0.1.1 schema and their
// types, and those it requires (not marked optional).
var (
	xarfProps = map[string]string{
		"Reported-From": "string", "Report-ID": "string", "Category": "string", "Report-Type": "string",
		"Destination": "string", "Destination-Type": "string", "Destination-Port": "integer", "Destination-Domain": "string",
		"User-Agent": "string", "Date": "string", "Source": "string", "Source-Type": "string", "Source-Port": "integer",
		"Feedback-Link": "string", "Bot-Name": "string", "Malware-MD5": "string", "Attachment": "string",
		"Schema-URL": "string", "Version": "number", "Occurrences": "integer", "TLP": "string",
	}
	xarfRequired = []string{"Reported-From", "Report-ID", "Category", "Report-Type", "User-Agent", "Date", "Source", "Source-Type", "Bot-Name", "Attachment", "Schema-URL"}
)

func TestXARFReadsBack(t *testing.T) {
	r, want := fixtureReport(t)
	mbox := write(t, "xarf", r)
	var msgs [][]byte
	for _, m := range regexp.MustCompile(`(?m)^From `).Split(string(mbox), -1)[1:] {
		// The "From " line ends at the first newline; mboxrd unquotes ">From ".
		_, body, _ := strings.Cut(m, "\n")
		body = regexp.MustCompile(`(?m)^>(>*From )`).ReplaceAllString(body, "$1")
		msgs = append(msgs, []byte(body))
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	ids := map[string]bool{}
	for i, raw := range msgs {
		row := want[i]
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Header.Get("X-ARF") != "YES" || m.Header.Get("Auto-Submitted") != "auto-generated" || m.Header.Get("MIME-Version") != "1.0" {
			t.Errorf("message %d: headers %v", i, m.Header)
		}
		if subj := m.Header.Get("Subject"); !strings.Contains(subj, row.IP.String()) || !strings.Contains(subj, "TLP:AMBER") {
			t.Errorf("subject %q", subj)
		}
		mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/mixed" {
			t.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
		}
		mr := multipart.NewReader(m.Body, params["boundary"])
		var parts []*multipart.Part
		var data [][]byte
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			parts, data = append(parts, p), append(data, b)
		}
		if len(parts) != 3 || parts[0].FileName() != "" || parts[1].FileName() != "report.txt" || parts[2].FileName() != "evidence.txt" {
			t.Fatalf("message %d: %d parts", i, len(parts))
		}
		for _, p := range parts {
			if mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); mt != "text/plain" {
				t.Errorf("part content type %q", p.Header.Get("Content-Type"))
			}
		}
		var rep map[string]any
		if err := yaml.Unmarshal(data[1], &rep); err != nil {
			t.Fatalf("report.txt: %v\n%s", err, data[1])
		}
		for k, v := range rep {
			typ, ok := xarfProps[k]
			if !ok {
				t.Errorf("report.txt: %s is not in the bot-infection schema", k)
			}
			switch v.(type) {
			case string:
				ok = typ == "string"
			case int:
				ok = typ == "integer" || typ == "number"
			case float64:
				ok = typ == "number"
			default:
				ok = false
			}
			if !ok {
				t.Errorf("report.txt: %s is %T, want %s", k, v, typ)
			}
		}
		for _, k := range xarfRequired {
			if _, ok := rep[k]; !ok {
				t.Errorf("report.txt: no %s", k)
			}
		}
		date, err := time.Parse(time.RFC3339, fmt.Sprint(rep["Date"]))
		if err != nil || !date.Equal(row.LastSeen) {
			t.Errorf("Date %v: %v", rep["Date"], err)
		}
		for k, v := range map[string]any{"Category": "abuse", "Report-Type": "bot-infection", "Version": 0.2, "Source": row.IP.String(),
			"Source-Type": sourceType(row.IP), "Bot-Name": row.Family, "Occurrences": int(row.Events), "Source-Port": int(row.SrcPort),
			"Destination-Port": int(row.DstPort), "Destination-Domain": row.Domain, "TLP": "amber", "Attachment": "text/plain",
			"Schema-URL": XARFSchemaURL, "Reported-From": "sinkhole@cert.example"} {
			if rep[k] != v {
				t.Errorf("report.txt: %s = %#v, want %#v", k, rep[k], v)
			}
		}
		id := fmt.Sprint(rep["Report-ID"])
		if !strings.HasSuffix(id, "@cert.example") || ids[id] {
			t.Errorf("Report-ID %q (repeated: %v)", id, ids[id])
		}
		ids[id] = true
		if !bytes.Contains(data[2], []byte(","+row.IP.String()+",")) || !bytes.Contains(data[0], []byte(row.IP.String())) {
			t.Errorf("message %d: the text or the evidence does not name %s", i, row.IP)
		}
		for _, line := range bytes.Split(raw, []byte("\n")) {
			if len(line) > 998 {
				t.Errorf("message %d: line of %d bytes", i, len(line))
			}
		}
	}
}

// TestXARFMIMELines: WriteMIME ends lines in CRLF and quotes the "From "
// lines of an mbox.
func TestXARFMIMELines(t *testing.T) {
	r, _ := fixtureReport(t)
	x := XARF{Options: fixtureOptions()}
	for row := range r.Rows() {
		m := x.Message(r, row)
		m.Parts[0].Data = append(m.Parts[0].Data, "From here on\n"...)
		var b bytes.Buffer
		if err := m.WriteMIME(&b, "b"); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bytes.ReplaceAll(b.Bytes(), []byte("\r\n"), nil), []byte("\n")) {
			t.Fatal("a line ends in LF alone")
		}
		break
	}
}

func TestSTIXValidates(t *testing.T) {
	r, want := fixtureReport(t)
	b := write(t, "stix", r)
	validateSTIX(t, b)

	var bundle struct {
		Objects []map[string]any `json:"objects"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	count := map[string]int{}
	for _, o := range bundle.Objects {
		id := o["id"].(string)
		if byID[id] != nil {
			t.Errorf("id %s twice", id)
		}
		byID[id] = o
		count[o["type"].(string)]++
	}
	// Every reference resolves inside the bundle.
	for id, o := range byID {
		for k, v := range o {
			var refs []string
			switch {
			case strings.HasSuffix(k, "_ref"):
				refs = []string{v.(string)}
			case strings.HasSuffix(k, "_refs"):
				for _, x := range v.([]any) {
					refs = append(refs, x.(string))
				}
			}
			for _, ref := range refs {
				if byID[ref] == nil {
					t.Errorf("%s.%s: %s is not in the bundle", id, k, ref)
				}
			}
		}
		if o["type"] != "marking-definition" && o["type"] != "identity" {
			if m := o["object_marking_refs"]; !reflect.DeepEqual(m, []any{tlpMarkings["AMBER"]}) {
				t.Errorf("%s: markings %v", id, m)
			}
		}
	}
	wantCount := map[string]int{"identity": 1, "marking-definition": 1, "malware": 2, "domain-name": 3, "indicator": 3,
		"relationship": 3, "ipv4-addr": 4, "ipv6-addr": 1, "observed-data": 6, "sighting": 6}
	if !reflect.DeepEqual(count, wantCount) {
		t.Errorf("objects %v, want %v", count, wantCount)
	}
	// The sightings read back as the rows.
	var got []string
	for _, o := range bundle.Objects {
		if o["type"] != "sighting" {
			continue
		}
		od := byID[o["observed_data_refs"].([]any)[0].(string)]
		addr := byID[od["object_refs"].([]any)[0].(string)]
		ind := byID[o["sighting_of_ref"].(string)]
		got = append(got, fmt.Sprintf("%s %v %s %s %s", addr["value"], o["count"], o["first_seen"], o["last_seen"], ind["pattern"]))
	}
	var wantS []string
	for _, w := range want {
		wantS = append(wantS, fmt.Sprintf("%s %d %s %s [domain-name:value = '%s']", w.IP, w.Events, stixTime(w.FirstSeen), stixTime(w.LastSeen), w.Domain))
	}
	if !slices.Equal(got, wantS) {
		t.Errorf("sightings\n got %q\nwant %q", got, wantS)
	}
}

// validateSTIX checks a bundle against testdata/stix-2.1-subset.schema.json.
func validateSTIX(t *testing.T, b []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile("testdata/stix-2.1-subset.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("bundle does not validate: %v", err)
	}
}

// TestSTIXSchemaRejects: the schema is not a rubber stamp.
func TestSTIXSchemaRejects(t *testing.T) {
	r, _ := fixtureReport(t)
	good := string(write(t, "stix", r))
	for _, bad := range []struct{ from, to string }{
		{`"is_family":true`, `"is_family":"yes"`},
		{`"pattern_type":"stix",`, ``},
		{`"number_observed":36`, `"number_observed":0`},
		{`"spec_version":"2.1","id":"ipv4-addr--`, `"spec_version":"2.0","id":"ipv4-addr--`},
		{`"created":"2024-05-02T06:00:00.000Z"`, `"created":"2024-05-02T06:00:00Z"`},
		{`"type":"sighting"`, `"type":"sighting","x":1`},
	} {
		doc := strings.Replace(good, bad.from, bad.to, 1)
		if doc == good {
			t.Fatalf("%q is not in the bundle", bad.from)
		}
		c := jsonschema.NewCompiler()
		sch, err := c.Compile("testdata/stix-2.1-subset.schema.json")
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(v) == nil {
			t.Errorf("%q → %q validates", bad.from, bad.to)
		}
	}
}

func TestSCOIDAndUUID5(t *testing.T) {
	// RFC 9562 / Python's uuid.uuid5(uuid.NAMESPACE_DNS, "python.org").
	if got := uuid5(mustUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), "python.org"); got != "886313e1-3b8a-5372-9b90-0c9aee199e5d" {
		t.Errorf("uuid5 %s", got)
	}
	// STIX 2.1, 2.9: UUIDv5 in the SCO namespace of the canonical JSON of the
	// id-contributing properties; the value computed with Python's uuid.
	if got := scoID("ipv4-addr", "198.51.100.3"); got != "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4" {
		t.Errorf("sco id %s", got)
	}
	if a, b := scoID("domain-name", "a.example"), scoID("domain-name", "a.example"); a != b {
		t.Error("sco ids differ for one value")
	}
}
