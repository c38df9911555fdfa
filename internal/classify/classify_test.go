package classify

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/event"
)

func mustDefault(t testing.TB) *Rules {
	t.Helper()
	rs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func waledacPost(path, botID string) *Request {
	return &Request{
		Protocol: event.ProtoHTTP, Transport: event.TransportTCP, Port: 80,
		Domain: "partystore.example", Zone: "partystore.example", Case: "waledac-2010", CaseFamily: "waledac",
		Method: "POST", Path: path, UserAgent: "Mozilla",
		Headers: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:    []byte("a=" + strings.Repeat("QUJD", 20) + "&b=" + botID),
	}
}

// TestDefaultRules classifies the demo's traffic with the shipped rules.
func TestDefaultRules(t *testing.T) {
	rs := mustDefault(t)
	https := waledacPost("/x7f2kq.png", "Ym90LTAwMg==")
	https.Protocol, https.Port, https.TLSFingerprint = event.ProtoHTTPS, 443, "t13d1516h2_8daaf6152771_e5627efa2ab1"
	browser := waledacPost("/index.htm", "x")
	browser.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
	get := waledacPost("/abc.htm", "")
	get.Method, get.Body = "GET", nil
	noBotID := waledacPost("/abc.htm", "")
	noBotID.Body = []byte("a=QUJD")
	dns := func(name, fam string) *Request {
		return &Request{Protocol: event.ProtoDNS, Transport: event.TransportUDP, Port: 53, Domain: name, Zone: name, CaseFamily: fam}
	}
	smtp := func(helo string) *Request {
		return &Request{Protocol: event.ProtoSMTP, Transport: event.TransportTCP, Port: 25, Domain: "partystore.example", HELO: helo}
	}
	for _, c := range []struct {
		name string
		req  *Request
		want Result
	}{
		{"waledac-post", waledacPost("/qwerty.htm", "Ym90LTAwMQ=="), Result{Family: "waledac", Tag: "http-c2", BotID: "Ym90LTAwMQ==", Rule: "waledac-http-post"}},
		{"waledac-post-https", https, Result{Family: "waledac", Tag: "http-c2", BotID: "Ym90LTAwMg==", Rule: "waledac-http-post"}},
		{"waledac-get", get, Result{Family: "waledac", Tag: "http-get", Rule: "waledac-http-get"}},
		{"waledac-post-no-b", noBotID, Result{Family: "waledac", Tag: "http-get", Rule: ""}},
		{"browser-falls-back-to-case", browser, Result{Family: "waledac"}},
		{"dga", dns("qwkrtpz.test", "conficker"), Result{Family: "conficker", Tag: "dga-dns", Rule: "conficker-dga-dns"}},
		{"dga-subdomain", dns("www.qwkrtpz.test", "conficker"), Result{Family: "conficker", Tag: "dga-dns", Rule: "conficker-dga-dns"}},
		{"dga-shape-unknown-case", dns("qwkrtpz.test", ""), Result{Family: Unknown}},
		{"not-dga-shape", dns("x1-2.example.com", "conficker"), Result{Family: "conficker"}},
		{"spam-ip-literal", smtp("[192.0.2.7]"), Result{Family: "rustock", Tag: "smtp-spam", Rule: "spambot-smtp-helo"}},
		{"spam-bare-word", smtp("xkqwpz"), Result{Family: "rustock", Tag: "smtp-spam", Rule: "spambot-smtp-helo"}},
		{"real-mta", smtp("mail.example.org"), Result{Family: Unknown}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := rs.Classify(c.req)
			if c.name == "waledac-post-no-b" {
				// The body does not have a b=: not the POST rule; and a POST
				// is not the GET rule either.
				c.want = Result{Family: "waledac"}
			}
			if got.Family != c.want.Family || got.Tag != c.want.Tag || got.BotID != c.want.BotID || got.Rule != c.want.Rule {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
			if (got.Rule == "") != (got.Response == nil) && got.Rule != "conficker-dga-dns" {
				t.Errorf("response %+v for rule %q", got.Response, got.Rule)
			}
			if r := got.Response; r != nil {
				switch c.req.Protocol {
				case event.ProtoSMTP:
					if r.Status != 550 || r.ContentType != "" {
						t.Errorf("smtp response %+v", r)
					}
				default:
					if r.Body != "" || r.ContentType != "text/html" {
						t.Errorf("http response %+v", r)
					}
				}
			}
		})
	}
	// Two bots behind one NAT address are told apart.
	a, b := rs.Classify(waledacPost("/a.htm", "Ym90LTAwMQ==")), rs.Classify(waledacPost("/b.png", "Ym90LTAwMw=="))
	if a.BotID == "" || a.BotID == b.BotID {
		t.Errorf("bot IDs %q and %q", a.BotID, b.BotID)
	}
}

func TestNilRules(t *testing.T) {
	var rs *Rules
	if got := rs.Classify(&Request{CaseFamily: "x"}); got.Family != "x" {
		t.Errorf("got %+v", got)
	}
	if got := rs.Classify(&Request{}); got.Family != Unknown {
		t.Errorf("got %+v", got)
	}
}

func TestFirstMatchInFileOrder(t *testing.T) {
	rs, err := Parse("order.yaml", []byte(`
rules:
  - {name: by-path,   family: a, match: {path: '^/gate\.php'}}
  - {name: by-domain, family: b, match: {domain: [evil.example]}}
  - {name: by-case,   family: c, match: {case_family: [fam]}}
  - {name: by-ua,     family: d, match: {user_agent: bot}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Path: "/gate.php", Domain: "x.evil.example", CaseFamily: "fam"}, "a"},
		{Request{Path: "/", Domain: "x.evil.example", CaseFamily: "fam", UserAgent: "bot"}, "b"},
		{Request{Path: "/", Domain: "evil.example.org", CaseFamily: "fam", UserAgent: "bot"}, "c"},
		{Request{Path: "/", Domain: "notevil.example", UserAgent: "a bot"}, "d"},
		{Request{Path: "/", Domain: "notevil.example"}, Unknown},
	} {
		if got := rs.Classify(&c.req); got.Family != c.want {
			t.Errorf("%+v: got %q, want %q", c.req, got.Family, c.want)
		}
	}
}

// linear is the reference: every rule in file order, no index.
func linear(rs *Rules, r *Request) string {
	for _, ru := range rs.rules {
		if (ru.protocols == nil || contains(ru.protocols, r.Protocol)) && ru.match(r) {
			return ru.name
		}
	}
	return ""
}

// TestIndexAgreesWithLinearScan checks the index against a plain scan on
// random rules and requests.
func TestIndexAgreesWithLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 300 {
		fmt.Fprintf(&b, "  - name: r%d\n    family: f%d\n    match:\n", i, i%7)
		n := 0
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "      protocol: [%s]\n", pick("http", "https", "dns", "smtp", "http, https"))
			n++
		}
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&b, "      domain: [%s]\n", pick("a.test", "b.a.test", "c.test", "test"))
			n++
		}
		if rng.IntN(4) == 0 {
			fmt.Fprintf(&b, "      case_family: %s\n", pick("x", "y"))
			n++
		}
		if rng.IntN(4) == 0 {
			fmt.Fprintf(&b, "      zone: %s\n", pick("a.test", "c.test"))
			n++
		}
		if rng.IntN(4) == 0 {
			fmt.Fprintf(&b, "      port: %s\n", pick("80", "[80, 443]", "25"))
			n++
		}
		if rng.IntN(3) == 0 || n == 0 {
			fmt.Fprintf(&b, "      path: '%s'\n", pick("^/a", "b", `\.php$`, "^/[a-z]+$"))
		}
		if rng.IntN(5) == 0 {
			fmt.Fprintf(&b, "      tls_fingerprint: [%s]\n", pick("t13d1516h2_8daaf6152771_e5627efa2ab1", "t13d*"))
		}
	}
	rs, err := Parse("random.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	protos := []event.Protocol{"", event.ProtoHTTP, event.ProtoHTTPS, event.ProtoDNS, event.ProtoSMTP}
	for range 20000 {
		r := &Request{
			Protocol:       protos[rng.IntN(len(protos))],
			Domain:         pick("", "a.test", "b.a.test", "x.b.a.test", "c.test", "d.test", "test"),
			Zone:           pick("", "a.test", "c.test"),
			CaseFamily:     pick("", "x", "y"),
			Port:           uint16([]int{0, 80, 443, 25}[rng.IntN(4)]),
			Path:           pick("", "/a", "/abc", "/b.php", "/x/y"),
			TLSFingerprint: pick("", "t13d1516h2_8daaf6152771_e5627efa2ab1", "t12i000000_000000000000_000000000000"),
		}
		if got, want := rs.Classify(r).Rule, linear(rs, r); got != want {
			t.Fatalf("%+v: index gives %q, scan gives %q", r, got, want)
		}
	}
}

func TestMatcherForms(t *testing.T) {
	for _, c := range []struct {
		expr string
		kind matchKind
		lit  string
	}{
		{"^Mozilla$", kindExact, "Mozilla"},
		{"^/gate", kindPrefix, "/gate"},
		{`\.php$`, kindSuffix, ".php"},
		{"bot", kindContains, "bot"},
		{"(?i)bot", kindRegexp, ""},
		{`^/[a-z]+\.(?:htm|png)$`, kindRegexp, "/"},
		{`^a=[A-Z]*&b=`, kindRegexp, "&b="},
		{`x(abc)+y`, kindRegexp, "abc"},
		{`(ab|cd)`, kindRegexp, ""},
		{`a?bcd*`, kindRegexp, "bc"},
		{`\x{FFFD}`, kindRegexp, ""}, // also matches invalid UTF-8
		{`^a\x{FFFD}`, kindRegexp, ""},
		{`x\x{FFFD}+yz`, kindRegexp, "yz"},
	} {
		m, err := compileMatcher(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		if m.kind != c.kind || m.literal != c.lit {
			t.Errorf("%s: kind %d literal %q, want %d %q", c.expr, m.kind, m.literal, c.kind, c.lit)
		}
		for _, s := range []string{"", "Mozilla", "Mozilla/5", "/gate.php", "/x.php", "bot", "BOT", "/a.htm", "a=XY&b=1", "xabcabcy", "cd", "bcd", "b", "\xff", "a\xff", "x\xff\xfeyz", "a\uFFFD"} {
			if got, want := m.matchString(s), m.re.MatchString(s); got != want {
				t.Errorf("%s on %q: %v, regexp says %v", c.expr, s, got, want)
			}
			if got, want := m.matchBytes([]byte(s)), m.re.MatchString(s); got != want {
				t.Errorf("%s on []byte %q: %v, regexp says %v", c.expr, s, got, want)
			}
		}
	}
}

func TestBotID(t *testing.T) {
	rs, err := Parse("botid.yaml", []byte(`
rules:
  - {name: q, family: f, match: {path: '^/q'}, bot_id: {from: query, param: id}}
  - {name: h, family: f, match: {path: '^/h'}, bot_id: {from: header, header: x-bot, regex: '^v1-(?P<id>[0-9a-f]+)$'}}
  - {name: p, family: f, match: {path: '^/p'}, bot_id: {from: path, regex: '^/p/([^/]+)/'}}
  - {name: b, family: f, match: {path: '^/b'}, bot_id: {from: body, regex: 'id:(.{1,200})'}}
  - {name: e, family: f, match: {protocol: smtp}, bot_id: {from: helo, regex: '^(\w+)'}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Path: "/q?x=1&id=abc&y=2"}, "abc"},
		{Request{Path: "/q?id="}, ""},
		{Request{Path: "/q"}, ""},
		{Request{Path: "/h", Headers: http.Header{"X-Bot": {"v1-00ff"}}}, "00ff"},
		{Request{Path: "/h", Headers: http.Header{"X-Bot": {"v2-00ff"}}}, ""},
		{Request{Path: "/h"}, ""},
		{Request{Path: "/p/bot%20one/x"}, "bot%20one"},
		{Request{Path: "/b", Body: []byte("id:\x00\x01ab")}, "0001" + "6162"},
		{Request{Path: "/b", Body: []byte("id:" + strings.Repeat("z", 200))}, strings.Repeat("z", MaxBotIDLen)},
		{Request{Protocol: event.ProtoSMTP, HELO: "xkcd hello"}, "xkcd"},
	} {
		if got := rs.Classify(&c.req).BotID; got != c.want {
			t.Errorf("%+v: bot ID %q, want %q", c.req, got, c.want)
		}
	}
}

// TestClassifyAllocs keeps the common path free of allocation.
func TestClassifyAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	rs := mustDefault(t)
	get := waledacPost("/abc.htm", "")
	get.Method = "GET"
	for name, r := range map[string]*Request{
		"waledac-get":  get,
		"dns":          {Protocol: event.ProtoDNS, Domain: "qwkrtpz.test", CaseFamily: "conficker"},
		"smtp":         {Protocol: event.ProtoSMTP, HELO: "[192.0.2.1]"},
		"miss":         {Protocol: event.ProtoHTTP, Domain: "a.b.c.example", Method: "GET", Path: "/", UserAgent: "curl/8"},
		"header-check": {Protocol: event.ProtoHTTP, Headers: http.Header{"Content-Type": {"x"}}},
	} {
		limit := 0.0
		if raceEnabled {
			limit = 2 // see raceEnabled; without -race the path allocates nothing
		}
		if n := testing.AllocsPerRun(100, func() { rs.Classify(r) }); n > limit {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}
