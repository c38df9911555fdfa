package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/freeport"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/testnet"
)

// adminRoutes are the patterns of every admin endpoint, read from the
// sources that register them, so that a route added later is tested too:
// the registry API, the dashboard's routes that take the API token, and
// /metrics.
func adminRoutes(t *testing.T) []string {
	t.Helper()
	routes := []string{"GET /metrics"}
	src, err := os.ReadFile("../api/server.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`HandleFunc\("([A-Z]+ /v1/[^"]*)"`).FindAllSubmatch(src, -1) {
		routes = append(routes, string(m[1]))
	}
	dash, err := os.ReadFile("../dashboard/auth.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`pattern: "([A-Z]+ /ui/api/[^"]*)".*bearer: true`).FindAllSubmatch(dash, -1) {
		routes = append(routes, string(m[1]))
	}
	if len(routes) < 30 {
		t.Fatalf("only %d admin routes found in the sources: %v", len(routes), routes)
	}
	return routes
}

// TestPublicListeners: the feed and the dashboard on listeners of their
// own, over TLS with a certificate of a CA made here. curl gets a
// subscriber's events from the feed listener; no admin endpoint answers
// on either public listener, even with the API token; both answer
// /healthz and /readyz; a certificate replaced on disk is served without
// a restart.
func TestPublicListeners(t *testing.T) {
	curl := testnet.Need(t, "curl")[0]
	dir := t.TempDir()
	ca := testnet.NewCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTestFile(t, caFile, ca.CertPEM)
	c1, k1 := ca.Issue(t, "feed.test", nil)
	writeTestFile(t, certFile, c1)
	writeTestFile(t, keyFile, k1)
	ports, err := freeport.Distinct(4)
	if err != nil {
		t.Fatal(err)
	}
	feedPort, dashPort := ports[0], ports[1]
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
api: {listen: "127.0.0.1:%d"}
feed: {listen: "127.0.0.1:%d", tls: {cert_file: %s, key_file: %s}}
dashboard: {listen: "127.0.0.1:%d", tls: {cert_file: %[4]s, key_file: %[5]s}}
dns: {listen: ["127.0.0.1:%[7]d"]}
transfer: {listen: []}
listen: {http: [], https: [], smtp: [], tcp: [], udp: []}
pipeline: {flush_ms: 50}
`, filepath.Join(dir, "data"), ports[2], feedPort, certFile, keyFile, dashPort, ports[3])))
	if err != nil {
		t.Fatal(err)
	}
	seize(t, cfg, "wal", "waledac", "seized.example")
	ctx := context.Background()
	local, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := registry.Change{Actor: "test"}
	if _, err := local.Registry.AddSubscriber(ctx, registry.NewSubscriber{
		Name: "isp", Org: "ISP", Contacts: []string{"abuse@isp.example"}, CIDRs: []string{"192.0.2.0/24"},
	}, ch); err != nil {
		t.Fatal(err)
	}
	key, _, err := local.Registry.AddAPIKey(ctx, "isp", ch)
	if err != nil {
		t.Fatal(err)
	}
	local.Close()
	stop := serveInProcess(t, cfg)
	defer stop()

	tok, _ := ReadToken(cfg.API.TokenFile)
	admin := api.NewClient(cfg.API.Listen, tok, "test")
	since := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	evs := []event.Event{
		{Time: since.Add(time.Minute), Protocol: event.ProtoHTTP, Transport: event.TransportTCP, SrcIP: netip.MustParseAddr("192.0.2.7"), SrcPort: 40000, Domain: "seized.example", HTTPMethod: "POST", HTTPPath: "/x.htm"},
		{Time: since.Add(time.Minute), Protocol: event.ProtoHTTP, Transport: event.TransportTCP, SrcIP: netip.MustParseAddr("198.51.100.9"), SrcPort: 40000, Domain: "seized.example", HTTPMethod: "POST", HTTPPath: "/x.htm"},
	}
	if _, err := admin.Ingest(ctx, "sensor-1", evs); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the events stored", func() bool {
		st, err := admin.Status(ctx)
		return err == nil && st.Store.Events == int64(len(evs))
	})

	// curl, over TLS, trusting the test CA only: the subscriber's events.
	feed := fmt.Sprintf("https://feed.test:%d", feedPort)
	resolve := fmt.Sprintf("feed.test:%d:127.0.0.1", feedPort)
	out, err := exec.Command(curl, "-sS", "--fail-with-body", "--cacert", caFile, "--resolve", resolve,
		"-H", "Authorization: Bearer "+key, feed+"/api/v1/events?since="+since.Format(time.RFC3339)).CombinedOutput()
	if err != nil {
		t.Fatalf("curl the feed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"source.ip":"192.0.2.7"`) || strings.Contains(string(out), "198.51.100.9") {
		t.Fatalf("the feed over TLS does not hold the subscriber's host alone:\n%s", out)
	}
	// The admin API is not there, not even with its token.
	out, err = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile, "--resolve", resolve,
		"-H", "Authorization: Bearer "+tok, feed+"/v1/cases").CombinedOutput()
	if err != nil || string(out) != "404" {
		t.Fatalf("curl %s/v1/cases with the API token: %v %s, want 404", feed, err, out)
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DisableKeepAlives: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	feedURL := fmt.Sprintf("https://127.0.0.1:%d", feedPort)
	dashURL := fmt.Sprintf("https://127.0.0.1:%d", dashPort)
	adminURL := "http://" + cfg.API.Listen
	if code, body := do("GET", adminURL+"/v1/cases", tok); code != 200 {
		t.Fatalf("the admin listener: GET /v1/cases: %d %s", code, body)
	}
	for _, rt := range adminRoutes(t) {
		method, path, _ := strings.Cut(rt, " ")
		path = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(path, "x")
		for _, base := range []string{feedURL, dashURL} {
			code, body := do(method, base+path, tok)
			want := http.StatusNotFound
			if base == dashURL && strings.HasPrefix(path, "/ui/") {
				want = http.StatusUnauthorized // the dashboard's own, without the API token
			}
			if code != want {
				t.Errorf("%s %s%s with the API token: %d %s; want %d", method, base, path, code, body, want)
			}
		}
	}
	for _, base := range []string{feedURL, dashURL} {
		if code, body := do("GET", base+"/healthz", ""); code != 200 {
			t.Errorf("%s/healthz: %d %s", base, code, body)
		}
		testnet.WaitFor(t, base+"/readyz 200", func() bool { code, _ := do("GET", base+"/readyz", ""); return code == 200 })
		if _, body := do("GET", base+"/readyz", ""); strings.Contains(body, "checks") {
			t.Errorf("%s/readyz tells the checks' details: %s", base, body)
		}
	}
	if code, body := do("GET", dashURL+"/ui/login", ""); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("the dashboard's login page: %d %.200s", code, body)
	}
	if code, _ := do("GET", dashURL+"/", ""); code != http.StatusFound {
		t.Errorf("GET / of the dashboard listener: %d, want a redirect to /ui/", code)
	}
	if code, _ := do("GET", feedURL+"/ui/login", ""); code != http.StatusNotFound {
		t.Errorf("the dashboard on the feed listener: %d", code)
	}

	// A renewed certificate is served without a restart.
	c2, k2 := ca.Issue(t, "feed.test", nil)
	writeTestFile(t, keyFile, k2)
	writeTestFile(t, certFile, c2)
	b, _ := pem.Decode(c2)
	want, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{feedPort, dashPort} {
		testnet.WaitFor(t, "the renewed certificate served", func() bool {
			c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool})
			if err != nil {
				return false
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(want.SerialNumber) == 0
		})
	}
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
