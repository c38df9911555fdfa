package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/registry"
)

// Client calls a running takedown server's API. Its methods have the same
// signatures and return the same errors (wrapping the registry's sentinel
// errors, *registry.ImportError for a rejected import) as the registry and
// the store, so that callers cannot tell the two apart.
type Client struct {
	base  string
	token string
	actor string
	http  *http.Client
}

// NewClient returns a client of the API at addr (host:port or a URL), with
// the bearer token and the actor recorded in the audit log.
func NewClient(addr, token, actor string) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{
		base: strings.TrimRight(base, "/"), token: token, actor: actor,
		http: &http.Client{Timeout: 5 * time.Minute},
	}
}

// WithHTTPClient makes c call through hc (for TLS to the API) and
// returns it.
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	c.http = hc
	return c
}

// ErrUnreachable reports that no server answers at the address.
var ErrUnreachable = errors.New("no takedown server answers")

// Ping checks that a takedown server answers and accepts the token.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w at %s: /healthz answered %s", ErrUnreachable, c.base, resp.Status)
	}
	return nil
}

// remoteError is an error the server reported; it unwraps to the sentinel
// that its kind names, so errors.Is works as with a local registry.
type remoteError struct {
	msg    string
	kind   error
	status int
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// HTTPStatus is the status code the server answered with, for errors of a
// kind the client does not know (the CLI's exit codes tell 404 and 409).
func (e *remoteError) HTTPStatus() int { return e.status }

// maxErrorBody bounds an error answer read: MaxProblems problems fit.
const maxErrorBody = 16 << 20

// ErrUnauthorized reports a token the server refused.
var ErrUnauthorized = errors.New("unauthorized")

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string, out any) error {
	resp, err := c.send(ctx, method, path, q, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("reading answer of %s %s: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", method, path, err)
	}
	return nil
}

// send makes a request and returns the answer when it is a success, for
// the caller to read and close; otherwise the error the server reported.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.actor != "" {
		req.Header.Set(ActorHeader, c.actor)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling takedown server: %w", err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("reading answer of %s %s: %w", method, path, err)
	}
	var eb errorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error == "" {
		return nil, fmt.Errorf("%s %s: server answered %s", method, path, resp.Status)
	}
	if len(eb.Problems) > 0 {
		return nil, &registry.ImportError{File: eb.File, Problems: eb.Problems, Total: eb.Total}
	}
	kinds := map[string]error{
		"not_found": registry.ErrNotFound, "exists": registry.ErrExists,
		"illegal_transition": registry.ErrIllegalTransition, "invalid": registry.ErrInvalid,
		"unauthorized": ErrUnauthorized, "no_mail": ErrNoMail,
	}
	return nil, &remoteError{msg: eb.Error, kind: kinds[eb.Kind], status: resp.StatusCode}
}

// long returns a client whose requests only its context bounds: mailing a
// day's reports or fetching a big one may take longer than the default
// timeout.
func (c *Client) long() *Client {
	cc := *c
	hc := *c.http
	hc.Timeout = 0
	cc.http = &hc
	return &cc
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, nil, bytes.NewReader(b), "application/json", out)
}

func esc(s string) string { return url.PathEscape(s) }

// AddCase adds a case.
func (c *Client) AddCase(ctx context.Context, nc registry.NewCase, ch registry.Change) (registry.Case, error) {
	var out registry.Case
	err := c.withActor(ch).postJSON(ctx, "/v1/cases", CaseRequest{NewCase: nc, Reason: ch.Reason}, &out)
	return out, err
}

// ListCases lists the cases.
func (c *Client) ListCases(ctx context.Context) ([]registry.Case, error) {
	var out []registry.Case
	err := c.do(ctx, http.MethodGet, "/v1/cases", nil, nil, "", &out)
	return out, err
}

// GetCase returns one case.
func (c *Client) GetCase(ctx context.Context, name string) (registry.Case, error) {
	var out registry.Case
	err := c.do(ctx, http.MethodGet, "/v1/cases/"+esc(name), nil, nil, "", &out)
	return out, err
}

// AddOrder adds a court order to a case.
func (c *Client) AddOrder(ctx context.Context, caseName string, o registry.NewOrder, ch registry.Change) (registry.Order, error) {
	var out registry.Order
	err := c.withActor(ch).postJSON(ctx, "/v1/cases/"+esc(caseName)+"/orders", OrderRequest{NewOrder: o, Reason: ch.Reason}, &out)
	return out, err
}

// ImportDomains sends a domain list to the server.
func (c *Client) ImportDomains(ctx context.Context, caseName, file string, data []byte, ch registry.Change) (registry.ImportResult, error) {
	var out registry.ImportResult
	q := url.Values{"file": {file}}
	if ch.Reason != "" {
		q.Set("reason", ch.Reason)
	}
	err := c.withActor(ch).do(ctx, http.MethodPost, "/v1/cases/"+esc(caseName)+"/domains", q, bytes.NewReader(data), "text/plain", &out)
	return out, err
}

