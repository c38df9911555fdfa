// Package freeport finds loopback ports that a server about to start can
// bind for both UDP and TCP.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Loopback returns a port of 127.0.0.1 that was free for both UDP and TCP
// (DNS servers bind both). It is drawn at random from below the kernel's
// ephemeral range: a port the kernel hands out for ":0" can be taken
// again, before the caller binds it, as the local port of any client
// socket opened meanwhile, while the ports below the range are only ever
// taken by a bind.
func Loopback() (int, error) {
	lo, hi := 10000, ephemeralLow()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port of 127.0.0.1 below the ephemeral range is free for both UDP and TCP")
}

// Distinct returns n different ports, each as Loopback finds them.
func Distinct(n int) ([]int, error) {
	seen := make(map[int]bool, n)
	out := make([]int, 0, n)
	for len(out) < n {
		p, err := Loopback()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 32768
// (Linux's default) when it cannot be read or leaves too little below it.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n >= 12000 {
				return n
			}
		}
	}
	return 32768
}
