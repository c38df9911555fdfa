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

// FuzzClassify runs the shipped rules and a rule with every condition on
// fuzzed requests: no panic, a family always, a bounded printable bot ID.
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
	f.Add("http", uint16(80), "partystore.com", "waledac", "POST", "/abc.htm", "Mozilla", "", []byte("a=QUJD&b=Ym90"), "")
	f.Add("dns", uint16(53), "qwkrtpz.info", "conficker", "", "", "", "", []byte(nil), "")
	f.Add("smtp", uint16(25), "x.example", "", "", "", "", "", []byte("DATA"), "[192.0.2.1]")
	f.Add("https", uint16(443), "c2.evil.example", "", "GET", "/g?id=1", "x", "v", []byte("id=\x00\xff"), "")
	f.Add("http", uint16(80), "", "", "GET", "/q?id=\x01&id=2", "", "", []byte(nil), "")
	f.Fuzz(func(t *testing.T, proto string, port uint16, domain, caseFamily, method, path, ua, hdr string, body []byte, helo string) {
		r := &Request{
			Protocol: event.Protocol(proto), Port: port, Domain: domain, CaseFamily: caseFamily,
			Method: method, Path: path, UserAgent: ua, Body: body, HELO: helo,
			Headers: http.Header{"X-Id": {hdr}},
		}
		for _, set := range []*Rules{rs, all} {
			got := set.Classify(r)
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
