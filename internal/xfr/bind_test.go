package xfr

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/rpz"
	"github.com/takedown-project/takedown/internal/testnet"
)

var (
	sinkA    = netip.MustParseAddr("192.0.2.53")
	sinkAAAA = netip.MustParseAddr("2001:db8::53")
	rpzCfg   = rpz.Config{Zone: "rpz.takedown.test", A: []netip.Addr{sinkA}, AAAA: []netip.Addr{sinkAAAA}, TTL: 60}
)

func buildRPZ(t *testing.T, serial uint32, entries ...rpz.Entry) []dns.RR {
	t.Helper()
	rrs, err := rpz.Build(rpzCfg, serial, entries)
	if err != nil {
		t.Fatal(err)
	}
	return rrs
}

// rpzEntries is the feed of the resolver tests: many NXDOMAIN names, one
// redirect.
func rpzEntries(extra ...rpz.Entry) []rpz.Entry {
	var e []rpz.Entry
	for i := range 200 {
		e = append(e, rpz.Entry{Name: fmt.Sprintf("bot%03d.waledac.test", i), Policy: rpz.NXDOMAIN})
	}
	e = append(e, rpz.Entry{Name: "redirect.waledac.test", Policy: rpz.Redirect})
	return append(e, extra...)
}

// TestBINDConsumer subscribes BIND 9.18 to the RPZ feed with TSIG, checks
// the policies through recursive queries, changes the feed, and checks that
// BIND picked the change up by IXFR after NOTIFY.
func TestBINDConsumer(t *testing.T) {
	named := needBinary(t, "named", "bind9")
	dir := t.TempDir()
	bindPort, closedPort := testnet.FreePort(t), testnet.FreePort(t)
	bindAddr := fmt.Sprintf("127.0.0.1:%d", bindPort)

	s, xfrAddr := startServer(t, Config{Notify: []string{bindAddr}, NotifyKey: testKey})
	zone := rpzCfg.ZoneName()
	if err := s.SetZone(zone, buildRPZ(t, 1, rpzEntries()...)); err != nil {
		t.Fatal(err)
	}
	_, xfrPort, _ := splitHostPort(xfrAddr)

	writeFile(t, filepath.Join(dir, "root.hint"), ". 3600000 NS a.root.invalid.\na.root.invalid. 3600000 A 127.0.0.1\n")
	conf := filepath.Join(dir, "named.conf")
	writeFile(t, conf, fmt.Sprintf(`
options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion yes;
	allow-query { 127.0.0.1; };
	allow-recursion { 127.0.0.1; };
	allow-transfer { none; };
	forward only;
	forwarders { 127.0.0.1 port %[3]d; };
	dnssec-validation no;
	notify no;
	response-policy { zone "%[4]s" min-update-interval 1; } qname-wait-recurse no;
};
controls { };
key "%[5]s" { algorithm hmac-sha256; secret "%[6]s"; };
zone "." { type hint; file "root.hint"; };
zone "%[4]s" {
	type secondary;
	primaries port %[7]s { 127.0.0.1 key "%[5]s"; };
	file "rpz.db";
	allow-notify { 127.0.0.1; };
};
`, dir, bindPort, closedPort, zone, testKey, testSecret, xfrPort))
	d := startDaemon(t, named, "-g", "-d", "3", // xfrin names IXFR/AXFR at debug 3
		"-4", "-n", "1", "-c", conf)

	// BIND answers from the policy zone while it still adds the zone's
	// names to its policy summary (a batch at a time): wait for every
	// name the checks below ask, the last entries of the feed among them.
	waitFor(t, 20*time.Second, "BIND to load the policy zone", d, allOf(
		expectAnswer(bindAddr, "bot007.waledac.test", dns.TypeA, dns.RcodeNameError),
		expectAnswer(bindAddr, "www.bot199.waledac.test", dns.TypeA, dns.RcodeNameError),
		expectAnswer(bindAddr, "cc.redirect.waledac.test", dns.TypeA, dns.RcodeSuccess, sinkA.String())))
	for _, name := range []string{"bot000.waledac.test", "www.bot199.waledac.test", "a.b.bot042.waledac.test"} {
		if err := expectAnswer(bindAddr, name, dns.TypeA, dns.RcodeNameError)(); err != nil {
			t.Error(err)
		}
	}
	for _, name := range []string{"redirect.waledac.test", "cc.redirect.waledac.test"} {
		if err := expectAnswer(bindAddr, name, dns.TypeA, dns.RcodeSuccess, sinkA.String())(); err != nil {
			t.Error(err)
		}
		if err := expectAnswer(bindAddr, name, dns.TypeAAAA, dns.RcodeSuccess, sinkAAAA.String())(); err != nil {
			t.Error(err)
		}
	}
	// Not seized: the closed forwarder makes it fail, not rewrite.
	if err := notRewritten(bindAddr, "innocent.test"); err != nil {
		t.Error(err)
	}

	// Change: a new seized name, and bot001 moves from NXDOMAIN to redirect.
	entries := rpzEntries(rpz.Entry{Name: "new.conficker.test", Policy: rpz.NXDOMAIN})
	entries[1].Policy = rpz.Redirect
	if err := s.SetZone(zone, buildRPZ(t, 2, entries...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "BIND to apply the change", d, func() error {
		if err := expectAnswer(bindAddr, "x.new.conficker.test", dns.TypeA, dns.RcodeNameError)(); err != nil {
			return err
		}
		return expectAnswer(bindAddr, "bot001.waledac.test", dns.TypeA, dns.RcodeSuccess, sinkA.String())()
	})

	// BIND's log (debug level 3 for the xfrin details) says how it
	// transferred: the initial version by AXFR, the change by IXFR, with
	// only the changed records (4 SOAs + 2 deleted + 6 added = 12).
	zoneNoDot := regexp.QuoteMeta(zone[:len(zone)-1])
	xfrin := `transfer of '` + zoneNoDot + `/IN' from 127\.0\.0\.1#` + xfrPort + `: `
	waitFor(t, 5*time.Second, "BIND to log the transfer", d, func() error {
		log := d.out.String()
		for _, re := range []string{
			`zone ` + zoneNoDot + `/IN: no database exists yet, requesting AXFR of initial version`,
			`received notify for zone '` + zoneNoDot + `'`,
			xfrin + `requesting IXFR for serial 1\n`,
			xfrin + `got incremental response`,
			xfrin + `Transfer completed: 1 messages, 12 records, .*\(serial 2\)`,
		} {
			if !regexp.MustCompile(re).MatchString(log) {
				return fmt.Errorf("BIND log lacks %q", re)
			}
		}
		return nil
	})
	if v := value(s.met.transfers.WithLabelValues("ixfr", "incremental")); v < 1 {
		t.Errorf("server counted %v incremental transfers", v)
	}
}

func splitHostPort(addr string) (string, string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", "", err
	}
	return ap.Addr().String(), fmt.Sprint(ap.Port()), nil
}
