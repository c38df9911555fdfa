package httpsink

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/classify"
	"github.com/takedown-project/takedown/internal/event"
)

// TestLoopHandOff: what an event loop cannot serve from one read goes to
// the goroutine path, which finishes it: a body that comes after its head,
// a chunked body, and answers that fill the client's socket. Requests that
// came together are all answered, in order, on the loop.
func TestLoopHandOff(t *testing.T) {
	big := strings.Repeat("b", 4000)
	rules := bigAnswers(t, "/big", big)
	ts, reg := parkServer(t, 0, func(c *Config) { c.Classifier = rules })
	handoffs := func() float64 { return metric(t, reg, "loop_handoffs_total") }
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

	t.Run("pipelined", func(t *testing.T) {
		ts.rec.reset()
		before := handoffs()
		c := dial(t, ts.http)
		defer c.c.Close()
		var req strings.Builder
		for i := range 5 {
			fmt.Fprintf(&req, "GET /p?i=%d HTTP/1.1\r\nHost: evil-c2.example\r\n\r\n", i)
		}
		io.WriteString(c.c, req.String())
		for i := range 5 {
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("answer %d: %v %v", i, resp, err)
			}
			resp.Body.Close()
		}
		evs := ts.rec.waitN(t, 5, nil)
		for i, e := range evs {
			if want := fmt.Sprintf("/p?i=%d", i); e.HTTPPath != want || e.Error != "" {
				t.Errorf("event %d: %+v, want path %s", i, e, want)
			}
		}
		if d := handoffs() - before; d != 0 {
			t.Errorf("%v hand-offs for requests that came whole", d)
		}
	})

	t.Run("body-later", func(t *testing.T) {
		ts.rec.reset()
		before := handoffs()
		c := dial(t, ts.http)
		defer c.c.Close()
		body := "a=" + strings.Repeat("Q", 100) + "&b=2"
		fmt.Fprintf(c.c, "POST /gate.htm HTTP/1.1\r\nHost: evil-c2.example\r\nContent-Length: %d\r\n\r\n", len(body))
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c.c, body)
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatal(resp, err)
		}
		resp.Body.Close()
		// The connection carries on (on the goroutine path).
		if err := c.ask("/after"); err != nil {
			t.Fatal(err)
		}
		evs := ts.rec.waitN(t, 2, nil)
		if e := evs[0]; e.HTTPMethod != "POST" || e.Bytes != int64(len(body)) || e.PayloadSHA256 != sum(body) || string(e.PayloadHead) != body || e.Error != "" {
			t.Errorf("event: %+v", e)
		}
		if evs[1].HTTPPath != "/after" {
			t.Errorf("second event: %+v", evs[1])
		}
		if d := handoffs() - before; d != 1 {
			t.Errorf("%v hand-offs, want 1", d)
		}
	})

	t.Run("chunked", func(t *testing.T) {
		ts.rec.reset()
		out := exchange(t, ts.http, []byte("POST /c HTTP/1.1\r\nHost: evil-c2.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
			"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))
		if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
			t.Fatalf("answer %q", out)
		}
		e := ts.rec.waitN(t, 1, nil)[0]
		if e.Bytes != 11 || e.PayloadSHA256 != sum("hello world") || e.Error != "" {
			t.Errorf("event: %+v", e)
		}
	})

	t.Run("client-reads-late", func(t *testing.T) {
		// 90 answers of 4 kB, asked in one read and read after a
		// pause: more than the server's socket holds (made small), so
		// the loop's write comes up short, and a goroutine sends the
		// rest when the client reads.
		small := func(fd int) { syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 16<<10) }
		ts.onAccept.Store(&small)
		defer ts.onAccept.Store(nil)
		ts.rec.reset()
		before := handoffs()
		conn := dialSmallReadBuffer(t, ts.http)
		defer conn.Close()
		const n = 90 // 4,050 bytes of requests: one read of the loop
		go conn.Write([]byte(strings.Repeat("GET /big HTTP/1.1\r\nHost: evil-c2.example\r\n\r\n", n)))
		time.Sleep(200 * time.Millisecond)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		for i := range n {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != big {
				t.Fatalf("answer %d: %d bytes, %v", i, len(b), err)
			}
		}
		evs := ts.rec.waitN(t, n, nil)
		for _, e := range evs {
			if e.HTTPPath != "/big" || e.Family != "testfam" || e.Error != "" {
				t.Fatalf("event: %+v", e)
			}
		}
		if d := handoffs() - before; d != 1 {
			t.Errorf("%v hand-offs, want 1", d)
		}
	})
	waitParked(t, ts, 0)
}

