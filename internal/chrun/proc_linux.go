package chrun

import "syscall"

// sysProcAttr puts each server in a process group of its own (a Ctrl-C
// meant for takedown does not reach it; takedown stops it in its order)
// and has the kernel kill it if takedown dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
