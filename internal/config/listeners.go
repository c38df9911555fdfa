package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// listener is one address that serve binds, with the key that names it.
type listener struct {
	key, addr string
	tcp, udp  bool
	host      string // as written: "", "localhost" or an IP address
	port      int
}

// listeners lists every address serve binds: the API and metrics, the sinkhole listeners
// on TCP, listen.udp on UDP, and the DNS and transfer servers on both.
// Addresses that are not host:port (reported elsewhere) and port 0 (the
// system picks a free one) are left out.
func (c *Config) listeners() []listener {
	var out []listener
	one := func(key, a string, tcp, udp bool) {
		host, port, err := net.SplitHostPort(a)
		if err != nil || checkHostPort(a) != nil {
			return
		}
		if p, _ := strconv.Atoi(port); p != 0 {
			out = append(out, listener{key: key, addr: a, tcp: tcp, udp: udp, host: host, port: p})
		}
	}
	add := func(key string, addrs []string, tcp, udp bool) {
		for i, a := range addrs {
			one(fmt.Sprintf("%s[%d]", key, i), a, tcp, udp)
		}
	}
	one("api.listen", c.API.Listen, true, false)
	one("metrics.listen", c.Metrics.Listen, true, false)
	add("dns.listen", c.DNS.Listen, true, true)
	add("transfer.listen", c.Transfer.Listen, true, true)
	add("listen.http", c.Listen.HTTP, true, false)
	add("listen.https", c.Listen.HTTPS, true, false)
	add("listen.smtp", c.Listen.SMTP, true, false)
	add("listen.tcp", c.Listen.TCP, true, false)
	add("listen.udp", c.Listen.UDP, false, true)
	return out
}

// checkListeners reports two listeners that would bind the same port of
// the same protocol on overlapping addresses: the second could not start.
func (c *Config) checkListeners(bad func(key, format string, args ...any)) {
	ls := c.listeners()
	for j, b := range ls {
		for _, a := range ls[:j] {
			if a.port != b.port || !hostsOverlap(a.host, b.host) {
				continue
			}
			proto := ""
			switch {
			case a.tcp && b.tcp:
				proto = "TCP"
			case a.udp && b.udp:
				proto = "UDP"
			default:
				continue
			}
			bad(b.key, "%s is on the %s port of %s (%s): two listeners cannot share a port", b.addr, proto, a.key, a.addr)
			break
		}
	}
}

// hostsOverlap reports whether listening on host a and on host b takes the
// same port: the same address, or a wildcard that covers the other ("" and
// "::" every address, as Go listens dual-stack; 0.0.0.0 every IPv4 one).
// localhost stands for 127.0.0.1 and ::1.
func hostsOverlap(a, b string) bool {
	as, bs := hostAddrs(a), hostAddrs(b)
	for _, x := range as {
		for _, y := range bs {
			if addrsOverlap(x, y) {
				return true
			}
		}
	}
	return false
}

func hostAddrs(h string) []netip.Addr {
	switch h {
	case "":
		return []netip.Addr{netip.IPv6Unspecified()}
	case "localhost":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return nil
	}
	return []netip.Addr{ip.Unmap()}
}

func addrsOverlap(x, y netip.Addr) bool {
	switch {
	case x == y:
		return true
	case x == netip.IPv6Unspecified() || y == netip.IPv6Unspecified():
		return true
	case x == netip.IPv4Unspecified():
		return y.Is4()
	case y == netip.IPv4Unspecified():
		return x.Is4()
	}
	return false
}
