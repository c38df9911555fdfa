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
		in, err = policy(0)
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
		raised, _ = policy(0)
		Lower()
		lowered, _ = policy(0)
	})
	if raised != unix.SCHED_NORMAL || lowered != unix.SCHED_IDLE {
		t.Errorf("policy %d after Raise, %d after Lower; want %d and %d", raised, lowered, unix.SCHED_NORMAL, unix.SCHED_IDLE)
	}
	if in != unix.SCHED_IDLE {
		t.Errorf("f ran in policy %d, want SCHED_IDLE (%d)", in, unix.SCHED_IDLE)
	}
	if p, err := policy(0); err != nil || p != unix.SCHED_NORMAL {
		t.Errorf("the caller's thread is in policy %d (%v), want SCHED_NORMAL", p, err)
	}
}

// TestRunKeepsToTheBackgroundCPUs: f runs on the last quarter of the CPUs
// (one of two), back on all of them once raised, and the caller's thread
// keeps them all.
func TestRunKeepsToTheBackgroundCPUs(t *testing.T) {
	SetBackgroundCPUs(max(1, runtime.NumCPU()/4))
	defer SetBackgroundCPUs(0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	var in, raised unix.CPUSet
	Run(func() {
		unix.SchedGetaffinity(0, &in)
		Raise()
		unix.SchedGetaffinity(0, &raised)
	})
	want := max(1, all.Count()/4)
	if all.Count() == 1 {
		want = 1
	}
	if in.Count() != want {
		t.Errorf("f ran on %d CPUs of %d, want %d", in.Count(), all.Count(), want)
	}
	for c := range 1024 {
		if in.IsSet(c) && !all.IsSet(c) {
			t.Errorf("f ran on CPU %d, outside the process's set", c)
		}
	}
	if raised != all {
		t.Errorf("raised, f runs on %d CPUs, want all %d", raised.Count(), all.Count())
	}
	var after unix.CPUSet
	unix.SchedGetaffinity(0, &after)
	if after != all {
		t.Errorf("the caller's thread runs on %d CPUs, want all %d", after.Count(), all.Count())
	}
}

func TestBackgroundSet(t *testing.T) {
	set := func(cs ...int) (s unix.CPUSet) {
		for _, c := range cs {
			s.Set(c)
		}
		return s
	}
	for _, c := range []struct {
		all  unix.CPUSet
		n    int
		want unix.CPUSet
	}{
		{set(0), 1, set(0)},
		{set(0, 1), 0, set(0, 1)},
		{set(0, 1), 1, set(1)},
		{set(0, 2, 5), 1, set(5)},
		{set(0, 1, 2, 3, 4, 5, 6, 7), 2, set(6, 7)},
		{set(3, 1000), 1, set(1000)},
		{set(3, 1000), 2, set(3, 1000)},
	} {
		if got := backgroundSet(c.all, c.n); got != c.want {
			t.Errorf("backgroundSet(%d CPUs, %d): got %v, want %v", c.all.Count(), c.n, got, c.want)
		}
	}
}

// TestUnpinnedByDefault: without SetBackgroundCPUs the idle class may
// use every CPU.
func TestUnpinnedByDefault(t *testing.T) {
	var all, in unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	Run(func() { unix.SchedGetaffinity(0, &in) })
	if in != all {
		t.Errorf("f ran on %d CPUs, want all %d", in.Count(), all.Count())
	}
}

// TestWiden: Widen moves a running idle-class thread onto every CPU and
// back to the background share, and a Run begun while widened starts on
// every CPU.
func TestWiden(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skip("one CPU: the background share is all of it")
	}
	SetBackgroundCPUs(1)
	defer SetBackgroundCPUs(0)
	defer Widen(false)
	tid := make(chan int)
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		Run(func() {
			tid <- unix.Gettid()
			<-release
		})
		close(done)
	}()
	id := <-tid
	on := func() int {
		var s unix.CPUSet
		if err := unix.SchedGetaffinity(id, &s); err != nil {
			t.Fatal(err)
		}
		return s.Count()
	}
	bg := on()
	if bg >= all.Count() {
		t.Fatalf("idle thread on %d of %d CPUs before Widen", bg, all.Count())
	}
	if err := Widen(true); err != nil {
		t.Fatal(err)
	}
	if n := on(); n != all.Count() {
		t.Errorf("widened: on %d CPUs, want %d", n, all.Count())
	}
	var fresh unix.CPUSet
	Run(func() { unix.SchedGetaffinity(0, &fresh) })
	if fresh != all {
		t.Errorf("a Run begun while widened runs on %d CPUs, want %d", fresh.Count(), all.Count())
	}
	if err := Widen(false); err != nil {
		t.Fatal(err)
	}
	if n := on(); n != bg {
		t.Errorf("narrowed again: on %d CPUs, want %d", n, bg)
	}
	close(release)
	<-done
}
