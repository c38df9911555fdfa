package spool

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKill9 runs a writer in a child process (this test binary again),
// kills it with SIGKILL while it appends, and reopens its spool: the
// records are a gapless prefix holding at least every record the child
// had flushed, and at most the torn end of a segment is damaged.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("SPOOL_KILL9_DIR"); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "SPOOL_KILL9_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	flushed := 0
	lines := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for flushed < 30000 && lines.Scan() {
		if n, ok := strings.CutPrefix(lines.Text(), "flushed "); ok {
			flushed, _ = strconv.Atoi(n)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if flushed == 0 {
		t.Fatal("the child flushed nothing")
	}

	var dm damages
	s := open(t, Config{Dir: dir, OnDamage: dm.add})
	r, err := s.NewReader(Pos{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs, _ := drain(t, r)
	checkSequence(t, recs, 0, 0)
	if len(recs) < flushed {
		t.Fatalf("%d records after the kill, %d were flushed", len(recs), flushed)
	}
	for _, d := range dm.list() {
		fi, err := os.Stat(d.File)
		if err != nil || d.Offset+d.Length != fi.Size() {
			t.Errorf("damage %v is not a torn tail", d)
		}
	}
	t.Logf("killed after %d flushed records: %d recovered, damage %v", flushed, len(recs), dm.list())
}

// killChild appends numbered records until it is killed, flushing and
// reporting every 1000.
func killChild(dir string) {
	s, err := Open(Config{Dir: dir, SegmentBytes: 256 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		if err := s.Append(payload(0, i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if (i+1)%1000 == 0 {
			if err := s.Flush(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			fmt.Printf("flushed %d\n", i+1)
		}
	}
}
