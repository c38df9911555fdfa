// Package api serves takedown's JSON HTTP API — the registry of cases,
// orders, domains and subscribers, the audit log and the event statistics —
// and holds the client that the CLI uses while `takedown serve` owns the
// database.
//
// Every request but /healthz carries the bearer token; the actor named in the
// X-Takedown-Actor header goes into the audit log. Errors come back as
// {"error": "...", "kind": "...", "problems": [...]} with a 4xx status for
// bad input, so that the CLI prints the same message in both modes.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/jsonbody"
	"github.com/takedown-project/takedown/internal/registry"
)

// Registry is what the API needs of the case and domain registry.
type Registry interface {
	AddCase(ctx context.Context, c registry.NewCase, ch registry.Change) (registry.Case, error)
	ListCases(ctx context.Context) ([]registry.Case, error)
	GetCase(ctx context.Context, name string) (registry.Case, error)
	AddOrder(ctx context.Context, caseName string, o registry.NewOrder, ch registry.Change) (registry.Order, error)
	ImportDomains(ctx context.Context, caseName, file string, data []byte, ch registry.Change) (registry.ImportResult, error)
	ListDomains(ctx context.Context, f registry.DomainFilter) ([]registry.Domain, error)
	GetDomain(ctx context.Context, name string) (registry.Domain, error)
	SetState(ctx context.Context, names []string, to registry.State, ch registry.Change) ([]registry.Domain, error)
	Deadlines(ctx context.Context, now time.Time, within time.Duration) ([]registry.Deadline, error)
	Packages(ctx context.Context, caseName string) ([]registry.Package, error)
	Audit(ctx context.Context, f registry.AuditFilter) ([]registry.AuditEntry, error)
	VerifyAuditHead(ctx context.Context, pin registry.AuditHead) (registry.AuditHead, error)
	RecordDelegation(ctx context.Context, checks []registry.DelegationCheck, ch registry.Change) error
	Subscribers
}

// Events is what the API needs of the event store.
type Events interface {
	UniqueHosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error)
	CallbacksPerHour(ctx context.Context, q eventstore.HourQuery) ([]eventstore.HourCount, error)
}

