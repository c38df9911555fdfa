package pipeline

import (
	"log/slog"
	"syscall"
)

// writerNice is the nice value of the store writer's thread.
const writerNice = 19

// lowerPriority lowers the CPU priority of the calling thread, which the
// caller has locked. Linux keeps nice values per thread.
func lowerPriority(log *slog.Logger) {
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), writerNice); err != nil {
		log.Debug("lowering the store writer's priority", "err", err)
	}
}
