package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// todayHosts returns the unique hosts of today per family that status
// --json shows, and the events the pipeline stored.
func todayHosts(t *testing.T, cfg string) (map[string]uint64, uint64) {
	t.Helper()
	var st struct {
		Pipeline struct{ Stored uint64 }
		Today    []struct {
			Family string
			Hosts  uint64
		}
	}
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, u := range st.Today {
		out[u.Family] = u.Hosts
	}
	return out, st.Pipeline.Stored
}

// TestStatusTodayAfterRestart: "unique hosts today" of status counts the
// hosts that the previous run stored, not only those since the start.
func TestStatusTodayAfterRestart(t *testing.T) {
	cfg, dataDir, addr := setup(t)
	stop := startServer(t, cfg, addr)
	tok, err := os.ReadFile(filepath.Join(dataDir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	now := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	for i, c := range []struct{ ip, family string }{
		{"198.51.100.1", "waledac"}, {"198.51.100.2", "waledac"}, {"198.51.100.2", "waledac"},
		{"198.51.100.3", "waledac"}, {"203.0.113.9", ""},
	} {
		fmt.Fprintf(&body, `{"time.source":%q,"source.ip":%q,"source.port":%d,"protocol.application":"http","malware.name":%q}`+"\n", now, c.ip, 40000+i, c.family)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/ingest?sensor=s1", strings.NewReader(body.String()))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ingest: %s", resp.Status)
	}
	// Four hosts (the server's rules name their family).
	var want map[string]uint64
	var stored uint64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if want, stored = todayHosts(t, cfg); stored == 5 && sum(want) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("before the restart: %d stored, today %v; want 5 events of 4 hosts", stored, want)
		}
	}
	stop()
	var got map[string]uint64

	startServer(t, cfg, addr)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, _ = todayHosts(t, cfg); fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: today %v; want %v as before", got, want)
		}
	}
}

func sum(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}
