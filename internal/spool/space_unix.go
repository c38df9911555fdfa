//go:build unix

package spool

import "golang.org/x/sys/unix"

// FreeBytes returns the bytes an unprivileged process may still write to
// the filesystem of dir.
func FreeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:unconvert // the field types differ by platform
}
