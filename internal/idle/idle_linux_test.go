package idle

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRun: f runs in the idle class and the caller's thread keeps the
// normal one.
func TestRun(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var in uint32
	var err error
	p0 := runtime.GOMAXPROCS(0)
	var p1, p2 int
	Run(func() {
		in, err = policy()
		p1 = runtime.GOMAXPROCS(0)
		Run(func() { p2 = runtime.GOMAXPROCS(0) })
	})
	if p1 != p0+1 || p2 != p0+2 || runtime.GOMAXPROCS(0) != p0 {
		t.Errorf("GOMAXPROCS %d, then %d and %d inside one and two Runs, then %d after", p0, p1, p2, runtime.GOMAXPROCS(0))
	}
	if err != nil {
		t.Fatal(err)
	}
	var raised, lowered uint32
	Run(func() {
		if err := Raise(); err != nil {
			t.Errorf("raise: %v", err) // the tests run as root
		}
		raised, _ = policy()
		Lower()
		lowered, _ = policy()
	})
	if raised != unix.SCHED_NORMAL || lowered != unix.SCHED_IDLE {
		t.Errorf("policy %d after Raise, %d after Lower; want %d and %d", raised, lowered, unix.SCHED_NORMAL, unix.SCHED_IDLE)
	}
	if in != unix.SCHED_IDLE {
		t.Errorf("f ran in policy %d, want SCHED_IDLE (%d)", in, unix.SCHED_IDLE)
	}
	if p, err := policy(); err != nil || p != unix.SCHED_NORMAL {
		t.Errorf("the caller's thread is in policy %d (%v), want SCHED_NORMAL", p, err)
	}
}