// ListDomains lists domains.
func (c *Client) ListDomains(ctx context.Context, f registry.DomainFilter) ([]registry.Domain, error) {
	q := url.Values{}
	for k, v := range map[string]string{"case": f.Case, "state": string(f.State), "registrar": f.Registrar, "tld": f.TLD, "family": f.Family} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []registry.Domain
	err := c.do(ctx, http.MethodGet, "/v1/domains", q, nil, "", &out)
	return out, err
}

// GetDomain returns one domain with its history.
func (c *Client) GetDomain(ctx context.Context, name string) (registry.Domain, error) {
	var out registry.Domain
	err := c.do(ctx, http.MethodGet, "/v1/domains/"+esc(name), nil, nil, "", &out)
	return out, err
}

// SetState moves domains to a new state, all or nothing.
func (c *Client) SetState(ctx context.Context, names []string, to registry.State, ch registry.Change) ([]registry.Domain, error) {
	var out []registry.Domain
	err := c.withActor(ch).postJSON(ctx, "/v1/domains/state", StateRequest{Names: names, State: to, Reason: ch.Reason}, &out)
	return out, err
}

// RecordDelegation stores delegation check results on the server.
func (c *Client) RecordDelegation(ctx context.Context, checks []registry.DelegationCheck, ch registry.Change) error {
	return c.withActor(ch).postJSON(ctx, "/v1/domains/delegation", DelegationRequest{Checks: checks, Reason: ch.Reason}, nil)
}

// Deadlines lists the deadlines due within the span. The server's clock
// decides what "now" is; now is ignored.
func (c *Client) Deadlines(ctx context.Context, now time.Time, within time.Duration) ([]registry.Deadline, error) {
	var out []registry.Deadline
	q := url.Values{"within": {within.String()}}
	err := c.do(ctx, http.MethodGet, "/v1/deadlines", q, nil, "", &out)
	return out, err
}

// Packages returns the registrar and registry packages of a case.
func (c *Client) Packages(ctx context.Context, caseName string) ([]registry.Package, error) {
	var out []registry.Package
	err := c.do(ctx, http.MethodGet, "/v1/cases/"+esc(caseName)+"/packages", nil, nil, "", &out)
	return out, err
}

// Audit returns audit entries.
func (c *Client) Audit(ctx context.Context, f registry.AuditFilter) ([]registry.AuditEntry, error) {
	q := url.Values{}
	if f.Object != "" {
		q.Set("object", f.Object)
	}
	if f.AfterSeq > 0 {
		q.Set("after", strconv.FormatInt(f.AfterSeq, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []registry.AuditEntry
	err := c.do(ctx, http.MethodGet, "/v1/audit", q, nil, "", &out)
	return out, err
}

// VerifyAuditHead asks the server to verify the audit chain, and that it
// holds pin when pin is set.
func (c *Client) VerifyAuditHead(ctx context.Context, pin registry.AuditHead) (registry.AuditHead, error) {
	var q url.Values
	if pin.Seq > 0 {
		q = url.Values{"head": {pin.String()}}
	}
	var out VerifyResult
	if err := c.do(ctx, http.MethodGet, "/v1/audit/verify", q, nil, "", &out); err != nil {
		return registry.AuditHead{}, err
	}
	if !out.OK {
		return out.Head, &remoteError{msg: out.Error, kind: registry.ErrAuditBroken}
	}
	return out.Head, nil
}

// UniqueHosts runs a unique-hosts query on the server.
func (c *Client) UniqueHosts(ctx context.Context, q eventstore.HostQuery) ([]eventstore.HostCount, error) {
	var out []eventstore.HostCount
	err := c.do(ctx, http.MethodGet, "/v1/stats/unique-hosts", HostQueryValues(q), nil, "", &out)
	return out, err
}

// CallbacksPerHour runs a callbacks-per-hour query on the server.
func (c *Client) CallbacksPerHour(ctx context.Context, q eventstore.HourQuery) ([]eventstore.HourCount, error) {
	v := url.Values{"from": {q.From.UTC().Format(time.RFC3339Nano)}, "to": {q.To.UTC().Format(time.RFC3339Nano)}}
	if q.Family != "" {
		v.Set("family", q.Family)
	}
	var out []eventstore.HourCount
	err := c.do(ctx, http.MethodGet, "/v1/stats/callbacks-per-hour", v, nil, "", &out)
	return out, err
}

// withActor returns a client that names ch.Actor, when set, as the actor.
func (c *Client) withActor(ch registry.Change) *Client {
	if ch.Actor == "" || ch.Actor == c.actor {
		return c
	}
	cc := *c
	cc.actor = ch.Actor
	return &cc
}