// Config configures the API handler.
type Config struct {
	Registry Registry
	// Events may be nil: the statistics endpoints then answer 503.
	Events Events
	// Status, if set, describes the running server for GET /v1/status.
	Status func(ctx context.Context) (Status, error)
	// Ingest, if set, records the events that sensors send to
	// POST /v1/ingest.
	Ingest IngestFunc
	// Quarantine, if set, lists and replays the records that the store
	// could never take; without it /v1/quarantine answers 503.
	Quarantine Quarantine
	// Reports, if set, makes, mails and measures the subscribers'
	// reports for /v1/reports, /v1/deliveries and /v1/trend; without it
	// they answer 503.
	Reports Reports
	// DNSSEC, if set, lists the keys and DS records and rolls the keys
	// for /v1/dnssec/…; without it they answer 503.
	DNSSEC DNSSEC
	// Sensor makes the API of a serve with no registry and no store (a
	// sensor): only /healthz and /v1/status answer, and every other
	// endpoint says to ask the central.
	Sensor bool
	// Token is the bearer token every request but /healthz must carry.
	Token string
	// Metrics, if set, answers GET /metrics (Prometheus's text format),
	// behind the token like every other call; a sensor's API too.
	Metrics http.Handler
	// Logger receives one line per failed request; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// maxBody caps request bodies: a domain list of a million names fits.
const maxBody = 64 << 20

// Handler is the API's http.Handler.
type Handler struct {
	cfg Config
	mux *http.ServeMux
	log *slog.Logger
	now func() time.Time
}

// New returns the API handler.
func New(cfg Config) *Handler {
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	m := h.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if cfg.Metrics != nil {
		m.HandleFunc("GET /metrics", h.auth(func(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
			cfg.Metrics.ServeHTTP(w, r)
			return nil
		}))
	}
	if cfg.Sensor {
		m.HandleFunc("GET /v1/status", h.auth(h.status))
		m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "sensor", fmt.Sprintf("%s %s: this serve is a sensor, with no registry and no store; ask the central", r.Method, r.URL.Path), nil)
		})
		return h
	}
	m.HandleFunc("GET /v1/cases", h.auth(h.listCases))
	m.HandleFunc("POST /v1/cases", h.auth(h.addCase))
	m.HandleFunc("GET /v1/cases/{case}", h.auth(h.getCase))
	m.HandleFunc("POST /v1/cases/{case}/orders", h.auth(h.addOrder))
	m.HandleFunc("POST /v1/cases/{case}/domains", h.auth(h.importDomains))
	m.HandleFunc("GET /v1/cases/{case}/packages", h.auth(h.packages))
	m.HandleFunc("GET /v1/domains", h.auth(h.listDomains))
	m.HandleFunc("GET /v1/domains/{name}", h.auth(h.getDomain))
	m.HandleFunc("POST /v1/domains/state", h.auth(h.setState))
	m.HandleFunc("POST /v1/domains/delegation", h.auth(h.recordDelegation))
	m.HandleFunc("GET /v1/deadlines", h.auth(h.deadlines))
	m.HandleFunc("GET /v1/audit", h.auth(h.audit))
	m.HandleFunc("GET /v1/audit/verify", h.auth(h.verifyAudit))
	m.HandleFunc("GET /v1/stats/unique-hosts", h.auth(h.uniqueHosts))
	m.HandleFunc("GET /v1/stats/callbacks-per-hour", h.auth(h.callbacksPerHour))
	m.HandleFunc("GET /v1/subscribers", h.auth(h.listSubscribers))
	m.HandleFunc("POST /v1/subscribers", h.auth(h.addSubscriber))
	m.HandleFunc("GET /v1/subscribers/{name}", h.auth(h.getSubscriber))
	m.HandleFunc("PATCH /v1/subscribers/{name}", h.auth(h.updateSubscriber))
	m.HandleFunc("DELETE /v1/subscribers/{name}", h.auth(h.removeSubscriber))
	m.HandleFunc("POST /v1/subscribers/{name}/keys", h.auth(h.addAPIKey))
	m.HandleFunc("DELETE /v1/subscribers/{name}/keys/{id}", h.auth(h.revokeAPIKey))
	m.HandleFunc("GET /v1/status", h.auth(h.status))
	m.HandleFunc("POST /v1/ingest", h.auth(h.ingest))
	m.HandleFunc("GET /v1/quarantine", h.auth(h.listQuarantine))
	m.HandleFunc("POST /v1/quarantine/replay", h.auth(h.replayQuarantine))
	m.HandleFunc("GET /v1/reports/{date}", h.auth(h.report))
	m.HandleFunc("POST /v1/reports/{date}/send", h.auth(h.sendReports))
	m.HandleFunc("GET /v1/deliveries", h.auth(h.deliveries))
	m.HandleFunc("POST /v1/deliveries/mark-sent", h.auth(h.markSent))
	m.HandleFunc("POST /v1/deliveries/resend", h.auth(h.resend))
	m.HandleFunc("GET /v1/trend", h.auth(h.trend))
	if cfg.DNSSEC != nil {
		m.HandleFunc("GET /v1/dnssec/keys", h.auth(h.dnssecKeys))
		m.HandleFunc("GET /v1/dnssec/ds", h.auth(h.dnssecDS))
		m.HandleFunc("POST /v1/dnssec/rollover", h.auth(h.dnssecRollover))
	} else {
		m.HandleFunc("/v1/dnssec/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "unavailable", "this server keeps no DNSSEC keys", nil)
		})
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path), nil)
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// ActorHeader carries the name of the person or program making a change.
const ActorHeader = "X-Takedown-Actor"

type handlerFunc func(w http.ResponseWriter, r *http.Request, ch registry.Change) error

func (h *Handler) auth(next handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || h.cfg.Token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) != 1 {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token", nil)
			return
		}
		actor := strings.TrimSpace(r.Header.Get(ActorHeader))
		if actor == "" {
			actor = "api"
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := next(w, r, registry.Change{Actor: actor}); err != nil {
			h.fail(w, r, err)
		}
	}
}

