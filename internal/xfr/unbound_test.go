package xfr

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/rpz"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestUnboundConsumer subscribes Unbound 1.17 to the RPZ feed. Unbound cannot
// sign RPZ transfers with TSIG, so the server allows its source address
// unsigned (AllowUnsigned).
func TestUnboundConsumer(t *testing.T) {
	unbound := needBinary(t, "unbound", "unbound")
	dir := t.TempDir()
	ubPort, closedPort := testnet.FreePort(t), testnet.FreePort(t)
	ubAddr := fmt.Sprintf("127.0.0.1:%d", ubPort)

	s, xfrAddr := startServer(t, Config{
		Notify:        []string{ubAddr},
		AllowUnsigned: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	zone := rpzCfg.ZoneName()
	if err := s.SetZone(zone, buildRPZ(t, 1, rpzEntries()...)); err != nil {
		t.Fatal(err)
	}
	_, xfrPort, _ := splitHostPort(xfrAddr)

	conf := filepath.Join(dir, "unbound.conf")
	writeFile(t, conf, fmt.Sprintf(`
server:
	verbosity: 2
	use-syslog: no
	logfile: ""
	log-time-ascii: yes
	username: ""
	chroot: ""
	directory: "%[1]s"
	pidfile: "%[1]s/unbound.pid"
	interface: 127.0.0.1
	port: %[2]d
	do-ip6: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	module-config: "respip iterator"
	num-threads: 1
	# test. is one of Unbound's default local zones (always NXDOMAIN):
	# without this every test name is NXDOMAIN with or without RPZ.
	local-zone: "test." nodefault
forward-zone:
	name: "."
	forward-addr: 127.0.0.1@%[3]d
remote-control:
	control-enable: no
rpz:
	name: "%[4]s"
	primary: 127.0.0.1@%[5]s
	allow-notify: 127.0.0.1
	zonefile: "%[1]s/rpz.zone"
	rpz-log: yes
`, dir, ubPort, closedPort, zone, xfrPort))
	d := startDaemon(t, unbound, "-d", "-c", conf)

	waitFor(t, 20*time.Second, "Unbound to load the policy zone", d,
		expectAnswer(ubAddr, "bot007.waledac.test", dns.TypeA, dns.RcodeNameError))
	for _, name := range []string{"bot000.waledac.test", "www.bot199.waledac.test", "a.b.bot042.waledac.test"} {
		if err := expectAnswer(ubAddr, name, dns.TypeA, dns.RcodeNameError)(); err != nil {
			t.Error(err)
		}
	}
	for _, name := range []string{"redirect.waledac.test", "cc.redirect.waledac.test"} {
		if err := expectAnswer(ubAddr, name, dns.TypeA, dns.RcodeSuccess, sinkA.String())(); err != nil {
			t.Error(err)
		}
		if err := expectAnswer(ubAddr, name, dns.TypeAAAA, dns.RcodeSuccess, sinkAAAA.String())(); err != nil {
			t.Error(err)
		}
	}
	if err := notRewritten(ubAddr, "innocent.test"); err != nil {
		t.Error(err)
	}

	entries := rpzEntries(rpz.Entry{Name: "new.conficker.test", Policy: rpz.NXDOMAIN})
	entries[1].Policy = rpz.Redirect
	if err := s.SetZone(zone, buildRPZ(t, 2, entries...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Unbound to apply the change", d, func() error {
		if err := expectAnswer(ubAddr, "x.new.conficker.test", dns.TypeA, dns.RcodeNameError)(); err != nil {
			return err
		}
		return expectAnswer(ubAddr, "bot001.waledac.test", dns.TypeA, dns.RcodeSuccess, sinkA.String())()
	})
	if v := value(s.met.transfers.WithLabelValues("ixfr", "incremental")); v < 1 {
		t.Errorf("server counted %v incremental transfers, want Unbound to use IXFR", v)
	}
}
