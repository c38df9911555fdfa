package spawn

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestChildOutlivesThreads starts a child and then ends many threads, as
// takedown does (a goroutine that locks its thread and returns ends the
// thread), one of which is likely the thread the caller ran on: the child
// must live on, since spawn forked it from a thread that never ends.
func TestChildOutlivesThreads(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := Start(cmd); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck
		<-exited
	})
	for range 20 {
		var wg sync.WaitGroup
		for range 2 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // not unlocked: the thread ends with this goroutine
				time.Sleep(time.Millisecond)
			}()
		}
		wg.Wait()
	}
	select {
	case err := <-exited:
		t.Fatalf("the child died when threads of takedown ended: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if runtime.GOOS == "linux" && cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL {
		t.Error("no parent-death signal set")
	}
}

// TestStop: a child that obeys SIGTERM exits; one that ignores it is
// killed after the wait, and says so.
func TestStop(t *testing.T) {
	exited := make(chan error, 1)
	p, err := Run(exec.Command("sleep", "30"), func(err error) { exited <- err })
	if err != nil {
		t.Fatal(err)
	}
	if killed, err := p.Stop(syscall.SIGTERM, 5*time.Second); killed || err != nil {
		t.Errorf("sleep under SIGTERM: killed %v, err %v", killed, err)
	}
	if err := <-exited; err == nil {
		t.Error("the exit callback saw no signal status")
	}
	p, err = Run(exec.Command("sh", "-c", `trap "" TERM; exec sleep 30`), nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the shell set its trap
	if killed, err := p.Stop(syscall.SIGTERM, 200*time.Millisecond); !killed || err != nil {
		t.Errorf("a child that ignores SIGTERM: killed %v, err %v", killed, err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done is not closed after Stop")
	}
}
