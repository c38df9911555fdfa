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
	subs   map[*stream]struct{}
	last   update
	closed bool
	done   chan struct{}
}

// stream is one open live stream: its updates, and what ends it before
// the server stops (its session's logout, a change to its user).
type stream struct {
	ch   chan update
	end  chan struct{}
	sess string // the session's CSRF token: an HMAC of its token, not the token
	user string
}

func newHub() *hub { return &hub{subs: map[*stream]struct{}{}, done: make(chan struct{})} }

func (h *hub) watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// subscribe opens a stream of session s.
func (h *hub) subscribe(s *users.Session) (*stream, update, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, update{}, false
	}
	st := &stream{ch: make(chan update, 1), end: make(chan struct{}), sess: s.CSRF, user: s.User.Name}
	h.subs[st] = struct{}{}
	return st, h.last, true
}

func (h *hub) unsubscribe(st *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, st)
}

// endWhere ends the streams that match: a logout ends its session's, a
// change of a user (role, password, disabled) the user's.
func (h *hub) endWhere(match func(*stream) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for st := range h.subs {
		if match(st) {
			delete(h.subs, st)
			close(st.end)
		}
	}
}

// publish sends u to every stream; a stream that has not taken the last
// one gets only the newest.
func (h *hub) publish(u update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u.Seq = h.last.Seq + 1
	h.last = u
	for st := range h.subs {
		select {
		case <-st.ch:
		default:
		}
		st.ch <- u
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
// proxies from closing the stream. The stream ends with its session: at
// once on its logout or a change to its user, and within streamCheck when
// the session expires otherwise.
func (d *Dashboard) liveStream(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	rc := http.NewResponseController(w)
	st, last, ok := d.live.subscribe(s)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "the server is stopping")
		return nil
	}
	defer d.live.unsubscribe(st)
	var token string
	if c, err := r.Cookie(d.cookieName(r)); err == nil {
		token = c.Value
	}
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
	check := time.NewTicker(d.streamCheck)
	defer check.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-d.live.done:
			return nil
		case <-st.end:
			return nil
		case <-check.C:
			if _, err := d.cfg.Users.Check(r.Context(), token); err != nil {
				return nil // expired, ended or its user disabled
			}
		case u := <-st.ch:
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