// badRequest is an error in the request itself (parameter, body).
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br badRequest
	var ie *registry.ImportError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ie):
		writeError(w, http.StatusUnprocessableEntity, "invalid", err.Error(), ie)
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, "invalid", err.Error(), nil)
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "invalid", fmt.Sprintf("request body larger than %d bytes", tooBig.Limit), nil)
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error(), nil)
	case errors.Is(err, registry.ErrExists):
		writeError(w, http.StatusConflict, "exists", err.Error(), nil)
	case errors.Is(err, registry.ErrIllegalTransition):
		writeError(w, http.StatusConflict, "illegal_transition", err.Error(), nil)
	case errors.Is(err, registry.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid", err.Error(), nil)
	case errors.Is(err, ErrNoMail):
		writeError(w, http.StatusConflict, "no_mail", err.Error(), nil)
	default:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error(), nil)
	}
}

type errorBody struct {
	Error    string               `json:"error"`
	Kind     string               `json:"kind"`
	File     string               `json:"file,omitempty"`
	Problems []registry.LineError `json:"problems,omitempty"`
	// Total counts the problems when there are more than Problems lists.
	Total int `json:"total,omitempty"`
}

// MaxProblems is how many problems of a refused import an answer lists:
// each is at most some 2.5 KB of JSON (a line is cut to 200 bytes), so the
// answer stays under a few megabytes however long the list. The CLI
// prints as many in both modes.
const MaxProblems = 1000

