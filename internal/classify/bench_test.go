package classify

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/event"
)

// benchRules makes n rules shaped like a standing team's rule set: most are
// keyed by the seized domains or the case family of one operation, some by
// a TLS fingerprint, the rest by path and user agent alone, spread over the
// protocols; the shipped demo rules come last.
func benchRules(tb testing.TB, n int, unkeyedOnly bool) *Rules {
	tb.Helper()
	var b strings.Builder
	b.WriteString("rules:\n")
	protos := []string{"http", "https", "smtp", "tcp", "udp", "dns"}
	for i := range n - 4 {
		fmt.Fprintf(&b, "  - name: r%d\n    family: fam%d\n    tag: t\n    match:\n", i, i)
		kind := i % 10
		if unkeyedOnly {
			kind = 9
		}
		switch {
		case kind < 4:
			fmt.Fprintf(&b, "      protocol: [http, https]\n      domain: [c2-%d.example, c2-%d.example.net]\n      method: POST\n      path: '^/[a-z0-9]{4,16}\\.php$'\n      user_agent: '^Bot-%d/'\n", i, i, i)
		case kind < 6:
			fmt.Fprintf(&b, "      protocol: %s\n      case_family: [fam%d]\n      path: '^/gate%d'\n", protos[i%3], i, i)
		case kind < 7:
			fmt.Fprintf(&b, "      protocol: https\n      tls_fingerprint: [t13d1516h2_8daaf6152771_%012x]\n", i)
		default:
			p := protos[i%len(protos)]
			if unkeyedOnly {
				p = "http"
			}
			fmt.Fprintf(&b, "      protocol: %s\n      path: '^/(?:panel|admin)/gate%d\\.php'\n      user_agent: 'Agent%d'\n", p, i, i)
		}
	}
	def := string(defaultYAML)
	b.WriteString(def[strings.Index(def, "rules:\n")+len("rules:\n"):])
	rs, err := Parse("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	if rs.Len() != n {
		tb.Fatalf("%d rules", rs.Len())
	}
	return rs
}

func BenchmarkClassify(b *testing.B) {
	const n = 500
	mixed := benchRules(b, n, false)
	unkeyed := benchRules(b, n, true)
	hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"*/*"}}
	waledac := &Request{Protocol: event.ProtoHTTP, Transport: event.TransportTCP, Port: 80, Domain: "partystore.example",
		Zone: "partystore.example", CaseFamily: "waledac", Method: "POST", Path: "/kq7w2z.htm", UserAgent: "Mozilla", Headers: hdr,
		Body: []byte("a=" + strings.Repeat("QUJDRA", 40) + "&b=Ym90LTAwMQ==")}
	waledacGet := *waledac
	waledacGet.Method, waledacGet.Body = "GET", nil
	cases := []struct {
		name string
		rs   *Rules
		req  *Request
		want string
	}{
		{"mixed/http-domain-hit", mixed, &Request{Protocol: event.ProtoHTTP, Port: 80, Domain: "www.c2-250.example", Method: "POST",
			Path: "/abcd1234.php", UserAgent: "Bot-250/1.0", Headers: hdr}, "r250"},
		{"mixed/http-case-family-hit", mixed, &Request{Protocol: event.ProtoHTTP, Port: 80, Domain: "x.example", CaseFamily: "fam204",
			Method: "GET", Path: "/gate204?x", Headers: hdr}, "r204"},
		{"mixed/https-ja4-hit", mixed, &Request{Protocol: event.ProtoHTTPS, Port: 443, Domain: "x.example",
			TLSFingerprint: fmt.Sprintf("t13d1516h2_8daaf6152771_%012x", 306)}, "r306"},
		{"mixed/http-miss", mixed, &Request{Protocol: event.ProtoHTTP, Port: 80, Domain: "www.partystore.example", CaseFamily: "waledac",
			Method: "GET", Path: "/index.html", UserAgent: "Mozilla/5.0 (Windows NT 10.0)", Headers: hdr}, ""},
		{"mixed/dns-dga", mixed, &Request{Protocol: event.ProtoDNS, Transport: event.TransportUDP, Port: 53, Domain: "qwkrtpz.test",
			Zone: "qwkrtpz.test", CaseFamily: "conficker"}, "conficker-dga-dns"},
		{"mixed/smtp-helo", mixed, &Request{Protocol: event.ProtoSMTP, Port: 25, Domain: "partystore.example", HELO: "[192.0.2.7]"}, "spambot-smtp-helo"},
		{"mixed/waledac-get", mixed, &waledacGet, "waledac-http-get"},
		{"mixed/waledac-post-botid", mixed, waledac, "waledac-http-post"},
		{"unkeyed/http-last", unkeyed, &Request{Protocol: event.ProtoHTTP, Port: 80, Method: "GET", Path: "/panel/gate495.php",
			UserAgent: "Agent495"}, "r495"},
		{"unkeyed/http-miss", unkeyed, &Request{Protocol: event.ProtoHTTP, Port: 80, Method: "GET", Path: "/index.html",
			UserAgent: "Mozilla/5.0"}, ""},
		{"unkeyed/http-browser", unkeyed, &Request{Protocol: event.ProtoHTTP, Port: 80, Method: "GET", Path: "/static/js/app.min.js?v=20260101",
			UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"}, ""},
	}
	for _, c := range cases {
		if got := c.rs.Classify(c.req).Rule; got != c.want {
			b.Fatalf("%s: rule %q, want %q", c.name, got, c.want)
		}
		b.Run(fmt.Sprintf("rules=%d/%s", n, c.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.rs.Classify(c.req)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	b.Run("rules=500", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchRules(b, 500, false)
		}
	})
}
