package httpsink

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// gateRecorder holds every request's event in Record until open is
// closed, and says on entered that one arrived.
type gateRecorder struct {
	memRecorder
	entered chan struct{}
	open    chan struct{}
}

func (g *gateRecorder) Record(e *event.Event) {
	if e.HTTPMethod != "" {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-g.open
	}
	g.memRecorder.Record(e)
}

// TestRecordBeforeAnswer holds the Recorder and checks that no answer
// leaves before it returns, on HTTP/1.1 and on HTTP/2: a bot that got its
// answer may be counted as stored, even when the process dies right after.
func TestRecordBeforeAnswer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		https bool
	}{{"http1", false}, {"h2", true}} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gateRecorder{entered: make(chan struct{}, 1), open: make(chan struct{})}
			ts := startServer(t, func(c *Config) { c.Recorder = g })
			tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
			url := "http://" + ts.http + "/cgi-bin/x"
			if tc.https {
				tr = &http.Transport{Proxy: nil, ForceAttemptHTTP2: true,
					TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "evil-c2.example"}} //nolint:gosec // the sink's own CA
				url = "https://" + ts.https + "/cgi-bin/x"
			}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			type answer struct {
				proto string
				err   error
			}
			got := make(chan answer, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("a=1"))
				req.Host = "evil-c2.example"
				resp, err := cl.Do(req)
				if err != nil {
					got <- answer{err: err}
					return
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				got <- answer{proto: resp.Proto}
			}()
			select {
			case <-g.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the request never reached the Recorder")
			}
			select {
			case a := <-got:
				close(g.open)
				t.Fatalf("answered (%s, %v) while the Recorder still held the event", a.proto, a.err)
			case <-time.After(300 * time.Millisecond):
			}
			close(g.open)
			a := <-got
			if a.err != nil {
				t.Fatal(a.err)
			}
			if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[tc.https]; a.proto != want {
				t.Errorf("answered over %s, want %s", a.proto, want)
			}
			g.waitN(t, 1, func(e *event.Event) bool { return e.HTTPMethod == http.MethodPost })
		})
	}
}
