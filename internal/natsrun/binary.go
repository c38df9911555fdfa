package natsrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"time"
)

// EnvBinary and EnvLatestBinary name the environment variables that point
// at nats-server binaries: the one to use (default: nats-server from the
// PATH, else Debian's /usr/sbin/nats-server), and a second, newer release
// that tests run against too (.ci/run builds it).
const (
	EnvBinary       = "TAKEDOWN_NATS_SERVER"
	EnvLatestBinary = "TAKEDOWN_NATS_SERVER_LATEST"
)

// InstallHint says how to get nats-server; errors about a missing binary
// end with it.
const InstallHint = "install nats-server (Debian package nats-server, or go install github.com/nats-io/nats-server/v2@latest), or set " + EnvBinary + " to its path"

// ErrNoBinary is returned (wrapped) when no nats-server can be found.
var ErrNoBinary = errors.New("nats-server not found")

// Binary finds nats-server: $TAKEDOWN_NATS_SERVER if set, else
// nats-server on the PATH, else /usr/sbin/nats-server, where Debian's
// package puts it (outside an ordinary user's PATH).
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return checkBinary(p, EnvBinary)
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nats-server", "/usr/local/sbin/nats-server"} {
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w on the PATH nor in /usr/sbin: %s", ErrNoBinary, InstallHint)
}

// LatestBinary returns $TAKEDOWN_NATS_SERVER_LATEST, "" when it is not
// set, and an error when it is set to something that is not an
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

var versionRE = regexp.MustCompile(`v?(\d+\.\d+\.\d+\S*)`)

// Version runs bin --version and returns its version without the v
// ("2.9.10").
func Version(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("natsrun: %s --version: %v: %s", bin, err, out)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("natsrun: %s --version printed no version: %q", bin, out)
	}
	return string(m[1]), nil
}
