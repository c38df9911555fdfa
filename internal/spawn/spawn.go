// Package spawn starts child processes that die with takedown: each
// child is asked to receive SIGKILL when its parent goes (Linux's
// PR_SET_PDEATHSIG, syscall.SysProcAttr.Pdeathsig), so that a
// clickhouse-server or nats-server started by the demo or a test never
// outlives a takedown killed with SIGKILL.
//
// The kernel ties that signal to the thread that forked the child, not to
// the process: a child started from a thread that later ends is killed
// then. takedown ends threads on purpose (package idle locks background
// goroutines to threads of their own for good), and the Go scheduler runs
// a goroutine on any thread. So every start goes through one goroutine
// locked to its thread for the life of the process.
package spawn

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

type request struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	once     sync.Once
	requests chan request
)

// Start starts cmd as cmd.Start does, in a process group of its own (a
// Ctrl-C at the terminal reaches takedown, which stops its children in
// order), and on Linux with SIGKILL as its parent-death signal. It sets
// cmd.SysProcAttr.
func Start(cmd *exec.Cmd) error {
	once.Do(func() {
		requests = make(chan request)
		go forker(requests)
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	setAttr(cmd.SysProcAttr)
	r := request{cmd: cmd, done: make(chan error, 1)}
	requests <- r
	return <-r.done
}

// Forker is the name of the function of the goroutine that forks every
// child, for tests that look for leaked goroutines (goleak's
// IgnoreTopFunction): it lives as long as the process, on purpose.
const Forker = "github.com/takedown-project/takedown/internal/spawn.forker"

func forker(requests <-chan request) {
	runtime.LockOSThread() // never unlocked: this thread lives as long as the process
	for r := range requests {
		r.done <- r.cmd.Start()
	}
}
