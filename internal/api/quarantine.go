package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/registry"
)

// Quarantine is what the API needs of the records the store could never
// take (internal/quarantine), for GET /v1/quarantine and
// POST /v1/quarantine/replay.
type Quarantine interface {
	// QuarantineList returns the counts and up to limit entries, oldest
	// first.
	QuarantineList(ctx context.Context, limit int) (QuarantineList, error)
	// ReplayQuarantine hands every entry back to the pipeline; entries
	// that are still not acceptable stay.
	ReplayQuarantine(ctx context.Context) (ReplayResult, error)
}

// QuarantineList is the answer of GET /v1/quarantine.
type QuarantineList struct {
	Summary quarantine.Summary `json:"summary"`
	Entries []quarantine.Entry `json:"entries"`
}

// ReplayResult is the answer of POST /v1/quarantine/replay.
type ReplayResult struct {
	// Replayed entries went back to the pipeline: they are stored, or set
	// aside again if the store still refuses them.
	Replayed int `json:"replayed"`
	// Kept entries are still not acceptable (undecodable, invalid).
	Kept int `json:"kept"`
}

func (h *Handler) listQuarantine(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if h.cfg.Quarantine == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this server keeps no quarantine", nil)
		return nil
	}
	q := r.URL.Query()
	if err := onlyParams(q, "limit"); err != nil {
		return err
	}
	limit, err := intParam(q.Get("limit"), "limit")
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = 100
	}
	out, err := h.cfg.Quarantine.QuarantineList(r.Context(), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) replayQuarantine(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if h.cfg.Quarantine == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this server keeps no quarantine", nil)
		return nil
	}
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	res, err := h.cfg.Quarantine.ReplayQuarantine(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// QuarantineList asks the server for its quarantine.
func (c *Client) QuarantineList(ctx context.Context, limit int) (QuarantineList, error) {
	var out QuarantineList
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	err := c.do(ctx, http.MethodGet, "/v1/quarantine", q, nil, "", &out)
	return out, err
}

// ReplayQuarantine asks the server to replay its quarantine.
func (c *Client) ReplayQuarantine(ctx context.Context) (ReplayResult, error) {
	var out ReplayResult
	err := c.do(ctx, http.MethodPost, "/v1/quarantine/replay", nil, nil, "", &out)
	return out, err
}
