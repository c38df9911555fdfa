// Package procs lends the Go scheduler a P for each thread that holds one
// without keeping a CPU busy.
//
// Two kinds of thread do that in takedown. A background thread in the idle
// CPU class (package idle) keeps the P of the goroutine it runs while the
// kernel holds it back behind the sinks, and the scheduler cannot tell. A
// DNS reader blocked in recvmmsg (package dnssink) keeps its P for up to
// 10 ms before the runtime's monitor takes it back. With one P per CPU,
// two such threads would leave the rest of the program without a P, and
// its goroutines would wait for the monitor. Each one adds a P while it
// lasts, so the others always have one per CPU.
package procs

import (
	"os"
	"runtime"
	"sync"
)

var procs struct {
	sync.Mutex
	base   int // GOMAXPROCS before the first Add
	active int // Ps lent
}

// Add lends n more Ps (n < 0 gives them back). When the last is given
// back, GOMAXPROCS returns to what it was: the runtime's own choice, which
// follows the CPU limit, unless the GOMAXPROCS variable set it.
func Add(n int) {
	procs.Lock()
	defer procs.Unlock()
	if procs.active == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.active += n
	if procs.active > 0 {
		runtime.GOMAXPROCS(procs.base + procs.active)
		return
	}
	procs.active = 0
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.SetDefaultGOMAXPROCS()
	} else {
		runtime.GOMAXPROCS(procs.base)
	}
}

// Base returns GOMAXPROCS without the Ps that Add lent: the number of CPUs
// the program's own goroutines have.
func Base() int {
	procs.Lock()
	defer procs.Unlock()
	return runtime.GOMAXPROCS(0) - procs.active
}
