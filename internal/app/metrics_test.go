package app

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/testnet"
)

// getMetrics asks the API at addr for /metrics with the token in
// tokenFile.
func getMetrics(c *http.Client, addr, tokenFile string) (*http.Response, error) {
	tok, err := ReadToken(tokenFile)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return c.Do(req)
}

// getAuth returns the status and body of GET url, with the bearer token tok
// unless it is empty.
func getAuth(t *testing.T, url, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestMetricsWhere: without metrics.listen, /metrics is on the API and
// needs its token as every call but /healthz does; with it, /metrics is
// there alone and without a token, and the API no longer has it.
func TestMetricsWhere(t *testing.T) {
	const base = "api: {listen: \"127.0.0.1:0\"}\ndns: {listen: []}\ntransfer: {listen: []}\nlisten: {http: [], https: [], smtp: []}\n"
	load := func(t *testing.T, extra string) config.Config {
		cfg, err := config.Parse("test.yaml", []byte("data_dir: "+filepath.Join(t.TempDir(), "data")+"\n"+base+extra))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	t.Run("on the API, with the token", func(t *testing.T) {
		cfg := load(t, "")
		s := serveLogged(t, cfg, Hooks{})
		tok, err := ReadToken(cfg.API.TokenFile)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := getAuth(t, "http://"+s.api+"/metrics", ""); code != http.StatusUnauthorized || !strings.Contains(body, "bearer token") {
			t.Errorf("GET /metrics without the token: %d %s, want 401 naming the token", code, body)
		}
		if code, body := getAuth(t, "http://"+s.api+"/metrics", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET /metrics with a wrong token: %d %s, want 401", code, body)
		}
		if code, body := getAuth(t, "http://"+s.api+"/metrics", tok); code != http.StatusOK || !strings.Contains(body, "\ntakedown_spool_max_bytes ") {
			t.Errorf("GET /metrics with the token: %d, want 200 with takedown_spool_max_bytes:\n%.500s", code, body)
		}
		if code, _ := getAuth(t, "http://"+s.api+"/healthz", ""); code != http.StatusOK {
			t.Errorf("GET /healthz without the token: %d, want 200", code)
		}
	})
	t.Run("on metrics.listen, alone", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t))
		cfg := load(t, "metrics: {listen: \""+addr+"\"}\n")
		s := serveLogged(t, cfg, Hooks{})
		tok, err := ReadToken(cfg.API.TokenFile)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := getAuth(t, "http://"+addr+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "\ntakedown_spool_max_bytes ") {
			t.Errorf("GET /metrics on metrics.listen: %d, want 200 with takedown_spool_max_bytes:\n%.500s", code, body)
		}
		for _, path := range []string{"/v1/status", "/v1/cases", "/healthz", "/ui/"} {
			if code, _ := getAuth(t, "http://"+addr+path, tok); code != http.StatusNotFound {
				t.Errorf("GET %s on metrics.listen: %d, want 404: only /metrics is served there", path, code)
			}
		}
		if code, body := getAuth(t, "http://"+s.api+"/metrics", tok); code != http.StatusNotFound {
			t.Errorf("GET /metrics on the API beside metrics.listen: %d %s, want 404", code, body)
		}
		s.stop(t)
		if !strings.Contains(s.logs.String(), `"msg":"metrics stopped"`) {
			t.Errorf("no \"metrics stopped\" in the log:\n%s", s.logs)
		}
	})
}
