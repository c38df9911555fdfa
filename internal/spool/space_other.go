//go:build !unix

package spool

import "errors"

// FreeBytes is not known here: the reserve is not kept.
func FreeBytes(string) (int64, error) { return 0, errors.New("free space not known on this system") }
