// Package testnet holds what the tests that start real servers and daemons
// on loopback share: a port free for both UDP and TCP, a buffer a daemon
// can write its log to while the test reads it, and an Exim relay with a
// Maildir and a test certificate authority (StartExim).
package testnet

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/freeport"
)

// FreePort returns a port of 127.0.0.1 that was free for both UDP and TCP,
// from below the ephemeral range (freeport.Loopback).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Buffer is a bytes.Buffer safe for one writer and concurrent readers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NSDConfig returns an nsd.conf for NSD running unprivileged in the
// foreground with all its files in dir, listening on 127.0.0.1:port, with
// one hmac-sha256 TSIG key and the given zone: clauses.
func NSDConfig(dir string, port int, keyName, secret, zones string) string {
	return fmt.Sprintf(`server:
	ip-address: 127.0.0.1@%[2]d
	do-ip6: no
	username: ""
	chroot: ""
	zonesdir: "%[1]s"
	database: ""
	zonelistfile: "%[1]s/zone.list"
	xfrdfile: "%[1]s/xfrd.state"
	xfrdir: "%[1]s/xfr"
	pidfile: "%[1]s/nsd.pid"
	verbosity: 2
	server-count: 1
remote-control:
	control-enable: no
key:
	name: "%[3]s"
	algorithm: hmac-sha256
	secret: "%[4]s"
%[5]s`, dir, port, keyName, secret, zones)
}

// debianPackage names the Debian package of the tools the tests run.
var debianPackage = map[string]string{
	"curl": "curl", "openssl": "openssl", "nc": "netcat-openbsd", "socat": "socat", "swaks": "swaks",
	"mmdblookup": "mmdb-bin", "dig": "bind9-dnsutils", "kdig": "knot-dnsutils",
}

// Need returns the paths of tools, and fails the test when one is missing:
// the tests use real clients, and .ci/run installs them.
func Need(t testing.TB, tools ...string) []string {
	t.Helper()
	paths := make([]string, len(tools))
	for i, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s is not installed (Debian package %s; .ci/run installs it)", tool, debianPackage[tool])
		}
		paths[i] = p
	}
	return paths
}

// WaitFor polls cond until it holds, failing the test when ten seconds
// pass first.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// turn keeps the lock file of Turn open (and so locked) for the life of
// the test process.
var turn *os.File

// Turn waits until no other test process of the repository holds the
// turn of the load-heavy packages, then takes it until this process ends:
// call it first in the TestMain of a package whose tests load every CPU
// (a simulated botnet, a browser, a serve under kill -9, busy threads).
// `go test ./...` runs two packages at once on two CPUs; two such
// packages side by side starved each other's timing-bound waits, while
// the light packages can share the machine with either. The lock is an
// flock(2) of a file in the temporary directory, released by the kernel
// when the process exits, however it exits.
func Turn() {
	path := filepath.Join(os.TempDir(), "takedown-test-turn.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testnet: the turn of load-heavy tests: %v (running anyway)\n", err)
		return
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		fmt.Fprintf(os.Stderr, "testnet: the turn of load-heavy tests: %v (running anyway)\n", err)
	}
	turn = f
}
