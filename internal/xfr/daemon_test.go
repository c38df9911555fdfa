package xfr

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/takedown-project/takedown/internal/spawn"
	"github.com/takedown-project/takedown/internal/testnet"
)

// Helpers for the tests that run real DNS daemons (BIND, Unbound, NSD) as
// child processes on loopback high ports.

// needBinary finds a daemon or fails the test with the package to install.
func needBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s not found: install it with `apt-get install %s`", name, pkg)
	return ""
}

// daemon is a DNS server running in the foreground as a child process.
type daemon struct {
	name string
	out  *testnet.Buffer
	done chan struct{}
	err  error
}

// startDaemon runs bin with args; Cleanup kills it, and prints its output
// when the test failed.
func startDaemon(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: filepath.Base(bin), out: &testnet.Buffer{}, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	// In a process group of its own, dying with the test binary.
	if err := spawn.Start(cmd); err != nil {
		t.Fatalf("starting %s: %v", d.name, err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("%s output:\n%s", d.name, d.out.String())
		}
	})
	return d
}

// exited reports the daemon's exit as an error.
func (d *daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited: %v", d.name, d.err)
	default:
		return nil
	}
}

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, d *daemon, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if d != nil {
			if e := d.exited(); e != nil {
				t.Fatalf("waiting for %s: %v", what, e)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// ask sends one query over UDP, with RD set when recurse.
func ask(addr, name string, qtype uint16, recurse bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = recurse
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// allOf returns a condition that holds when every one of conds does.
func allOf(conds ...func() error) func() error {
	return func() error {
		for _, c := range conds {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}
}

// expectAnswer is a poll condition: name resolves through addr with rcode
// and, for NOERROR, exactly the addresses in want.
func expectAnswer(addr, name string, qtype uint16, rcode int, want ...string) func() error {
	return func() error {
		r, err := ask(addr, name, qtype, true)
		if err != nil {
			return err
		}
		if r.Rcode != rcode {
			return fmt.Errorf("%s %s: %s, want %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode], dns.RcodeToString[rcode])
		}
		var got []string
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				got = append(got, rr.A.String())
			case *dns.AAAA:
				got = append(got, rr.AAAA.String())
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("%s %s: %v, want %v", name, dns.TypeToString[qtype], got, want)
		}
		return nil
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func shutdownCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// notRewritten checks that a name outside the feed is not rewritten: the
// resolver tries its (closed) forwarder and fails or times out.
func notRewritten(addr, name string) error {
	r, err := ask(addr, name, dns.TypeA, true)
	if err != nil {
		return nil // still trying the closed forwarder
	}
	if r.Rcode == dns.RcodeNameError || len(r.Answer) > 0 {
		return fmt.Errorf("%s not in the feed but rewritten: %s %v", name, dns.RcodeToString[r.Rcode], r.Answer)
	}
	return nil
}
