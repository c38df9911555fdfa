package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestLoopbackIsBindableAndBelowTheEphemeralRange(t *testing.T) {
	ports, err := Distinct(20)
	if err != nil {
		t.Fatal(err)
	}
	low := ephemeralLow()
	seen := map[int]bool{}
	for _, p := range ports {
		if p < 10000 || p >= low {
			t.Errorf("port %d outside [10000, %d)", p, low)
		}
		if seen[p] {
			t.Errorf("port %d twice", p)
		}
		seen[p] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		pc.Close()
	}
}

func TestLoopbackSkipsABoundPort(t *testing.T) {
	// Hold every port it returns: each next one must be another.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	seen := map[int]bool{}
	for range 50 {
		p, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d returned while still bound", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
}
