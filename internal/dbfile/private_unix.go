//go:build unix

package dbfile

import "syscall"

// privateFiles makes the files this process creates from now on its
// owner's only: the process's umask gains 077. DuckDB creates the
// database file, its WAL and its spill directory with mode 0666 less the
// umask, and deletes the WAL at every checkpoint to create it again, so a
// chmod after the fact would not last.
func privateFiles() {
	old := syscall.Umask(0o077)
	syscall.Umask(old | 0o077)
}
