// Package idle runs background work in Linux's SCHED_IDLE CPU class.
//
// The sinks answer bots; everything else that takedown does while they
// answer — storing their events, refreshing the dashboard's rollup,
// building the day's reports — can wait. A thread in the idle class gets
// the CPU only when no thread of the normal class wants it, so under load
// the sinks' threads come first and the background catches up when the
// load eases (the spool holds what the writer has not stored yet).
//
// The class decides who runs next, not how fast a waiting thread gets the
// CPU back: on the benchmark machine (a VM, kernel built with
// PREEMPT_NONE and HZ=250) a busy background thread, idle class or nice
// 19 alike, is often taken off the CPU only at the next 4 ms tick, so the
// sinks' tail latency still grows with background CPU use (BENCHMARKS.md,
// "Background work and latency").
//
// Linux keeps the class per thread and a new thread inherits its creator's,
// so the work runs on a thread of its own that ends with it: no other
// goroutine ever runs in the idle class, and threads that a C library
// starts from it (DuckDB's workers, made when the database is opened)
// stay there. Where the class is not available (other systems, a sandbox
// that refuses it) the work runs at the normal priority.
//
// The class alone is not enough on the benchmark machine either: a busy
// background thread allowed on every CPU still delayed the DNS sinkhole's
// replies (p99 at 20,000 queries/s 0.64 ms for NSD beside one idle-class
// busy loop, 0.24 ms with that loop kept to one CPU). SetBackgroundCPUs
// keeps the idle class to the highest-numbered CPUs (a dedicated sinkhole
// sets pipeline.background_cpus: 1); Raise gives the thread all of them
// back, and Widen all the idle-class threads, for as long as that share is
// taken by other work. By default the class may use every CPU: on a
// machine busy with other work a CPU of its own can starve it.
//
// Each Run also lends the Go scheduler a P while f runs (package procs):
// a thread that the kernel holds back keeps the P of the goroutine it
// runs, and the scheduler cannot tell.
package idle

import (
	"runtime"

	"github.com/takedown-project/takedown/internal/procs"
)

// Run calls f on a thread of its own in the idle class, with a P of its
// own, and returns when f has returned.
func Run(f func()) {
	procs.Add(1)
	defer procs.Add(-1)
	done := make(chan struct{})
	go func() {
		// Never unlocked: a goroutine that ends locked to its thread
		// takes the thread along.
		runtime.LockOSThread()
		defer close(done)
		lower() //nolint:errcheck // without the class, f runs at the normal priority
		f()
	}()
	<-done
}

// Lower puts the calling thread in the idle class; the caller has locked
// its goroutine to the thread (runtime.LockOSThread) for good.
func Lower() error { return lower() }

// SetBackgroundCPUs keeps the idle-class threads started from now on to
// the n highest-numbered CPUs the process may use (0, the default: all of
// them; all of them also when it has no more than n). Call it before the
// first Run.
func SetBackgroundCPUs(n int) { setBackgroundCPUs(n) }

// Widen lets every idle-class thread of the process (DuckDB's workers
// too) run on all the CPUs (true), or keeps them to the background share
// again (false). The share is one CPU on a two-CPU machine, and a machine
// that keeps that CPU busy with other work starves the background: a
// watchdog that sees it make no progress widens it (package pipeline).
func Widen(wide bool) error { return widen(wide) }

// Raise puts the calling thread, which runs in the idle class by Run, back
// in the normal class: for work that can no longer wait, such as a store
// writer whose backlog is filling the spool. Without the privilege to
// (CAP_SYS_NICE, or RLIMIT_NICE) it fails, and the thread stays idle.
func Raise() error { return raise() }

// ThreadID returns the calling thread's id, for RaiseThread and
// LowerThread; the caller has locked its goroutine to the thread.
func ThreadID() int { return threadID() }

// RaiseThread is Raise for another thread of the process, one that runs f
// of Run: its work can no longer wait, and it is in the middle of it.
func RaiseThread(tid int) error { return raiseThread(tid) }

// LowerThread puts thread tid, raised by RaiseThread, back in the idle
// class.
func LowerThread(tid int) error { return lowerThread(tid) }
