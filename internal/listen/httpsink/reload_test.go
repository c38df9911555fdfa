package httpsink

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

func rulesFor(family string) string {
	return strings.ReplaceAll(`
rules:
  - name: gate
    family: FAMILY
    match:
      protocol: http
      path: '^/gate\.php'
    response:
      status: 200
      content_type: text/plain
      body: "FAMILY"
`, "FAMILY", family)
}

// TestReloadUnderLoad rewrites the rules file while clients keep asking:
// no request fails, and every request sent after a reload returned shows
// the new family (in its event and its response).
func TestReloadUnderLoad(t *testing.T) {
	h, write := holder(t, rulesFor("fam0"))
	ts := startServer(t, func(c *Config) { c.Classifier = h; c.HTTPS = nil })
	var gen atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	const workers = 4
	var done [workers]atomic.Int64 // requests completed, per worker
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				g := gen.Load()
				resp, err := c.Get(fmt.Sprintf("http://%s/gate.php?gen=%d&w=%d&i=%d", ts.http, g, w, i))
				sent.Add(1)
				done[w].Add(1)
				if err != nil {
					failed.Add(1)
					t.Errorf("request: %v", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("status %s", resp.Status)
				}
				if want := fmt.Sprintf("fam%d", g); string(body) != want && string(body) != fmt.Sprintf("fam%d", g+1) {
					t.Errorf("gen %d: body %q", g, body)
				}
			}
		}()
	}
	for g := int64(1); g <= 5; g++ {
		before := sent.Load()
		waitFor(5*time.Second, func() bool { return sent.Load() > before+50 })
		write(rulesFor(fmt.Sprintf("fam%d", g)))
		if err := h.Reload(); err != nil {
			t.Fatal(err)
		}
		gen.Store(g)
		// Before the next reload every worker finishes the request it
		// began under an older generation: no request sees two reloads.
		var seen [workers]int64
		for w := range done {
			seen[w] = done[w].Load()
		}
		waitFor(5*time.Second, func() bool {
			for w := range done {
				if done[w].Load() <= seen[w] {
					return false
				}
			}
			return true
		})
	}
	before := sent.Load()
	waitFor(5*time.Second, func() bool { return sent.Load() > before+50 })
	close(stop)
	wg.Wait()
	n := int(sent.Load())
	evs := ts.rec.waitN(t, n, func(e *event.Event) bool { return strings.HasPrefix(e.HTTPPath, "/gate.php") })
	for _, e := range evs {
		var g, w, i int
		fmt.Sscanf(e.HTTPPath, "/gate.php?gen=%d&w=%d&i=%d", &g, &w, &i)
		if e.Family != fmt.Sprintf("fam%d", g) && e.Family != fmt.Sprintf("fam%d", g+1) {
			t.Errorf("request of generation %d classified %q", g, e.Family)
		}
	}
	t.Logf("%d requests during 5 reloads, %d failed", n, failed.Load())
}
