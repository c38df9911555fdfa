// Package packaging holds the Debian package's description (nfpm.yaml),
// its maintainer scripts and build-deb.sh; its test builds the package
// twice, compares the bytes, and installs it with dpkg.
package packaging_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// build runs build-deb.sh into a new directory and returns the package.
func build(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("bash", "build-deb.sh", t.TempDir())
	if n := os.Getenv("TAKEDOWN_NFPM"); n != "" {
		cmd.Env = append(os.Environ(), "NFPM="+n)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// maxVersion returns the highest PREFIX_x.y.z that objdump -T lists.
func maxVersion(t *testing.T, dyn, prefix string) []int {
	var best []int
	for _, m := range regexp.MustCompile(prefix+`_([0-9.]+)`).FindAllStringSubmatch(dyn, -1) {
		var v []int
		for _, p := range strings.Split(m[1], ".") {
			n, _ := strconv.Atoi(p)
			v = append(v, n)
		}
		if less(best, v) {
			best = v
		}
	}
	return best
}

func less(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test installs the package with dpkg -i: run it as root, as CI does")
	}
	deb := build(t)
	again := build(t)
	a, _ := os.ReadFile(deb)
	b, _ := os.ReadFile(again)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("two builds of the same commit differ: %d and %d bytes", len(a), len(b))
	}

	// What the package holds and declares.
	list := sh(t, "dpkg-deb", "--contents", deb)
	for _, want := range []string{"./usr/bin/takedown", "./lib/systemd/system/takedown.service", "./etc/takedown/takedown.yaml",
		"./var/lib/takedown/", "./usr/share/bash-completion/completions/takedown", "./usr/share/zsh/vendor-completions/_takedown",
		"./usr/share/fish/vendor_completions.d/takedown.fish"} {
		if !strings.Contains(list, want) {
			t.Errorf("package lacks %s:\n%s", want, list)
		}
	}
	ctl := t.TempDir()
	sh(t, "dpkg-deb", "--control", deb, ctl)
	if cf, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); !strings.Contains(string(cf), "/etc/takedown/takedown.yaml") {
		t.Errorf("conffiles: %q, want /etc/takedown/takedown.yaml", cf)
	}
	version := strings.TrimSpace(sh(t, "dpkg-deb", "--field", deb, "Version"))

	// The binary asks for no newer glibc and libstdc++ than the package
	// depends on (and the README states).
	root := t.TempDir()
	sh(t, "dpkg-deb", "-x", deb, root)
	dyn := sh(t, "objdump", "-T", filepath.Join(root, "usr/bin/takedown"))
	for _, c := range []struct {
		prefix string
		max    []int
	}{{"GLIBC", []int{2, 34}}, {"GLIBCXX", []int{3, 4, 30}}, {"CXXABI", []int{1, 3, 13}}} {
		if got := maxVersion(t, dyn, c.prefix); less(c.max, got) {
			t.Errorf("the binary needs %s_%v, newer than the floor %v the package and README state", c.prefix, got, c.max)
		}
	}

	// Install, run, remove.
	hadUser := exec.Command("getent", "passwd", "takedown").Run() == nil
	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", "takedown").Run()
		if !hadUser {
			exec.Command("deluser", "--system", "takedown").Run()
			exec.Command("delgroup", "--system", "takedown").Run()
		}
	})
	sh(t, "dpkg", "-i", deb)
	sh(t, "getent", "passwd", "takedown")
	if st := sh(t, "stat", "-c", "%U:%G %a", "/var/lib/takedown", "/etc/takedown/takedown.yaml"); st != "takedown:takedown 700\nroot:takedown 640\n" {
		t.Errorf("owners and modes:\n%s", st)
	}
	bin := "/usr/bin/takedown"
	v, err := exec.Command(bin, "version").CombinedOutput()
	switch {
	case err != nil && strings.Contains(string(v), `unknown command "version"`):
		// Before `takedown version` exists (branch i22-cli), the binary
		// at least runs.
		sh(t, bin, "--help")
	case err != nil:
		t.Errorf("takedown version: %v\n%s", err, v)
	case !strings.Contains(string(v), version):
		t.Errorf("takedown version says %q, the package is %s", v, version)
	}
	if out := sh(t, bin, "config", "check", "/etc/takedown/takedown.yaml"); !strings.Contains(out, "ok") {
		t.Errorf("config check of the shipped file: %s", out)
	}
	sh(t, "dpkg", "-r", "takedown")
	if _, err := os.Stat(bin); err == nil {
		t.Errorf("%s is still there after dpkg -r", bin)
	}
	if _, err := os.Stat("/etc/takedown/takedown.yaml"); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
}
