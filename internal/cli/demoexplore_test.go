package cli_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/config"
)

// checkExplore runs, in a shell, every command of the demo's "Explore it"
// as printed (PATH has the takedown binary, as after `go install`): serve
// in the background until its API answers, the others in turn, each to a
// zero exit; then stops serve as `kill %1` would.
func checkExplore(t *testing.T, out, data string) {
	t.Helper()
	_, section, ok := strings.Cut(out, "\nExplore it")
	if !ok {
		t.Fatalf("the demo prints no \"Explore it\":\n%s", out)
	}
	cfgFile := filepath.Join(data, "takedown.yaml")
	if !strings.Contains(section, "(its config: "+cfgFile+")") {
		t.Errorf("Explore it does not name the demo's config %s:\n%s", cfgFile, section)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatalf("the demo's config: %v", err)
	}
	if strings.Contains(section, "not on your PATH") {
		t.Errorf("with takedown on the PATH, the demo says it is not:\n%s", section)
	}
	var serve *exec.Cmd
	exited := make(chan error, 1)
	var logs bytes.Buffer
	ran := 0
	for _, l := range strings.Split(section, "\n")[1:] {
		line := strings.TrimSpace(l)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		shell, _, _ := strings.Cut(line, "#")
		shell = strings.TrimSpace(shell)
		if !strings.HasPrefix(shell, "takedown -c "+cfgFile+" ") && shell != "kill %1" {
			t.Errorf("%q does not call takedown with the demo's config", line)
			continue
		}
		ran++
		switch {
		case strings.HasSuffix(shell, "&"):
			if serve != nil {
				t.Fatalf("two background commands: %q", line)
			}
			serve = exec.Command("sh", "-c", "exec "+strings.TrimSuffix(shell, "&"))
			serve.Stdout, serve.Stderr = &logs, &logs
			if err := serve.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { exited <- serve.Wait() }()
			t.Cleanup(func() { serve.Process.Kill() })
			waitHealthy(t, "http://"+cfg.API.Listen+"/healthz", exited, &logs)
		case shell == "kill %1":
			if serve == nil {
				t.Fatalf("%q before a background command", line)
			}
			serve.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("serve after kill: %v\n%s", err, logs.String())
				}
			case <-time.After(30 * time.Second):
				t.Errorf("serve did not stop on SIGTERM\n%s", logs.String())
			}
		default:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			o, err := exec.CommandContext(ctx, "sh", "-c", shell).CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("%s: %v\n%s", line, err, o)
			} else if len(bytes.TrimSpace(o)) == 0 {
				t.Errorf("%s: printed nothing", line)
			}
		}
	}
	if ran < 5 || serve == nil {
		t.Errorf("ran %d commands of Explore it (serve: %v):\n%s", ran, serve != nil, section)
	}
}

// waitHealthy polls url until it answers 200, the process exits, or 30 s
// pass.
func waitHealthy(t *testing.T, url string, exited chan error, logs *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("serve's API at %s did not answer in 30 s\n%s", url, logs.String())
}

// withBinOnPath puts the test binary's directory first on the PATH, as
// `go install ./cmd/takedown` would.
func withBinOnPath(t *testing.T) {
	t.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// checkDemoCounts: the demo's census names what it counts, and its
// columns add up to the totals it states: callbacks sent, events recorded.
func checkDemoCounts(t *testing.T, out string) {
	t.Helper()
	m := regexp.MustCompile(`([\d,]+) callbacks sent, ([\d,]+) events recorded for them`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo does not say how many callbacks and events:\n%s", out)
	}
	callbacks, events := parseThousands(t, m[1]), parseThousands(t, m[2])
	if events <= callbacks {
		t.Errorf("%d events for %d callbacks: a Waledac callback is two", events, callbacks)
	}
	_, table, _ := strings.Cut(out, m[0])
	lines := strings.Split(table, "\n")
	var head []string
	sums := map[string]int64{}
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case head == nil && len(f) > 0 && f[0] == "FAMILY":
			head = regexp.MustCompile(`\S+(?: [A-Z]+)*`).FindAllString(l, -1)
		case head != nil && len(f) == 0:
			if len(sums) > 0 {
				goto done
			}
		case head != nil:
			for i, col := range head[1:] {
				sums[col] += parseThousands(t, f[i+1])
			}
		}
	}
done:
	if sums["TRUTH CALLBACKS"] != callbacks || sums["TRUTH EVENTS"] != events || sums["EVENTS"] != events {
		t.Errorf("the census columns sum to %v; the demo says %d callbacks, %d events:\n%s", sums, callbacks, events, out)
	}
	// The store counts events; only the simulator knows callbacks.
	if regexp.MustCompile(`(?m)(^|  )CALLBACKS\b`).MatchString(out) {
		t.Errorf("a CALLBACKS column of the store's counts (its events):\n%s", out)
	}
}

func parseThousands(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
	if err != nil {
		t.Fatalf("not a count: %q", s)
	}
	return n
}
