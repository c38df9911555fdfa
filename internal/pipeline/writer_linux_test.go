package pipeline

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaisedThreadLeavesIdleClass: raising the writer moves its idle
// thread, in the middle of its work, to the normal class, and lowering it
// moves it back.
func TestRaisedThreadLeavesIdleClass(t *testing.T) {
	bg := newBackground()
	defer bg.close()
	policy := make(chan uint32, 1)
	working := make(chan struct{})
	release := make(chan struct{})
	go bg.do(false, func() {
		close(working)
		<-release
		a, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			t.Error(err)
		}
		policy <- a.Policy
	})
	<-working
	if a, err := unix.SchedGetAttr(int(bg.tid.Load()), 0); err != nil || a.Policy != unix.SCHED_IDLE {
		t.Fatalf("the idle thread is not in the idle class (%+v, %v)", a, err)
	}
	if err := bg.setRaised(true); err != nil {
		t.Fatalf("raising the thread: %v (the tests run as root)", err)
	}
	close(release)
	if p := <-policy; p != unix.SCHED_NORMAL {
		t.Fatalf("policy %d while raised, want SCHED_NORMAL", p)
	}
	if err := bg.setRaised(false); err != nil {
		t.Fatal(err)
	}
	if a, err := unix.SchedGetAttr(int(bg.tid.Load()), 0); err != nil || a.Policy != unix.SCHED_IDLE {
		t.Fatalf("after lowering: %+v, %v", a, err)
	}
}
