//go:build !linux

package cli

import (
	"errors"
	"os"
)

// isTerminal is false where echo cannot be turned off here: the password
// then comes from standard input or --password-file.
func isTerminal(f *os.File) bool { return false }

func readNoEcho(f *os.File) ([]byte, error) {
	return nil, errors.New("no password prompt on this system: use --password-file")
}
