package dnssink

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// requireTool returns the path of a client binary. It never skips: a
// missing binary fails the test, so that CI cannot pass without them.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install bind9-dnsutils knot-dnsutils (%v)", name, err)
	}
	return p
}

// clientResult is what dig or kdig printed, parsed.
type clientResult struct {
	status string   // NOERROR, REFUSED, ...
	flags  []string // qr, aa, tc, ...
	answer []string // normalized zone-file lines
	extra  []string
	cookie bool // a server cookie came back
	out    string
}

// runClient runs dig or kdig against the server and parses the output.
func runClient(t *testing.T, tool string, port uint16, args ...string) clientResult {
	t.Helper()
	base := []string{"@127.0.0.1", "-p", fmt.Sprint(port), "+norecurse", "+time=2", "+tries=1"}
	if strings.HasSuffix(tool, "kdig") {
		base = []string{"@127.0.0.1", "-p", fmt.Sprint(port), "+norecurse", "+time=2", "+retry=0"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	res := clientResult{out: string(out)}
	section := ""
	for line := range strings.SplitSeq(string(out), "\n") {
		line = strings.TrimSpace(line)
		lower := strings.ToLower(line)
		switch {
		case strings.Contains(lower, "status: "):
			s := lower[strings.Index(lower, "status: ")+8:]
			res.status = strings.ToUpper(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' })[0])
		case strings.HasPrefix(lower, ";; flags:"):
			f := strings.TrimPrefix(lower, ";; flags:")
			f, _, _ = strings.Cut(f, ";")
			res.flags = strings.Fields(f)
		case strings.Contains(lower, "cookie:"):
			res.cookie = true
		case strings.HasSuffix(lower, "answer section:"):
			section = "answer"
		case strings.HasSuffix(lower, "additional section:"):
			section = "extra"
		case strings.HasSuffix(lower, "section:"):
			section = "other"
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				section = ""
			}
		case section == "answer" || section == "extra":
			rr, err := dns.NewRR(line)
			if err != nil || rr == nil {
				t.Fatalf("%s printed a record that does not parse: %q: %v", tool, line, err)
			}
			if section == "answer" {
				res.answer = append(res.answer, normRR(rr.String()))
			} else {
				res.extra = append(res.extra, normRR(rr.String()))
			}
		}
	}
	return res
}

func TestRealClients(t *testing.T) {
	cfg := testConfig()
	s, _ := startServer(t, cfg)
	big := testConfig()
	sh := testSinkhole()
	sh.A = nil
	for i := range 60 {
		sh.A = append(sh.A, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
	}
	big.Served = servedSet(t, sh, testZones)
	sBig, _ := startServer(t, big)
	port := s.UDPAddr(0).Port()
	if s.TCPAddr(0).Port() != port {
		t.Fatalf("udp port %d, tcp port %d", port, s.TCPAddr(0).Port())
	}
	serial := fmt.Sprint(s.Serial())

	for _, tool := range []string{requireTool(t, "dig"), requireTool(t, "kdig")} {
		name := tool[strings.LastIndex(tool, "/")+1:]
		for _, transport := range []string{"udp", "tcp", "edns"} {
			var targs []string
			switch transport {
			case "tcp":
				targs = []string{"+tcp"}
			case "edns":
				targs = []string{"+bufsize=1232"}
			default:
				targs = []string{"+noedns"}
			}
			for _, c := range answerCases {
				if c.qtype == dns.TypeAXFR || strings.Contains(c.qname, `\`) {
					continue
				}
				t.Run(name+"/"+transport+"/"+c.name, func(t *testing.T) {
					args := append(slices.Clone(targs), c.qname, dns.TypeToString[c.qtype])
					r := runClient(t, tool, port, args...)
					if r.status != dns.RcodeToString[c.rcode] {
						t.Fatalf("status %q, want %s\n%s", r.status, dns.RcodeToString[c.rcode], r.out)
					}
					if slices.Contains(r.flags, "aa") != c.aa || slices.Contains(r.flags, "ra") {
						t.Errorf("flags %v\n%s", r.flags, r.out)
					}
					var want []string
					for l := range strings.SplitSeq(c.answer, "\n") {
						if l != "" {
							want = append(want, normRR(strings.ReplaceAll(l, "SERIAL", serial)))
						}
					}
					if name == "kdig" {
						// kdig lower-cases the name it sends; dig keeps it,
						// and its answers check 0x20.
						for i := range want {
							rr, _ := dns.NewRR(want[i])
							rr.Header().Name = strings.ToLower(rr.Header().Name)
							want[i] = normRR(rr.String())
						}
					}
					if !slices.Equal(r.answer, want) {
						t.Errorf("answer\n got %q\nwant %q\n%s", r.answer, want, r.out)
					}
					if c.extra != "" && len(r.extra) != strings.Count(c.extra, "\n")+1 {
						t.Errorf("additional %q, want %q", r.extra, c.extra)
					}
					if transport == "edns" && name == "dig" && c.rcode == dns.RcodeSuccess && !r.cookie {
						t.Errorf("no cookie in the answer\n%s", r.out)
					}
				})
			}
		}
		t.Run(name+"/TC on 512", func(t *testing.T) {
			r := runClient(t, tool, sBig.UDPAddr(0).Port(), "+bufsize=512", "+ignore", "www.example.com", "A")
			if !slices.Contains(r.flags, "tc") || len(r.answer) >= 60 {
				t.Errorf("flags %v, %d answers\n%s", r.flags, len(r.answer), r.out)
			}
			r = runClient(t, tool, sBig.UDPAddr(0).Port(), "+bufsize=512", "www.example.com", "A")
			if slices.Contains(r.flags, "tc") || len(r.answer) != 60 {
				t.Errorf("with TCP fallback: flags %v, %d answers\n%s", r.flags, len(r.answer), r.out)
			}
		})
	}
}
