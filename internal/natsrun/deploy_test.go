package natsrun_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/natsrun"
	"github.com/takedown-project/takedown/internal/natstest"
)

const deployDir = "../../deploy/nats"

var deploySensors = []string{"sensor-1", "sensor-2"}

// deploy/nats/accounts.conf is what RenderDeployAccounts renders: the
// permissions of the deployment cannot drift from those the tests check.
func TestDeployAccountsAreRendered(t *testing.T) {
	got, err := os.ReadFile(filepath.Join(deployDir, "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := natsrun.RenderDeployAccounts(deploySensors...)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("deploy/nats/accounts.conf differs from natsrun.RenderDeployAccounts: run go generate ./internal/natsrun")
	}
}

// nkeys.conf.example names exactly the variables accounts.conf uses.
func TestDeployKeysExample(t *testing.T) {
	f, err := os.Open(filepath.Join(deployDir, "nkeys.conf.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("line %q", line)
		}
		names = append(names, name)
	}
	want := []string{natsrun.VariableName("nkey", "sys")}
	for _, u := range natsrun.DeployUsers(deploySensors...) {
		want = append(want, strings.TrimPrefix(u.NKey, "$"))
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("nkeys.conf.example defines %v, accounts.conf uses %v", names, want)
	}
}

// deployCopy copies deploy/nats into a temporary directory with its
// absolute paths moved there, TLS files and an nkeys.conf with a key for
// each user but skip.
func deployCopy(t *testing.T, skip string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(deployDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/etc/nats/", dir+"/")
		s = strings.ReplaceAll(s, "/var/lib/nats/", dir+"/var/")
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := natsrun.WriteTLS(filepath.Join(dir, "tls"), time.Hour); err != nil {
		t.Fatal(err)
	}
	var keys strings.Builder
	for _, u := range append(slices.Clone(deploySensors), "central", "sys") {
		if u == skip {
			continue
		}
		pub, err := natsrun.WriteNKeyCredential(filepath.Join(dir, u+".creds"))
		if err != nil {
			t.Fatal(err)
		}
		keys.WriteString(natsrun.VariableName("nkey", u) + `: "` + pub + "\"\n")
	}
	if err := os.WriteFile(filepath.Join(dir, natsrun.DeployKeysFile), []byte(keys.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Every node's configuration of deploy/nats passes nats-server's own
// check (-t), on each version, once its files exist; without a user's
// key it does not, so the check reads the accounts too.
func TestDeployConfigsPassNatsServerCheck(t *testing.T) {
	for v, bin := range natstest.Binaries(t) {
		t.Run("nats-"+v, func(t *testing.T) {
			dir := deployCopy(t, "")
			for _, n := range []string{"nats-1.conf", "nats-2.conf", "nats-3.conf"} {
				out, err := exec.Command(bin, "-t", "-c", filepath.Join(dir, n)).CombinedOutput()
				if err != nil {
					t.Errorf("%s -t -c %s: %v\n%s", bin, n, err, out)
				}
			}
			dir = deployCopy(t, "sensor-2")
			out, err := exec.Command(bin, "-t", "-c", filepath.Join(dir, "nats-1.conf")).CombinedOutput()
			if err == nil || !strings.Contains(string(out), natsrun.VariableName("nkey", "sensor-2")) {
				t.Errorf("without sensor-2's key: %v\n%s", err, out)
			}
		})
	}
}
