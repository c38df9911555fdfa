package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/takedown-project/takedown/internal/users"
)

// update is what a live stream tells the page after the rollup took in
// new events: aggregates only, the same for every role.
type update struct {
	Seq  uint64    `json:"seq"`
	AsOf time.Time `json:"as_of"`
	// Today is the number of unique infected hosts of the UTC day.
	Today int64 `json:"today"`
}

// hub hands updates to the live streams.
type hub struct {
	mu     sync.Mutex
	subs   map[chan update]struct{}
	last   update
	closed bool
	done   chan struct{}
}

func newHub() *hub { return &hub{subs: map[chan update]struct{}{}, done: make(chan struct{})} }

func (h *hub) watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *hub) subscribe() (chan update, update, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, update{}, false
	}
	ch := make(chan update, 1)
	h.subs[ch] = struct{}{}
	return ch, h.last, true
}

func (h *hub) unsubscribe(ch chan update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, ch)
}

// publish sends u to every stream; a stream that has not taken the last
// one gets only the newest.
func (h *hub) publish(u update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u.Seq = h.last.Seq + 1
	h.last = u
	for ch := range h.subs {
		select {
		case <-ch:
		default:
		}
		ch <- u
	}
}

// close ends every stream: serve is stopping.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// liveStream is GET /ui/api/live: server-sent events "update" with the
// JSON of an update, the newest at once, and a comment every 20 s to keep
// proxies from closing the stream.
func (d *Dashboard) liveStream(w http.ResponseWriter, r *http.Request, _ *users.Session) error {
	rc := http.NewResponseController(w)
	ch, last, ok := d.live.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "the server is stopping")
		return nil
	}
	defer d.live.unsubscribe(ch)
	d.refreshSoon()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(u update) error {
		b, _ := json.Marshal(u)
		if _, err := fmt.Fprintf(w, "id: %d\nevent: update\ndata: %s\n\n", u.Seq, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	if last.Seq > 0 {
		if send(last) != nil {
			return nil
		}
	} else if rc.Flush() != nil {
		return nil
	}
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-d.live.done:
			return nil
		case u := <-ch:
			if send(u) != nil {
				return nil
			}
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return nil
			}
		}
	}
}
