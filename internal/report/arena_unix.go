//go:build unix

package report

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapRows returns room for n rows outside the Go heap, in anonymous
// memory of its own, and the function that gives it back. Rows hold no
// pointers, so the garbage collector need not see them: a table of
// millions of rows then neither counts towards the heap that paces the
// collector (which would let as much garbage pile up again beside it) nor
// is copied when it grows.
func mapRows(n int) ([]row, func()) {
	size := n * int(unsafe.Sizeof(row{}))
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return make([]row, 0, n), func() {}
	}
	return unsafe.Slice((*row)(unsafe.Pointer(unsafe.SliceData(b))), n)[:0], func() { unix.Munmap(b) }
}
