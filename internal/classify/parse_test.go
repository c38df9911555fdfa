package classify

import (
	"strings"
	"testing"
)

// parseErrors are rules files that must fail, each with the parts its error
// must name: file:line:col, the rule and the field.
var parseErrors = []struct {
	name, yaml string
	want       []string
}{
	{"unknown top key", "rule: []\n", []string{`bad.yaml:1:1: unknown key "rule" at the top level`, "known keys: rules"}},
	{"unknown match key", `
rules:
  - name: x
    family: f
    match:
      pth: '^/'
`, []string{`bad.yaml:6:7: unknown key "pth" in rule 1 "x": match`, "path"}},
	{"duplicate key", `
rules:
  - name: x
    family: f
    family: g
`, []string{`bad.yaml:5:5: key "family" given twice in rule 1 "x" (first on line 4)`}},
	{"bad path regex", `
rules:
  - name: ok
    family: f
    match: {path: '^/'}
  - name: waledac
    family: waledac
    match:
      path: '^/(a'
`, []string{`bad.yaml:9:13: rule 2 "waledac": match.path:`, "missing closing )"}},
	{"bad header regex", `
rules:
  - name: x
    family: f
    match:
      headers:
        - name: X-A
        - name: X-B
          regex: '['
`, []string{`bad.yaml:9:18: rule 1 "x": match.headers[1].regex:`, "missing closing ]"}},
	{"bad protocol", `
rules:
  - {name: x, family: f, match: {protocol: [http, gopher]}}
`, []string{`bad.yaml:3:44: rule 1 "x": match.protocol: "gopher" is not one of`}},
	{"bad port", `
rules:
  - {name: x, family: f, match: {port: 0}}
`, []string{`rule 1 "x": match.port: "0" is not a port`}},
	{"no name", `
rules:
  - {family: f, match: {port: 80}}
`, []string{`bad.yaml:3:5: rule 1: name: "": give a name`}},
	{"upper-case family", `
rules:
  - {name: x, family: Waledac, match: {port: 80}}
`, []string{`rule 1 "x": family: "Waledac"`}},
	{"duplicate name", `
rules:
  - {name: x, family: f, match: {port: 80}}
  - {name: x, family: f, match: {port: 81}}
`, []string{`bad.yaml:4:12: rule 2 "x": name: "x" is also the name of rule 1`}},
	{"no condition", `
rules:
  - {name: x, family: f}
`, []string{`rule 1 "x": match: no condition`}},
	{"redirect", `
rules:
  - name: x
    family: f
    match: {protocol: http}
    response: {status: 302}
`, []string{`bad.yaml:6:24: rule 1 "x": response.status: 302 is not one of`, "never redirects"}},
	{"bad content type", `
rules:
  - name: x
    family: f
    match: {protocol: http}
    response: {status: 200, content_type: application/x-msdownload}
`, []string{`response.content_type: "application/x-msdownload" is not one of`}},
	{"content type parameter", `
rules:
  - name: x
    family: f
    match: {protocol: http}
    response: {status: 200, content_type: 'text/html; charset=utf-8; x=1'}
`, []string{`response.content_type: parameter x=1`}},
	{"response too big", `
rules:
  - name: x
    family: f
    match: {protocol: http}
    response: {status: 200, body: '` + strings.Repeat("a", MaxResponseBody+1) + `'}
`, []string{`response.body: 4097 bytes; at most 4096`}},
	{"response for dns", `
rules:
  - name: x
    family: f
    match: {protocol: dns}
    response: {status: 200}
`, []string{`bad.yaml:6:15: rule 1 "x": response: a response needs match.protocol`}},
	{"response for any protocol", `
rules:
  - name: x
    family: f
    match: {port: 80}
    response: {status: 200}
`, []string{`response: a response needs match.protocol`}},
	{"smtp multi-line", `
rules:
  - name: x
    family: f
    match: {protocol: smtp}
    response: {status: 250, body: "ok\r\nMAIL FROM:<x>"}
`, []string{`response.body: an SMTP reply text is one line`}},
	{"smtp 354", `
rules:
  - name: x
    family: f
    match: {protocol: smtp}
    response: {status: 354}
`, []string{`response.status: 354 is not one of the SMTP reply codes`}},
	{"bot id param and regex", `
rules:
  - name: x
    family: f
    match: {port: 80}
    bot_id: {from: body, param: b, regex: '(x)'}
`, []string{`bad.yaml:6:13: rule 1 "x": bot_id: give exactly one of param and regex`}},
	{"bot id no group", `
rules:
  - name: x
    family: f
    match: {port: 80}
    bot_id: {from: path, regex: 'x'}
`, []string{`rule 1 "x": bot_id.regex: "x" has no capture group`}},
	{"bot id from", `
rules:
  - name: x
    family: f
    match: {port: 80}
    bot_id: {from: cookie, param: x}
`, []string{`bot_id.from: "cookie" is not one of`}},
	{"bad ja4", `
rules:
  - {name: x, family: f, match: {tls_fingerprint: [t13d]}}
`, []string{`match.tls_fingerprint: "t13d" is not a JA4`}},
	{"bad hex", `
rules:
  - {name: x, family: f, match: {body_prefix_hex: zz}}
`, []string{`match.body_prefix_hex: "zz" is not hex`}},
	{"rules not a list", "rules: {a: 1}\n", []string{"bad.yaml: line 1: cannot unmarshal"}},
	{"rule not a mapping", "rules: [x]\n", []string{`bad.yaml:1:9: rule 1 must be a mapping`}},
	{"two documents", "rules: []\n---\nrules: []\n", []string{"bad.yaml:2: a second YAML document"}},
	{"syntax", "rules: [\n", []string{"bad.yaml: "}},
	{"wrong type", "rules:\n  - {name: x, family: f, match: {port: 80}, response: {status: ok}}\n", []string{"bad.yaml: line 2: cannot unmarshal"}},
}