// TestLoopSockets: each loop accepts on a socket of its own, and all of
// them are served; the address stays taken, as a plain listener's would.
func TestLoopSockets(t *testing.T) {
	ts, _ := parkServer(t, 2, nil)
	fds := ts.loops.lns[0].fds
	if len(fds) != 2 || fds[0] < 0 || fds[1] < 0 || fds[0] == fds[1] {
		t.Fatalf("listening sockets %v, want two", fds)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				out := exchange(t, ts.http, fmt.Appendf(nil, "GET /s?w=%d&i=%d HTTP/1.1\r\nHost: evil-c2.example\r\nConnection: close\r\n\r\n", w, i))
				if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
					t.Errorf("answer %q", out)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs := ts.rec.waitN(t, 400, nil)
	ports := map[uint16]bool{}
	for _, e := range evs {
		if e.Error != "" || e.Protocol != event.ProtoHTTP {
			t.Fatalf("event: %+v", e)
		}
		ports[e.SrcPort] = true
	}
	if len(ports) != 400 {
		t.Errorf("%d source ports for 400 connections", len(ports))
	}

	// A second server on the same address fails as it did without loops.
	s2, err := New(Config{HTTP: []string{ts.http}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		s2.Shutdown(context.Background())
		t.Fatalf("second server on %s: %v", ts.http, err)
	}
}

// TestLoopSameEvents sends each of FuzzRequest's seeds on a connection of
// its own (the client closes its side after it), whole and then in two
// pieces 20 ms apart, to a server with event loops and to one without: the
// answers and the events must be the same.
func TestLoopSameEvents(t *testing.T) {
	type send struct {
		seed  string
		split bool
	}
	var sends []send
	for _, seed := range requestSeeds {
		sends = append(sends, send{seed, false}, send{seed, true})
	}
	run := func(loops int) (answers []string, evs [][]event.Event) {
		rules, err := classify.Default()
		if err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, func(c *Config) {
			c.Loops, c.HTTPS = loops, nil
			c.MaxHeaderBytes, c.MaxBodyBytes, c.HeadBytes = 1024, 2048, 64
			c.Classifier = rules
			c.Zones = fakeZones{"a.example": {"c", "fam"}}
		})
		for _, snd := range sends {
			seed := snd.seed
			ts.rec.reset()
			c, err := net.DialTimeout("tcp", ts.http, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if snd.split {
				io.WriteString(c, seed[:len(seed)/2])
				time.Sleep(20 * time.Millisecond)
				seed = seed[len(seed)/2:]
			}
			io.WriteString(c, seed)
			c.(*net.TCPConn).CloseWrite()
			out, err := io.ReadAll(c)
			c.Close()
			if err != nil {
				t.Fatalf("%q: %v", seed, err)
			}
			answers = append(answers, dateRE.ReplaceAllString(string(out), "Date: -"))
			// Every connection ends with its last request's event, or
			// with one of its own: wait until the events stop coming.
			var got []event.Event
			for {
				time.Sleep(20 * time.Millisecond)
				now := ts.rec.all()
				if len(now) > 0 && len(now) == len(got) {
					break
				}
				got = now
			}
			for i := range got {
				got[i].Time, got[i].SrcPort, got[i].DstPort = time.Time{}, 0, 0 // the two servers differ in these only
			}
			evs = append(evs, got)
		}
		return answers, evs
	}
	la, le := run(0)
	ga, ge := run(-1)
	for i, snd := range sends {
		if la[i] != ga[i] {
			t.Errorf("%q (split %v): answer with loops\n%q\nwithout\n%q", snd.seed, snd.split, la[i], ga[i])
		}
		if !reflect.DeepEqual(le[i], ge[i]) {
			t.Errorf("%q (split %v): events with loops\n%s\nwithout\n%s", snd.seed, snd.split, dump(le[i]), dump(ge[i]))
		}
	}
}

var dateRE = regexp.MustCompile(`Date: [^\r]*`)
