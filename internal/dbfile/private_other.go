//go:build !unix

package dbfile

// privateFiles does nothing where there is no umask.
func privateFiles() {}
