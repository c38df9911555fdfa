package classify

import (
	"net/http"
	"testing"

	"github.com/takedown-project/takedown/internal/event"
)

// FuzzParse: Parse never panics, and rules it accepts classify anything
// without panicking.
func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	f.Add([]byte(rulesV1))
	for _, c := range parseErrors {
		f.Add([]byte(c.yaml))
	}
	f.Add([]byte("rules:\n  - &a {name: x, family: f, match: {port: 80}}\n  - *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data)
		if err != nil {
			if rs != nil {
				t.Fatal("rules and an error")
			}
			return
		}
		for _, p := range protocols {
			rs.Classify(&Request{Protocol: p, Port: 80, Domain: "a.b", Path: "/x?a=1", Body: []byte("a=1&b=2"), HELO: "x"})
		}
	})
}

// FuzzClassify runs the shipped rules, a rule with every condition and
// unkeyed rules for the literal prefilter on fuzzed requests: no panic, a
// family always, a bounded printable bot ID, and the rule that matching
// every rule in file order by regexp alone finds.
func FuzzClassify(f *testing.F) {
	rs, err := Default()
	if err != nil {
		f.Fatal(err)
	}
	all, err := Parse("all.yaml", []byte(`
rules:
  - name: all
    family: fam
    match:
      domain: [evil.example]
      path: '^/g'
      headers: [{name: x-id, regex: '.'}]
      body: '(?s)id=.'
    bot_id: {from: body, regex: '(?s)id=(.*)'}
  - {name: hdr, family: fam, match: {path: '^/h'}, bot_id: {from: header, header: x-id, regex: '(.+)'}}
  - {name: q, family: fam, match: {path: '^/q'}, bot_id: {from: query, param: id}}
`))
	if err != nil {
		f.Fatal(err)
	}
	lits, err := Parse("lits.yaml", []byte(`
rules:
  - {name: gate, family: a, match: {protocol: http, path: '^/(?:panel|admin)/gate\d+\.php'}}
  - {name: fold, family: b, match: {user_agent: '(?i)bot-?kit/[0-9]'}}
  - {name: opt, family: c, match: {path: 'x(?:foo)?yz', user_agent: '^Moz'}}
  - {name: hdr, family: d, match: {headers: [{name: x-id, regex: 'id-[a-f]{4}|ID:'}]}}
  - {name: body, family: e, match: {body: '(?s)cmd=(?:run|stop)'}}
  - {name: prefix, family: f, match: {body_prefix_hex: "474554", helo: '\['}}
  - {name: short, family: g, match: {path: 'ab|c'}}
  - {name: helo, family: h, match: {protocol: smtp, helo: '(?i)^desk'}}
  - {name: dom, family: i, match: {domain_regex: '\.evil\.|^c2-'}}
  - {name: ffd, family: j, match: {path: 'q\x{FFFD}+z'}}
`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("http", uint16(80), "partystore.example", "waledac", "POST", "/abc.htm", "Mozilla", "", []byte("a=QUJD&b=Ym90"), "")
	f.Add("http", uint16(80), "c2-x.example", "", "GET", "/PANEL/gate12.php", "BOTKIT/2", "ID:1", []byte("GET cmd=run"), "[x")
	f.Add("smtp", uint16(25), "a.evil.example", "", "", "/xfooyz", "Mozilla", "id-beef", []byte("Cmd=STOP"), "DESK\u212a")
	f.Add("tcp", uint16(9), "", "", "", "q\xff\xfez", "bot\u212ait/1", "", []byte("GETcmd=run"), "[")
	f.Add("dns", uint16(53), "qwkrtpz.test", "conficker", "", "", "", "", []byte(nil), "")
	f.Add("smtp", uint16(25), "x.example", "", "", "", "", "", []byte("DATA"), "[192.0.2.1]")
	f.Add("https", uint16(443), "c2.evil.example", "", "GET", "/g?id=1", "x", "v", []byte("id=\x00\xff"), "")
	f.Add("http", uint16(80), "", "", "GET", "/q?id=\x01&id=2", "", "", []byte(nil), "")
	f.Fuzz(func(t *testing.T, proto string, port uint16, domain, caseFamily, method, path, ua, hdr string, body []byte, helo string) {
		r := &Request{
			Protocol: event.Protocol(proto), Port: port, Domain: domain, CaseFamily: caseFamily,
			Method: method, Path: path, UserAgent: ua, Body: body, HELO: helo,
			Headers: http.Header{"X-Id": {hdr}},
		}
		for _, set := range []*Rules{rs, all, lits} {
			got := set.Classify(r)
			if want := linear(plainRules(set), r); got.Rule != want {
				t.Fatalf("%+v: rule %q, every rule in order %q", r, got.Rule, want)
			}
			if got.Family == "" {
				t.Fatalf("no family for %+v", r)
			}
			if len(got.BotID) > MaxBotIDLen {
				t.Fatalf("bot ID of %d bytes", len(got.BotID))
			}
			for i := 0; i < len(got.BotID); i++ {
				if c := got.BotID[i]; c <= ' ' || c > '~' {
					t.Fatalf("bot ID %q", got.BotID)
				}
			}
		}
	})
}
