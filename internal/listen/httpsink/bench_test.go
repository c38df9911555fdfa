package httpsink

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/listen/sink"
)

// binaryRecorder stands in for the spool: it encodes every event in its
// binary form into a buffer, which it "flushes" (drops) at 1 MiB.
type binaryRecorder struct {
	mu     sync.Mutex
	buf    []byte
	events atomic.Int64
	bytes  atomic.Int64
}

func (r *binaryRecorder) Record(e *event.Event) {
	r.mu.Lock()
	n := len(r.buf)
	r.buf = event.AppendBinary(r.buf, e)
	r.bytes.Add(int64(len(r.buf) - n))
	if len(r.buf) > 1<<20 {
		r.buf = r.buf[:0]
	}
	r.mu.Unlock()
	r.events.Add(1)
}

// serveForBench runs the listener for bench/http-ours.sh until SIGTERM or
// SIGINT, then prints the number of events recorded.
func serveForBench(addr string) int {
	rules, err := classify.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rec := &binaryRecorder{}
	s, err := New(Config{
		HTTP:       []string{addr},
		Sensor:     "bench",
		Classifier: rules,
		Recorder:   rec,
		Zones:      fakeZones{"conficker-c2-001.example": {"bench", "conficker"}},
		// wrk opens its connections from one address.
		MaxConnsPerIP: -1,
	})
	if err == nil {
		err = s.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("serving on %s (pid %d)\n", addr, os.Getpid())
	// SIGUSR1: collect garbage, return it to the system and report, so
	// that a soak test can read the steady state from /proc.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	for done := false; !done; {
		select {
		case <-usr1:
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("gc: heap in use %d KiB, stacks %d KiB, goroutines %d\n", ms.HeapInuse>>10, ms.StackInuse>>10, runtime.NumGoroutine())
		case <-ctx.Done():
			done = true
		}
	}
	stop()
	signal.Stop(usr1)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(sctx) //nolint:errcheck
	fmt.Printf("events %d, binary bytes %d\n", rec.events.Load(), rec.bytes.Load())
	return 0
}

// pipeConn is a net.Conn that reads a fixed input and discards writes.
type pipeConn struct {
	r io.Reader
}

func (c *pipeConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *pipeConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *pipeConn) Close() error                { return nil }
func (c *pipeConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *pipeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// serveBytes runs the HTTP/1 connection loop of s over in as if a client
// had sent it on one connection.
func serveBytes(s *Server, in io.Reader) {
	now := time.Now()
	c := &pipeConn{r: in}
	sc := &sinkConn{Conn: c, s: s, p: protoHTTP, start: now, hard: now.Add(time.Hour),
		src: sink.AddrPort(c.RemoteAddr()), dst: sink.AddrPort(c.LocalAddr())}
	h := &h1conn{s: s, sc: sc, c: sc, first: true}
	h.serve(false)
}

// repeatReader yields its data n times.
type repeatReader struct {
	data []byte
	off  int
	n    int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := copy(b, r.data[r.off:])
	if r.off += k; r.off == len(r.data) {
		r.off = 0
		r.n--
	}
	return k, nil
}

type countRecorder struct{ n atomic.Int64 }

func (r *countRecorder) Record(*event.Event) { r.n.Add(1) }

// BenchmarkHandler measures the HTTP/1 path from request bytes to event
// and response, on one keep-alive connection, without the network.
func BenchmarkHandler(b *testing.B) {
	rules, err := classify.Default()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, req string }{
		{"get", "GET /gate.php?id=4f2a9c&v=2 HTTP/1.1\r\nHost: conficker-c2-001.example\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\nAccept: */*\r\n\r\n"},
		{"post-waledac", "POST /abcdef.htm HTTP/1.1\r\nHost: conficker-c2-001.example\r\nUser-Agent: Mozilla\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1024\r\n\r\na=" + strings.Repeat("Q", 1012) + "&b=botid42"},
	} {
		for _, rec := range []struct {
			name string
			r    Recorder
		}{{"recorder=count", &countRecorder{}}, {"recorder=binary", &binaryRecorder{}}} {
			b.Run("req="+bc.name+"/"+rec.name, func(b *testing.B) {
				s, err := New(Config{Classifier: rules, Recorder: rec.r,
					Zones: fakeZones{"conficker-c2-001.example": {"bench", "conficker"}}})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(bc.req)))
				b.ResetTimer()
				serveBytes(s, &repeatReader{data: []byte(bc.req), n: b.N})
			})
		}
	}
}

// BenchmarkLoopback measures whole requests over loopback TCP with
// keep-alive, for a rough req/s figure without wrk.
func BenchmarkLoopback(b *testing.B) {
	ts := startServer(b, func(c *Config) { c.Recorder = &countRecorder{}; c.HTTPS = nil })
	conn, err := net.Dial("tcp", ts.http)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	req := []byte("GET /gate.php?id=1 HTTP/1.1\r\nHost: conficker-c2-001.example\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
		}
	}
}
