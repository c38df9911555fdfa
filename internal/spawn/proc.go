package spawn

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a child process started by Run, watched until it exits.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	err  error         // its exit status, once done
}

// Run starts cmd as Start does and watches it: Done is closed when it
// exits, and exited, if set, is called then with its exit status.
func Run(cmd *exec.Cmd, exited func(err error)) (*Proc, error) {
	if err := Start(cmd); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		if exited != nil {
			exited(p.err)
		}
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop sends sig and waits up to wait for the process to exit. When sig
// is not SIGKILL and the process outlives wait, it is killed (killed
// reports that) and given 10 s more. The error says it did not exit.
func (p *Proc) Stop(sig syscall.Signal, wait time.Duration) (killed bool, err error) {
	_ = p.Cmd.Process.Signal(sig)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.done:
		return false, nil
	case <-t.C:
	}
	if sig == syscall.SIGKILL {
		return false, fmt.Errorf("did not exit %s after SIGKILL", wait)
	}
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.done:
		return true, nil
	case <-time.After(10 * time.Second):
		return true, fmt.Errorf("did not exit after SIGKILL")
	}
}
