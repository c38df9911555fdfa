package chrun

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// EnvBinary and EnvLatestBinary name the environment variables that point
// at clickhouse-server binaries: the one to use (default: clickhouse-server
// from the PATH, else Debian's /usr/sbin/clickhouse-server), and a second,
// newer release that tests run against too.
const (
	EnvBinary       = "TAKEDOWN_CLICKHOUSE_SERVER"
	EnvLatestBinary = "TAKEDOWN_CLICKHOUSE_SERVER_LATEST"
)

// InstallHint says how to get clickhouse-server; errors about a missing
// binary end with it.
const InstallHint = "apt-get install clickhouse-server (Debian), or set $" + EnvBinary + " to the path of a clickhouse-server binary"

// ErrNoBinary is returned (wrapped) when no clickhouse-server can be found.
var ErrNoBinary = errors.New("clickhouse-server not found")

// Binary finds clickhouse-server: $TAKEDOWN_CLICKHOUSE_SERVER if set, else
// clickhouse-server on the PATH, else /usr/sbin/clickhouse-server, where
// Debian's package puts it (outside an ordinary user's PATH).
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return checkBinary(p, EnvBinary)
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/local/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w on the PATH nor in /usr/sbin: %s", ErrNoBinary, InstallHint)
}

// LatestBinary returns $TAKEDOWN_CLICKHOUSE_SERVER_LATEST, "" when it is
// not set, and an error when it is set to something that is not an
// executable.
func LatestBinary() (string, error) {
	p := os.Getenv(EnvLatestBinary)
	if p == "" {
		return "", nil
	}
	return checkBinary(p, EnvLatestBinary)
}

func checkBinary(p, env string) (string, error) {
	if !isExecutable(p) {
		return "", fmt.Errorf("%w: $%s is %q, which is not an executable file: %s", ErrNoBinary, env, p, InstallHint)
	}
	return p, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
