package dnssink

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUDPIO answers bursts of concurrent UDP queries with each way of
// reading the socket: blocking readers (where the system has them),
// batched I/O through the runtime's poller, and the one-datagram loop; on
// IPv4, IPv6 and dual-stack sockets.
func TestUDPIO(t *testing.T) {
	for _, tc := range []struct{ listen, dial string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
		{"[::]:0", "127.0.0.1"}, // v4-mapped clients on a v6 socket
		{"[::]:0", "::1"},
	} {
		for _, mode := range []string{"raw", "batch", "single"} {
			t.Run(fmt.Sprintf("%s/%s/%s", tc.listen, tc.dial, mode), func(t *testing.T) {
				if l, err := net.ListenPacket("udp", tc.listen); err != nil {
					t.Skipf("no %s: %v", tc.listen, err)
				} else {
					l.Close()
				}
				cfg := testConfig()
				cfg.Listen = []string{tc.listen}
				cfg.UDPWorkers = 2
				rec := &memRecorder{}
				cfg.Recorder = rec
				cfg.Served = servedSet(t, testSinkhole(), testZones)
				s, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				s.noRaw, s.noBatch = mode != "raw", mode == "single"
				if err := s.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if err := s.Shutdown(ctx); err != nil {
						t.Error(err)
					}
				}()
				addr := netip.AddrPortFrom(netip.MustParseAddr(tc.dial), s.UDPAddr(0).Port())
				const clients, queries, burst = 8, 50, 10
				var wg sync.WaitGroup
				errs := make(chan error, clients)
				for c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						conn, err := net.Dial("udp", addr.String())
						if err != nil {
							errs <- err
							return
						}
						defer conn.Close()
						dc := &dns.Conn{Conn: conn}
						// Send bursts of burst queries, then read their answers.
						for b := 0; b < queries; b += burst {
							want := map[uint16]string{}
							for i := b; i < b+burst; i++ {
								name := fmt.Sprintf("h%d-%d.%s.", c, i, testZones[0].Name)
								m := question(name, dns.TypeA)
								m.Id = uint16(c*1000 + i)
								want[m.Id] = name
								if err := dc.WriteMsg(m); err != nil {
									errs <- err
									return
								}
							}
							_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
							for range burst {
								r, err := dc.ReadMsg()
								if err != nil {
									errs <- fmt.Errorf("client %d: %w (%d answers missing)", c, err, len(want))
									return
								}
								name, ok := want[r.Id]
								if !ok || len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
									errs <- fmt.Errorf("client %d: unexpected answer %v", c, r)
									return
								}
								delete(want, r.Id)
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				waitFor(t, "events", func() bool { return len(rec.all()) == clients*queries })
				for _, e := range rec.all() {
					if e.SrcIP != netip.MustParseAddr(tc.dial) || e.SrcPort == 0 || e.DstPort != addr.Port() {
						t.Fatalf("event from %v:%d to %v:%d", e.SrcIP, e.SrcPort, e.DstIP, e.DstPort)
					}
				}
			})
		}
	}
}

// TestRawReadersLetTheWorldStop: blocking UDP readers that wait for a
// datagram do not hold up a garbage collection (which stops every
// goroutine), and Shutdown ends them.
func TestRawReadersLetTheWorldStop(t *testing.T) {
	s, _ := startServer(t, testConfig())
	if runtime.GOOS == "linux" && len(s.raw) == 0 {
		t.Fatal("no blocking readers on Linux")
	}
	if r := exchange(t, s, "udp", question("www.example.com.", dns.TypeA)); len(r.Answer) != 1 {
		t.Fatalf("answer %v", r)
	}
	done := make(chan struct{})
	go func() {
		for range 5 {
			runtime.GC()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("garbage collection did not finish beside idle UDP readers")
	}
	if r := exchange(t, s, "udp", question("www.example.com.", dns.TypeAAAA)); len(r.Answer) != 1 {
		t.Fatalf("answer %v", r)
	}
}
