//go:build !linux

package spawn

import "syscall"

func setAttr(a *syscall.SysProcAttr) { a.Setpgid = true }
