package httpsink

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSoakIdleConns holds many idle keep-alive connections (each made one
// request) open against a listener in a child process and reports the
// child's resident memory. TAKEDOWN_SOAK=1 runs it;
// TAKEDOWN_SOAK_CONNS sets the number (default 100,000, cut to what
// RLIMIT_NOFILE allows: each connection costs a descriptor on both sides).
func TestSoakIdleConns(t *testing.T) {
	if os.Getenv("TAKEDOWN_SOAK") == "" {
		t.Skip("set TAKEDOWN_SOAK=1")
	}
	want := 100_000
	if s := os.Getenv("TAKEDOWN_SOAK_CONNS"); s != "" {
		want, _ = strconv.Atoi(s)
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	n := min(want, int(lim.Max)-500)
	if n < want {
		t.Logf("RLIMIT_NOFILE hard limit %d: %d connections instead of %d", lim.Max, n, want)
	}
	raiseNoFile(t, uint64(n+500))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "TAKEDOWN_HTTPSINK_SERVE="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "serving on") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q", lines.Text())
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		for lines.Scan() {
			t.Logf("child: %s", lines.Text())
		}
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	rss0 := procStatus(t, pid, "VmRSS")

	start := time.Now()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed int
	const workers, perAddr = 64, 200
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for i := w; i < n; i += workers {
				src := &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/perAddr/250), byte(i/perAddr%250+1))}
				c, err := (&net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}).Dial("tcp", addr)
				if err == nil {
					_, err = c.Write([]byte("GET /gate.php?id=1 HTTP/1.1\r\nHost: conficker-c2-001.example\r\n\r\n"))
				}
				if err == nil {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, err = c.Read(buf)
				}
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					if c != nil {
						c.Close()
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	rss1 := procStatus(t, pid, "VmRSS")
	hwm := procStatus(t, pid, "VmHWM")
	// The steady state: the child collects garbage (pooled buffers, grown
	// stacks) and returns it to the system.
	// Stacks shrink by half per collection: a few of them.
	for range 3 {
		cmd.Process.Signal(syscall.SIGUSR1)
		if !lines.Scan() {
			t.Fatal("child did not report")
		}
		t.Logf("child: %s", lines.Text())
	}
	rss2 := procStatus(t, pid, "VmRSS")
	open := n - failed
	per := float64(rss2-rss0) / float64(open)
	t.Logf("%d idle keep-alive connections (%d failed) opened in %v: server RSS %d MiB before, %d MiB after (peak %d MiB), %d MiB after a GC: %.1f KiB per connection; 100,000 would take about %.0f MiB",
		open, failed, took.Round(time.Millisecond), rss0>>10, rss1>>10, hwm>>10, rss2>>10, per, float64(rss0>>10)+per*100_000/1024)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	if failed > n/100 {
		t.Errorf("%d of %d connections failed", failed, n)
	}
}

// procStatus returns a field of /proc/pid/status in KiB.
func procStatus(t *testing.T, pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
