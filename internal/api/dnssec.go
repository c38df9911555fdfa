package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/registry"
)

// DNSSEC is what `takedown dnssec` asks of the server: the keys of the
// cases that sign, the DS records for the registries, and the steps of a
// key rollover.
type DNSSEC interface {
	// DNSSECKeys lists the keys of a case ("" for every case), removed
	// ones too.
	DNSSECKeys(ctx context.Context, caseName string) ([]dnssec.Info, error)
	// DNSSECDS lists the DS records of the published keys for the served
	// zones of a case ("" for every case), or for one zone.
	DNSSECDS(ctx context.Context, caseName, zone string) ([]DSRecord, error)
	// DNSSECRollover takes a step of a case's key rollover, or imports
	// its first key.
	DNSSECRollover(ctx context.Context, req RolloverRequest, ch registry.Change) (RolloverResult, error)
}

// DSRecord is the DS record of a key for a zone, as a registry takes it.
type DSRecord struct {
	Case       string       `json:"case"`
	Zone       string       `json:"zone"`
	KeyTag     uint16       `json:"key_tag"`
	Algorithm  uint8        `json:"algorithm"`
	DigestType uint8        `json:"digest_type"`
	Digest     string       `json:"digest"`
	KeyState   dnssec.State `json:"key_state"`
	// Record is the DS in presentation format ("zone. IN DS tag 13 2 …").
	Record string `json:"record"`
}

// RolloverRequest is the body of POST /v1/dnssec/rollover.
type RolloverRequest struct {
	Case string `json:"case"`
	// Step is "start", "finish", or "import" (the case's first key, from
	// PrivateKey).
	Step string `json:"step"`
	// PrivateKey is a private key file (BIND's format, as dnssec-keygen
	// writes it) for import, or for start to roll to that key rather than
	// a new one.
	PrivateKey string `json:"private_key,omitempty"`
	// KeyFile is the name of the file PrivateKey was read from, for the
	// errors that name its lines.
	KeyFile string `json:"key_file,omitempty"`
	// Force finishes before the wait has passed and whatever the parents'
	// DS records.
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// RolloverResult is what a rollover step did.
type RolloverResult struct {
	Case string `json:"case"`
	Step string `json:"step"`
	// Added is the new key (start, import); Removed the old ones
	// (finish).
	Added   *dnssec.Info  `json:"added,omitempty"`
	Removed []dnssec.Info `json:"removed,omitempty"`
	// DS are the DS records the parents should hold now: both keys'
	// after a start, the new key's after a finish.
	DS []DSRecord `json:"ds"`
}

func (h *Handler) dnssecKeys(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if err := onlyParams(r.URL.Query(), "case"); err != nil {
		return err
	}
	ks, err := h.cfg.DNSSEC.DNSSECKeys(r.Context(), r.URL.Query().Get("case"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ks))
	return nil
}

func (h *Handler) dnssecDS(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	q := r.URL.Query()
	if err := onlyParams(q, "case", "zone"); err != nil {
		return err
	}
	ds, err := h.cfg.DNSSEC.DNSSECDS(r.Context(), q.Get("case"), q.Get("zone"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
	return nil
}

func (h *Handler) dnssecRollover(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	var req RolloverRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Case == "" || (req.Step != "start" && req.Step != "finish" && req.Step != "import") {
		return badf("request body: give case, and step start, finish or import")
	}
	ch.Reason = req.Reason
	res, err := h.cfg.DNSSEC.DNSSECRollover(r.Context(), req, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// DNSSECKeys asks the server for the keys of a case.
func (c *Client) DNSSECKeys(ctx context.Context, caseName string) ([]dnssec.Info, error) {
	var out []dnssec.Info
	q := url.Values{}
	if caseName != "" {
		q.Set("case", caseName)
	}
	err := c.do(ctx, http.MethodGet, "/v1/dnssec/keys", q, nil, "", &out)
	return out, err
}

// DNSSECDS asks the server for the DS records of a case's zones.
func (c *Client) DNSSECDS(ctx context.Context, caseName, zone string) ([]DSRecord, error) {
	var out []DSRecord
	q := url.Values{}
	if caseName != "" {
		q.Set("case", caseName)
	}
	if zone != "" {
		q.Set("zone", zone)
	}
	err := c.do(ctx, http.MethodGet, "/v1/dnssec/ds", q, nil, "", &out)
	return out, err
}

// DNSSECRollover asks the server to take a step of a key rollover.
func (c *Client) DNSSECRollover(ctx context.Context, req RolloverRequest, ch registry.Change) (RolloverResult, error) {
	var out RolloverResult
	req.Reason = ch.Reason
	err := c.withActor(ch).postJSON(ctx, "/v1/dnssec/rollover", req, &out)
	return out, err
}
