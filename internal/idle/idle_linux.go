package idle

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// allCPUs is the CPUs the process was started with.
var allCPUs = sync.OnceValue(func() unix.CPUSet {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		all.Zero()
		for c := range 1024 {
			all.Set(c)
		}
	}
	return all
})

// keep is the number of CPUs the idle class keeps to; 0: all of them.
var keep atomic.Int32

func setBackgroundCPUs(n int) { keep.Store(int32(max(0, n))) }

// backgroundSet is the n highest-numbered CPUs of all (a CPUSet holds 0
// to 1023); all of them when it has no more than n.
func backgroundSet(all unix.CPUSet, n int) unix.CPUSet {
	if n <= 0 || all.Count() <= n {
		return all
	}
	var bg unix.CPUSet
	for c := 1023; c >= 0 && n > 0; c-- {
		if all.IsSet(c) {
			bg.Set(c)
			n--
		}
	}
	return bg
}

func raise() error { return raiseThread(0) }

func raiseThread(tid int) error {
	if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0); err != nil {
		return err
	}
	all := allCPUs()
	unix.SchedSetaffinity(tid, &all) //nolint:errcheck // the class is what matters; the CPUs are a refinement
	return nil
}

func threadID() int { return unix.Gettid() }

// widened is set while the idle class may use every CPU (Widen).
var widened atomic.Bool

// idleSet is the CPUs the idle class runs on now.
func idleSet() unix.CPUSet {
	all := allCPUs()
	if widened.Load() {
		return all
	}
	return backgroundSet(all, int(keep.Load()))
}

func widen(wide bool) error {
	widened.Store(wide)
	if keep.Load() == 0 {
		return nil // the idle class may use every CPU anyway
	}
	set := idleSet()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if p, err := policy(tid); err == nil && p == unix.SCHED_IDLE {
			unix.SchedSetaffinity(tid, &set) //nolint:errcheck // the thread may have ended
		}
	}
	return nil
}

func lower() error { return lowerThread(0) }

func lowerThread(tid int) error {
	bg := idleSet()
	unix.SchedSetaffinity(tid, &bg) //nolint:errcheck // as in raise
	return unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0)
}

// policy returns the scheduling policy of thread tid (0: the calling
// thread).
func policy(tid int) (uint32, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, err
	}
	return a.Policy, nil
}
