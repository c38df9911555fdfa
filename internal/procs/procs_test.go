package procs

import (
	"runtime"
	"testing"
)

func TestAdd(t *testing.T) {
	p0 := runtime.GOMAXPROCS(0)
	Add(1)
	p1 := runtime.GOMAXPROCS(0)
	Add(2)
	p3 := runtime.GOMAXPROCS(0)
	Add(-1)
	p2 := runtime.GOMAXPROCS(0)
	Add(-2)
	if p1 != p0+1 || p3 != p0+3 || p2 != p0+2 || runtime.GOMAXPROCS(0) != p0 {
		t.Errorf("GOMAXPROCS %d, then %d, %d and %d while lending 1, 3 and 2, then %d", p0, p1, p3, p2, runtime.GOMAXPROCS(0))
	}
}