func writeError(w http.ResponseWriter, status int, kind, msg string, ie *registry.ImportError) {
	b := errorBody{Error: msg, Kind: kind}
	if ie != nil {
		ie = ie.Shorten(MaxProblems)
		b.File, b.Problems, b.Total = ie.File, ie.Problems, ie.Total
	}
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decodeBody decodes a JSON body strictly: unknown fields and trailing data
// are errors naming them.
func decodeBody(r *http.Request, v any) error {
	err := jsonbody.Decode(r.Body, v)
	if bad, ok := errors.AsType[*jsonbody.Error](err); ok {
		return badf("%s", bad.Msg)
	}
	return err
}

func (h *Handler) listCases(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	cs, err := h.cfg.Registry.ListCases(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(cs))
	return nil
}

// CaseRequest is the body of POST /v1/cases.
type CaseRequest struct {
	registry.NewCase
	Reason string `json:"reason,omitempty"`
}

func (h *Handler) addCase(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	var req CaseRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ch.Reason = req.Reason
	c, err := h.cfg.Registry.AddCase(r.Context(), req.NewCase, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (h *Handler) getCase(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	c, err := h.cfg.Registry.GetCase(r.Context(), r.PathValue("case"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// OrderRequest is the body of POST /v1/cases/{case}/orders.
type OrderRequest struct {
	registry.NewOrder
	Reason string `json:"reason,omitempty"`
}

func (h *Handler) addOrder(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	var req OrderRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ch.Reason = req.Reason
	o, err := h.cfg.Registry.AddOrder(r.Context(), r.PathValue("case"), req.NewOrder, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, o)
	return nil
}

// importDomains takes the file itself as the body; ?file= names it for error
// messages and ?reason= says why.
func (h *Handler) importDomains(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "request body"
	}
	ch.Reason = r.URL.Query().Get("reason")
	res, err := h.cfg.Registry.ImportDomains(r.Context(), r.PathValue("case"), file, data, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

func (h *Handler) packages(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	ps, err := h.cfg.Registry.Packages(r.Context(), r.PathValue("case"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ps))
	return nil
}

func (h *Handler) listDomains(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	q := r.URL.Query()
	if err := onlyParams(q, "case", "state", "registrar", "tld", "family", "limit"); err != nil {
		return err
	}
	f := registry.DomainFilter{
		Case: q.Get("case"), State: registry.State(q.Get("state")),
		Registrar: q.Get("registrar"), TLD: q.Get("tld"), Family: q.Get("family"),
	}
	var err error
	if f.Limit, err = intParam(q.Get("limit"), "limit"); err != nil {
		return err
	}
	ds, err := h.cfg.Registry.ListDomains(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
	return nil
}

func (h *Handler) getDomain(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	d, err := h.cfg.Registry.GetDomain(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// StateRequest is the body of POST /v1/domains/state.
type StateRequest struct {
	Names  []string       `json:"names"`
	State  registry.State `json:"state"`
	Reason string         `json:"reason,omitempty"`
}

func (h *Handler) setState(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	var req StateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if len(req.Names) == 0 {
		return badf("request body: names: give at least one domain")
	}
	ch.Reason = req.Reason
	ds, err := h.cfg.Registry.SetState(r.Context(), req.Names, req.State, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
	return nil
}

// DelegationRequest is the body of POST /v1/domains/delegation.
type DelegationRequest struct {
	Checks []registry.DelegationCheck `json:"checks"`
	Reason string                     `json:"reason,omitempty"`
}

func (h *Handler) recordDelegation(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	var req DelegationRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ch.Reason = req.Reason
	if err := h.cfg.Registry.RecordDelegation(r.Context(), req.Checks, ch); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"recorded": len(req.Checks)})
	return nil
}

func (h *Handler) deadlines(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	q := r.URL.Query()
	if err := onlyParams(q, "within"); err != nil {
		return err
	}
	within := 14 * 24 * time.Hour
	if s := q.Get("within"); s != "" {
		d, err := ParseSpan(s)
		if err != nil {
			return badf("parameter within: %v", err)
		}
		within = d
	}
	ds, err := h.cfg.Registry.Deadlines(r.Context(), h.now(), within)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
	return nil
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	q := r.URL.Query()
	if err := onlyParams(q, "object", "after", "limit"); err != nil {
		return err
	}
	f := registry.AuditFilter{Object: q.Get("object")}
	var err error
	if f.Limit, err = intParam(q.Get("limit"), "limit"); err != nil {
		return err
	}
	after, err := intParam(q.Get("after"), "after")
	if err != nil {
		return err
	}
	f.AfterSeq = int64(after)
	es, err := h.cfg.Registry.Audit(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(es))
	return nil
}

// VerifyResult is the answer of GET /v1/audit/verify[?head=SEQ:HASH]:
// whether the chain verifies (and holds the pinned head), how many entries
// verified, and the head of those entries, to be kept elsewhere.
type VerifyResult struct {
	OK      bool               `json:"ok"`
	Entries int64              `json:"entries"`
	Head    registry.AuditHead `json:"head"`
	Error   string             `json:"error,omitempty"`
}

func (h *Handler) verifyAudit(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	q := r.URL.Query()
	if err := onlyParams(q, "head"); err != nil {
		return err
	}
	var pin registry.AuditHead
	if s := q.Get("head"); s != "" {
		var err error
		if pin, err = registry.ParseAuditHead(s); err != nil {
			return badf("parameter head: %v", err)
		}
	}
	head, err := h.cfg.Registry.VerifyAuditHead(r.Context(), pin)
	if err != nil && !errors.Is(err, registry.ErrAuditBroken) {
		return err
	}
	res := VerifyResult{OK: err == nil, Entries: head.Seq, Head: head}
	if err != nil {
		res.Error = err.Error()
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (h *Handler) uniqueHosts(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if h.cfg.Events == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the event store is not open", nil)
		return nil
	}
	q, err := HostQueryFromValues(r.URL.Query(), h.now())
	if err != nil {
		return err
	}
	rows, err := h.cfg.Events.UniqueHosts(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(rows))
	return nil
}

func (h *Handler) callbacksPerHour(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if h.cfg.Events == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the event store is not open", nil)
		return nil
	}
	q := r.URL.Query()
	if err := onlyParams(q, "from", "to", "family"); err != nil {
		return err
	}
	from, to, err := timeRange(q, h.now())
	if err != nil {
		return err
	}
	rows, err := h.cfg.Events.CallbacksPerHour(r.Context(), eventstore.HourQuery{From: from, To: to, Family: q.Get("family")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(rows))
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func onlyParams(q map[string][]string, allowed ...string) error {
	for k := range q {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			return badf("unknown parameter %q (known: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func intParam(s, name string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badf("parameter %s: %q is not a whole number ≥ 0", name, s)
	}
	return n, nil
}
