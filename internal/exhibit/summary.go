package exhibit

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/registry"
)

// summaryDomains caps the domains summary.html lists one by one.
const summaryDomains = 400

var summaryTemplate = template.Must(template.New("summary").Funcs(template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(time.DateOnly)
	},
	"thousands": thousands,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Exhibit: case {{.Case.Name}}, {{.From}} to {{.To}}</title>
<style>
body { font: 11pt/1.4 Georgia, "Times New Roman", serif; max-width: 50em; margin: 2em auto; color: #000; }
h1 { font-size: 16pt; margin-bottom: 0.2em; }
h2 { font-size: 12.5pt; border-bottom: 1px solid #888; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; font-size: 9.5pt; }
th, td { border: 1px solid #bbb; padding: 2px 6px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code, .hash { font: 8.5pt/1.3 "DejaVu Sans Mono", Menlo, monospace; word-break: break-all; }
.map svg { width: 100%; height: auto; }
.note { font-size: 9.5pt; color: #333; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } tr, .map { break-inside: avoid; } }
</style>
</head>
<body>
<h1>Exhibit: {{with .Case.Title}}{{.}}{{else}}case {{.Case.Name}}{{end}}</h1>
<p>Case <b>{{.Case.Name}}</b>, {{.Case.Court}}, docket {{.Case.Docket}}{{with .Case.Family}}; malware family <b>{{.}}</b>{{end}}.<br>
Period: {{.From}} to {{.To}} (UTC, the end excluded). Exhibit made {{.Exported}}.</p>

<h2>Court orders</h2>
<table><tr><th>Order</th><th>Reference</th><th>Issued</th><th>Objection deadline</th><th>Expires</th></tr>
{{range .Case.Orders}}<tr><td>{{.Type.Description}}</td><td>{{.Reference}}</td><td>{{date .Issued}}</td><td>{{date .ObjectionDeadline}}</td><td>{{date .Expires}}</td></tr>
{{else}}<tr><td colspan="5">No order recorded.</td></tr>{{end}}</table>

<h2>Seized domains</h2>
<p>{{thousands .DomainCount}} domain(s): {{.States}}. Each domain's full history of states, and the audit log entries
that record every change, are in <code>case.json</code>; every audit entry is also a leaf of the transparency log
(<code>audit/</code>).</p>
<table><tr><th>Domain</th><th>Registrar</th><th>State</th><th>Since</th></tr>
{{range .Domains}}<tr><td>{{.Name}}</td><td>{{.Registrar}}</td><td>{{.State}}</td><td>{{date .StateSince}}</td></tr>
{{end}}</table>
{{if .MoreDomains}}<p class="note">And {{thousands .MoreDomains}} more, listed in case.json.</p>{{end}}

<h2>Infected hosts per day</h2>
<p class="note">{{.Counts.Counted}}</p>
<table><tr><th>Day (UTC)</th><th>Unique hosts</th><th>Events</th><th>Top countries</th><th>Top networks</th></tr>
{{range .Days}}<tr><td>{{.Day}}</td><td class="n">{{thousands .Hosts}}</td><td class="n">{{thousands .Events}}</td><td>{{.Countries}}</td><td>{{.Networks}}</td></tr>
{{else}}<tr><td colspan="5">No event of the case in the period.</td></tr>{{end}}</table>
<p>{{thousands .Counts.Events}} event(s) of the case in the period. {{if .Counts.Sample}}<b>events.jsonl holds a sample</b>:
{{.Counts.Sample.Method}}. The counts are over all {{thousands .Counts.Events}} events.{{else}}events.jsonl holds every one of them.{{end}}</p>

{{if .Map}}<h2>Map: {{.MapDay}}</h2>
<div class="map">{{.Map}}</div>
<p class="note">The map of the day with the most hosts; every day's map is in <code>maps/</code> (SVG and PNG).</p>{{end}}

<h2>Proof</h2>
<p>Every event in <code>events.jsonl</code> is named by its SHA-256 hash in a leaf of takedown's transparency log, a Merkle
tree (RFC 9162) to which the sinkhole appended each batch of events <em>before</em> storing it. The {{.Leaves}} leaf/leaves
and {{.Audit}} audit leaf/leaves in this exhibit are proven included in this signed checkpoint of the log:</p>
<table>
<tr><th>Log</th><td><code>{{.Checkpoint.Origin}}</code></td></tr>
<tr><th>Tree size</th><td>{{.Checkpoint.Size}} leaves</td></tr>
<tr><th>Root hash</th><td class="hash">{{.Root}}</td></tr>
<tr><th>Signed at</th><td>{{.CheckpointTime}}</td></tr>
<tr><th>Verifier key</th><td class="hash">{{.Key}}</td></tr>
<tr><th>SHA-256 of MANIFEST.sha256</th><td class="hash">{{.Manifest}}</td></tr>
</table>
<p>{{if .Earlier}}{{.Earlier}} earlier checkpoint(s) of the period are included, each with a proof that the log only grew
since (no entry was changed or removed).{{else}}No earlier checkpoint of the period is included.{{end}}
The manifest lists the SHA-256 of every file but this page; the log key signs the manifest's hash and this page's
(<code>MANIFEST.sha256.note</code>).</p>

<h2>How to verify</h2>
<ol>
<li>With takedown: <code>takedown evidence verify {{.Dir}} --key '{{.Key}}'</code></li>
<li>Without takedown (node.js 18 or later, no packages): <code>node verify.mjs {{.Dir}} --key '{{.Key}}'</code>
(<code>tools/verify-exhibit/verify.mjs</code> in takedown's source).</li>
<li>By hand: <code>sha256sum -c MANIFEST.sha256</code> in the folder, then compare <code>sha256sum MANIFEST.sha256 summary.html</code>
with the signed note; README.txt says how to check the signature with openssl and the proofs.</li>
</ol>
<p class="note">Compare the verifier key above with one published by the log's operator, not only with the exhibit's key.pub.</p>
</body>
</html>
`))

type summaryDay struct {
	Day                 string
	Hosts, Events       int64
	Countries, Networks string
}

func (x *exporter) summary(files int) ([]byte, error) {
	c := x.caseFile
	states := map[registry.State]int{}
	for _, d := range c.Domains {
		states[d.State]++
	}
	var st []string
	for _, s := range []registry.State{registry.StateListed, registry.StateRestrained, registry.StateSinkholed, registry.StateTransferred, registry.StateReleased} {
		if states[s] > 0 {
			st = append(st, fmt.Sprintf("%s %s", thousands(int64(states[s])), s))
		}
	}
	var days []summaryDay
	busiest := -1
	for i, d := range x.counts.Days {
		top := func(ks []Key, name bool) string {
			var out []string
			for _, k := range ks[:min(3, len(ks))] {
				key := k.Key
				if name {
					key = "AS" + k.Key
					if k.Name != "" {
						key += " " + k.Name
					}
				}
				if key == "" {
					key = "unknown"
				}
				out = append(out, fmt.Sprintf("%s %s", key, thousands(k.Hosts)))
			}
			return strings.Join(out, ", ")
		}
		days = append(days, summaryDay{d.Day, d.Hosts, d.Events, top(d.Countries, false), top(d.Networks, true)})
		if busiest < 0 || d.Hosts > x.counts.Days[busiest].Hosts {
			busiest = i
		}
	}
	var svg template.HTML
	mapDay := ""
	if busiest >= 0 {
		mapDay = x.counts.Days[busiest].Day
		b, err := os.ReadFile(filepath.Join(x.dir, DirMaps, mapDay+".svg"))
		if err != nil {
			return nil, err
		}
		svg = template.HTML(stripXMLDecl(b)) // our own renderer's SVG
	}
	domains := c.Domains
	more := 0
	if len(domains) > summaryDomains {
		domains, more = domains[:summaryDomains], len(domains)-summaryDomains
	}
	cp := x.res.Checkpoint
	var b bytes.Buffer
	err := summaryTemplate.Execute(&b, map[string]any{
		"Case": c.Case, "From": c.Period.From, "To": c.Period.To, "Exported": c.Exported,
		"DomainCount": int64(len(c.Domains)), "States": strings.Join(st, ", "), "Domains": domains, "MoreDomains": int64(more),
		"Counts": x.counts, "Days": days, "Map": svg, "MapDay": mapDay,
		"Leaves": x.res.Leaves, "Audit": x.res.Audit, "Checkpoint": cp, "Root": rootB64(cp.Root),
		"CheckpointTime": cp.Time.UTC().Format(time.RFC3339), "Key": x.c.VerifierKey, "Manifest": x.res.Manifest,
		"Earlier": x.res.Earlier, "Dir": filepath.Base(x.c.Out), "Files": files,
	})
	return b.Bytes(), err
}

// thousands writes n with thin separators: 12,345.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
