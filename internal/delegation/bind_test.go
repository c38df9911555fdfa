package delegation

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/testnet"
)

// comZone is a fake "com." as a registry would serve it after the court
// order: seized domains re-delegated to the sinkhole, others not.
const comZone = `$ORIGIN com.
$TTL 3600
@               SOA   a.gtld-servers.com. hostmaster.com. 1 3600 600 86400 300
@               NS    a.gtld-servers.com.
a.gtld-servers  A     127.0.0.1

; seized, delegated to us
waledac         NS    ns1.sinkhole.example.
waledac         NS    ns2.sinkhole.example.
conficker       NS    NS1.SINKHOLE.EXAMPLE.
conficker       NS    ns2.sinkhole.example.

; seized, delegated to us, the registrant's DS records still in place
signedbefore    NS    ns1.sinkhole.example.
signedbefore    DS    60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A
signedbefore    DS    2371 13 2 1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7C2F1A3D3B4C5D6E7F8091A2B

; still parked at the registrar
parked          NS    ns1.parking-registrar.example.
parked          NS    ns2.parking-registrar.example.

; half done: one of ours, one foreign
mixed           NS    ns1.sinkhole.example.
mixed           NS    ns1.parking-registrar.example.

; addresses in the com zone itself
direct          A     192.0.2.53
direct          AAAA  2001:db8::53
direct-foreign  A     198.51.100.7
`

// TestBIND checks domains against BIND 9.18, authoritative for the fake
// com zone with recursion off: Check must read the referrals.
func TestBIND(t *testing.T) {
	addr := startBIND(t, map[string]string{"com": comZone})

	domains := []string{
		"waledac.com", "CONFICKER.com.", "parked.com", "mixed.com", "notthere.com",
		"direct.com", "direct-foreign.com", "example.org", "signedbefore.com",
	}
	cfg := Config{
		Resolver:    addr,
		NameServers: []string{"ns1.sinkhole.example", "ns2.sinkhole.example."},
		Addrs:       []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
		Timeout:     time.Second,
		Concurrency: 4,
	}
	fixed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return fixed }
	res, err := Check(t.Context(), cfg, domains, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours := []string{"ns1.sinkhole.example", "ns2.sinkhole.example"}
	want := []Result{
		{Domain: "waledac.com", Verified: true, NS: ours},
		{Domain: "CONFICKER.com.", Verified: true, NS: ours},
		{Domain: "parked.com", NS: []string{"ns1.parking-registrar.example", "ns2.parking-registrar.example"},
			Problem: "NS points elsewhere: ns1.parking-registrar.example, ns2.parking-registrar.example"},
		{Domain: "mixed.com", NS: []string{"ns1.parking-registrar.example", "ns1.sinkhole.example"},
			Problem: "NS points elsewhere: ns1.parking-registrar.example"},
		{Domain: "notthere.com", Problem: "no NS records (NXDOMAIN)"},
		{Domain: "direct.com", Problem: "no NS records (NODATA)",
			Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}, AddrsOurs: true},
		{Domain: "direct-foreign.com", Problem: "no NS records (NODATA)",
			Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.7")}},
		// Not BIND's zone, and it does not recurse.
		{Domain: "example.org", Problem: "REFUSED; address lookup: A: REFUSED; AAAA: REFUSED", DSProblem: "REFUSED"},
		{Domain: "signedbefore.com", Verified: true, NS: []string{"ns1.sinkhole.example"}, DS: []*dns.DS{
			{Hdr: dns.RR_Header{Name: "signedbefore.com.", Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: 3600}, KeyTag: 2371, Algorithm: 13, DigestType: 2,
				Digest: "1F987CC6583E92DF0890718C42C6F9C2D7A4D8E7C2F1A3D3B4C5D6E7F8091A2B"},
			{Hdr: dns.RR_Header{Name: "signedbefore.com.", Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: 3600}, KeyTag: 60485, Algorithm: 13, DigestType: 2,
				Digest: "D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A"},
		}},
	}
	for i := range want {
		want[i].CheckedAt = fixed
	}
	compareResults(t, res, want)
}

// startBIND runs named in the foreground, authoritative for zones (name ->
// zone file text), on a free loopback port, and returns its address once it
// answers. It is stopped, and checked to have exited, in t.Cleanup.
func startBIND(t *testing.T, zones map[string]string) string {
	t.Helper()
	named, err := exec.LookPath("named")
	if err != nil {
		named = "/usr/sbin/named"
		if _, err := os.Stat(named); err != nil {
			t.Fatalf("BIND's named is not installed: apt-get install bind9 (%v)", err)
		}
	}
	dir := t.TempDir()
	port := testnet.FreePort(t)
	var zoneConf strings.Builder
	for name, text := range zones {
		file := name + ".zone"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&zoneConf, "zone %q { type primary; file %q; };\n", name, file)
	}
	conf := filepath.Join(dir, "named.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`
options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	dump-file "%[1]s/named.dump";
	statistics-file "%[1]s/named.stats";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	allow-query { 127.0.0.1; };
	allow-transfer { none; };
	dnssec-validation no;
	notify no;
};
controls { };
%[3]s`, dir, port, zoneConf.String())), 0o644)
	if err != nil {
		t.Fatal(err)
	}

	out := &testnet.Buffer{}
	cmd := exec.Command(named, "-g", "-4", "-n", "1", "-c", conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting named: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			// named shuts down cleanly on SIGTERM and exits 0.
			if err != nil {
				t.Errorf("named did not exit cleanly: %v\n%s", err, out)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("named did not exit within 10s of SIGTERM; killed it\n%s", out)
		}
		if t.Failed() {
			t.Logf("named's log:\n%s", out)
		}
	})

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Ready when every zone answers its SOA authoritatively.
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for {
		var lastErr error
		for name := range zones {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), dns.TypeSOA)
			r, _, err := c.Exchange(m, addr)
			switch {
			case err != nil:
				lastErr = err
			case r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) == 0:
				lastErr = fmt.Errorf("SOA %s: %s, aa=%v", name, dns.RcodeToString[r.Rcode], r.Authoritative)
			}
		}
		if lastErr == nil {
			return addr
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("named exited early (%v):\n%s", err, out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("named not ready at %s after 20s (%v):\n%s", addr, lastErr, out)
		}
	}
}
