package api

import (
	"context"
	"net/http"

	"github.com/takedown-project/takedown/internal/registry"
)

// Subscribers is what the API needs of the registry to manage subscribers:
// the network owners that receive reports. All of its endpoints need the
// admin bearer token; subscribers' own API keys do not open them.
type Subscribers interface {
	AddSubscriber(ctx context.Context, s registry.NewSubscriber, ch registry.Change) (registry.Subscriber, error)
	ListSubscribers(ctx context.Context) ([]registry.Subscriber, error)
	GetSubscriber(ctx context.Context, name string) (registry.Subscriber, error)
	UpdateSubscriber(ctx context.Context, name string, u registry.SubscriberUpdate, ch registry.Change) (registry.Subscriber, error)
	RemoveSubscriber(ctx context.Context, name string, ch registry.Change) error
	AddAPIKey(ctx context.Context, name string, ch registry.Change) (key string, k registry.APIKey, err error)
	RevokeAPIKey(ctx context.Context, name, keyID string, ch registry.Change) error
}

// SubscriberRequest is the body of POST /v1/subscribers.
type SubscriberRequest struct {
	registry.NewSubscriber
	Reason string `json:"reason,omitempty"`
}

// SubscriberUpdateRequest is the body of PATCH /v1/subscribers/{name}.
type SubscriberUpdateRequest struct {
	registry.SubscriberUpdate
	Reason string `json:"reason,omitempty"`
}

// NewKey is the answer of POST /v1/subscribers/{name}/keys: the key, shown
// this once, and its description.
type NewKey struct {
	Subscriber string `json:"subscriber"`
	Key        string `json:"key"`
	registry.APIKey
}

func (h *Handler) listSubscribers(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	ss, err := h.cfg.Registry.ListSubscribers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ss))
	return nil
}

func (h *Handler) addSubscriber(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	var req SubscriberRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ch.Reason = req.Reason
	s, err := h.cfg.Registry.AddSubscriber(r.Context(), req.NewSubscriber, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s)
	return nil
}

func (h *Handler) getSubscriber(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	s, err := h.cfg.Registry.GetSubscriber(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (h *Handler) updateSubscriber(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	var req SubscriberUpdateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ch.Reason = req.Reason
	s, err := h.cfg.Registry.UpdateSubscriber(r.Context(), r.PathValue("name"), req.SubscriberUpdate, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

// removeSubscriber takes the reason as ?reason=.
func (h *Handler) removeSubscriber(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	if err := onlyParams(r.URL.Query(), "reason"); err != nil {
		return err
	}
	ch.Reason = r.URL.Query().Get("reason")
	if err := h.cfg.Registry.RemoveSubscriber(r.Context(), r.PathValue("name"), ch); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// addAPIKey takes the reason as ?reason=. The answer holds the key, which
// nothing keeps: it must not be cached.
func (h *Handler) addAPIKey(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	if err := onlyParams(r.URL.Query(), "reason"); err != nil {
		return err
	}
	ch.Reason = r.URL.Query().Get("reason")
	name := r.PathValue("name")
	key, k, err := h.cfg.Registry.AddAPIKey(r.Context(), name, ch)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, NewKey{Subscriber: name, Key: key, APIKey: k})
	return nil
}

// revokeAPIKey takes the reason as ?reason=.
func (h *Handler) revokeAPIKey(w http.ResponseWriter, r *http.Request, ch registry.Change) error {
	if err := onlyParams(r.URL.Query(), "reason"); err != nil {
		return err
	}
	ch.Reason = r.URL.Query().Get("reason")
	if err := h.cfg.Registry.RevokeAPIKey(r.Context(), r.PathValue("name"), r.PathValue("id"), ch); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