func TestParseErrors(t *testing.T) {
	for _, c := range parseErrors {
		t.Run(c.name, func(t *testing.T) {
			rs, err := Parse("bad.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error; %d rules", rs.Len())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestParseManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for range 50 {
		b.WriteString("  - {name: x, family: F, match: {path: '('}}\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more errors not shown") || strings.Count(err.Error(), "\n") > maxErrors+1 {
		t.Fatalf("%v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, s := range []string{"", "# nothing\n", "rules: []\n", "rules:\n", "~\n"} {
		rs, err := Parse("empty.yaml", []byte(s))
		if err != nil || rs.Len() != 0 {
			t.Errorf("%q: %v", s, err)
		}
		if got := rs.Classify(&Request{CaseFamily: "waledac"}); got.Family != "waledac" {
			t.Errorf("%q: %+v", s, got)
		}
	}
}

// TestParseAllFields loads a rule with every condition and checks that a
// request meeting all of them matches, and one missing any does not.
func TestParseAllFields(t *testing.T) {
	rs, err := Parse("all.yaml", []byte(`
rules:
  - name: all
    family: fam
    tag: t1
    match:
      protocol: [https]
      transport: tcp
      port: [443, 8443]
      domain: [Evil.Example.]
      domain_regex: '^c2\.'
      zone: evil.example
      case: case-1
      case_family: fam
      method: [POST, PUT]
      path: '^/gate\.php\?id='
      user_agent: 'WinHTTP'
      headers:
        - {name: content-type, regex: '^application/octet-stream$'}
        - {name: x-present}
      body_prefix_hex: "4d 5a"
      body: 'PE'
      tls_fingerprint: ['t13d1516h2_*']
      helo: '.'
    bot_id: {from: query, param: id}
    response: {status: 404, content_type: 'text/plain; charset=utf-8', body_hex: "6e6f"}
`))
	if err != nil {
		t.Fatal(err)
	}
	full := func() Request {
		return Request{
			Protocol: "https", Transport: "tcp", Port: 8443, Domain: "c2.evil.example", Zone: "evil.example",
			Case: "case-1", CaseFamily: "fam", Method: "PUT", Path: "/gate.php?id=7", UserAgent: "x WinHTTP y",
			Headers: headers{"Content-Type": {"application/octet-stream"}, "X-Present": {""}},
			Body:    []byte("MZ..PE"), TLSFingerprint: "t13d1516h2_8daaf6152771_e5627efa2ab1", HELO: "x",
		}
	}
	r := full()
	got := rs.Classify(&r)
	if got.Rule != "all" || got.Tag != "t1" || got.BotID != "7" || got.Response == nil ||
		*got.Response != (Response{Status: 404, ContentType: "text/plain; charset=utf-8", Body: "no"}) {
		t.Fatalf("full request: %+v %+v", got, got.Response)
	}
	for name, spoil := range map[string]func(*Request){
		"protocol": func(r *Request) { r.Protocol = "http" }, "transport": func(r *Request) { r.Transport = "udp" },
		"port": func(r *Request) { r.Port = 80 }, "domain": func(r *Request) { r.Domain = "c2.evil.example.org" },
		"domain_regex": func(r *Request) { r.Domain = "c3.evil.example" }, "zone": func(r *Request) { r.Zone = "" },
		"case": func(r *Request) { r.Case = "case-2" }, "case_family": func(r *Request) { r.CaseFamily = "other" },
		"method": func(r *Request) { r.Method = "GET" }, "path": func(r *Request) { r.Path = "/gate.php" },
		"user_agent":      func(r *Request) { r.UserAgent = "winhttp" },
		"header-regex":    func(r *Request) { r.Headers = headers{"Content-Type": {"text/html"}, "X-Present": {""}} },
		"header-presence": func(r *Request) { r.Headers = headers{"Content-Type": {"application/octet-stream"}} },
		"no-headers":      func(r *Request) { r.Headers = nil },
		"body_prefix":     func(r *Request) { r.Body = []byte("ZM..PE") }, "body": func(r *Request) { r.Body = []byte("MZ") },
		"tls": func(r *Request) { r.TLSFingerprint = "t12d1516h2_8daaf6152771_e5627efa2ab1" }, "helo": func(r *Request) { r.HELO = "" },
	} {
		r := full()
		spoil(&r)
		if got := rs.Classify(&r); got.Rule != "" {
			t.Errorf("without %s: matched %+v", name, got)
		}
	}
}

// headers is a minimal HeaderSource like http.Header.
type headers map[string][]string

func (h headers) Values(name string) []string { return h[name] }
