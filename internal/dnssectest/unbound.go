package dnssectest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/testnet"
)

// Unbound is a validating Unbound on 127.0.0.1 whose only trust anchor is
// a Parent's key. Its configuration, pidfile, control socket and log are
// in a directory of the test's own.
type Unbound struct {
	// Addr is the resolver's 127.0.0.1:port.
	Addr string
	// Dir holds unbound.conf, the pidfile and the control socket.
	Dir string

	conf    string
	control string // unbound-control
	out     *testnet.Buffer
}

// unboundConfig is an Unbound that trusts only the test parent: the parent
// and each child are stub zones (the child's at its sinkhole's address,
// as the parent's NS names cannot say a port), and the parent's key is the
// trust anchor, so every child is validated through the parent's DS set.
const unboundConfig = `server:
	verbosity: 1
	ede: yes
	use-syslog: no
	logfile: ""
	log-time-ascii: yes
	username: ""
	chroot: ""
	directory: "{{dir}}"
	pidfile: "{{dir}}/unbound.pid"
	interface: 127.0.0.1
	port: {{port}}
	do-ip6: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	num-threads: 1
	# Unbound draws a random number per permitted outgoing port at start:
	# all 65536 cost half a second. These are above Linux's ephemeral
	# range and freeport's ports, so no test server is ever there.
	outgoing-port-avoid: 0-65535
	outgoing-port-permit: 61000-61999
	outgoing-range: 64
	msg-cache-size: 1m
	rrset-cache-size: 1m
	key-cache-size: 1m
	neg-cache-size: 1m
	module-config: "validator iterator"
	trust-anchor: "{{anchor}}"
	# Tests change DS sets and expect the next question to see it.
	cache-max-ttl: 0
	cache-max-negative-ttl: 0
	val-bogus-ttl: 0
	infra-host-ttl: 1
	# test. and invalid. are default local zones (always NXDOMAIN); tests
	# use example. as a TLD too.
	local-zone: "test." nodefault
	local-zone: "invalid." nodefault
	local-zone: "example." nodefault
	qname-minimisation: no
	aggressive-nsec: no
	harden-referral-path: no
	target-fetch-policy: "0 0 0 0 0"
remote-control:
	control-enable: yes
	control-interface: "{{dir}}/control.sock"
	control-use-cert: no
stub-zone:
	name: "{{zone}}"
	stub-addr: {{parent}}
{{stubs}}`

// StartUnbound starts Unbound (Debian package unbound; a missing binary
// fails the test) as a validating resolver for p's zone and every child p
// delegates now, each child's queries going to its sinkhole address.
// Delegate the children first. Unbound is stopped when the test ends, and
// its output logged if the test failed.
func StartUnbound(t testing.TB, p *Parent) *Unbound {
	t.Helper()
	var bins []string
	for _, b := range []string{"unbound", "unbound-control"} {
		p, err := exec.LookPath(b)
		if err != nil {
			if p, err = exec.LookPath("/usr/sbin/" + b); err != nil {
				t.Fatalf("%s is not installed (Debian package unbound; .ci/run installs it)", b)
			}
		}
		bins = append(bins, p)
	}
	dir := t.TempDir()
	port := testnet.FreePort(t)
	u := &Unbound{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, conf: filepath.Join(dir, "unbound.conf"),
		control: bins[1], out: &testnet.Buffer{}}

	var stubs strings.Builder
	kids := p.delegations()
	names := make([]string, 0, len(kids))
	for n := range kids {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&stubs, "stub-zone:\n\tname: %q\n\tstub-addr: %s\n", n, unboundAddr(t, kids[n]))
	}
	conf := strings.NewReplacer(
		"{{dir}}", dir,
		"{{port}}", fmt.Sprint(port),
		"{{anchor}}", strings.ReplaceAll(p.DNSKEY().String(), "\t", " "),
		"{{zone}}", p.Zone,
		"{{parent}}", unboundAddr(t, p.Addr),
		"{{stubs}}", stubs.String(),
	).Replace(unboundConfig)
	if err := os.WriteFile(u.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bins[0], "-d", "-c", u.conf)
	cmd.Stdout, cmd.Stderr = u.out, u.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting unbound: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("unbound.conf:\n%s\nunbound output:\n%s", conf, u.out.String())
		}
	})
	testnet.WaitFor(t, "unbound to answer on "+u.Addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("unbound exited: %s", u.out.String())
		default:
		}
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		m := new(dns.Msg)
		m.SetQuestion(p.Zone, dns.TypeSOA)
		_, _, err := c.Exchange(m, u.Addr)
		return err == nil
	})
	return u
}

// unboundAddr writes host:port as Unbound wants it, host@port.
func unboundAddr(t testing.TB, hostport string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("dnssectest: address %q: %v", hostport, err)
	}
	return host + "@" + port
}

// Query asks the resolver for name and qtype with the DO and AD bits set
// (over TCP: no truncation) and returns its answer.
func (u *Unbound) Query(t testing.TB, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(1232, true)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, u.Addr)
	if err != nil {
		t.Fatalf("asking unbound for %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return resp
}

// Flush forgets everything the resolver knows at or below name (records,
// negative answers, validated keys), so the next question goes to the
// servers again.
func (u *Unbound) Flush(t testing.TB, name string) {
	t.Helper()
	for _, args := range [][]string{{"flush_zone", dns.Fqdn(name)}, {"flush_bogus"}, {"flush_negative"}, {"flush_infra", "all"}} {
		out, err := exec.Command(u.control, append([]string{"-c", u.conf}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("unbound-control %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}
