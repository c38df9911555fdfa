package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/takedown-project/takedown/internal/registry"
)

var _ Subscribers = (*Client)(nil)

// reasonQuery carries a change's reason in the query of a request without
// a body.
func reasonQuery(ch registry.Change) url.Values {
	if ch.Reason == "" {
		return nil
	}
	return url.Values{"reason": {ch.Reason}}
}

func (c *Client) patchJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPatch, path, nil, bytes.NewReader(b), "application/json", out)
}

// AddSubscriber adds a subscriber.
func (c *Client) AddSubscriber(ctx context.Context, s registry.NewSubscriber, ch registry.Change) (registry.Subscriber, error) {
	var out registry.Subscriber
	err := c.withActor(ch).postJSON(ctx, "/v1/subscribers", SubscriberRequest{NewSubscriber: s, Reason: ch.Reason}, &out)
	return out, err
}

// ListSubscribers lists the subscribers.
func (c *Client) ListSubscribers(ctx context.Context) ([]registry.Subscriber, error) {
	var out []registry.Subscriber
	err := c.do(ctx, http.MethodGet, "/v1/subscribers", nil, nil, "", &out)
	return out, err
}

// GetSubscriber returns one subscriber.
func (c *Client) GetSubscriber(ctx context.Context, name string) (registry.Subscriber, error) {
	var out registry.Subscriber
	err := c.do(ctx, http.MethodGet, "/v1/subscribers/"+esc(name), nil, nil, "", &out)
	return out, err
}

// UpdateSubscriber changes a subscriber.
func (c *Client) UpdateSubscriber(ctx context.Context, name string, u registry.SubscriberUpdate, ch registry.Change) (registry.Subscriber, error) {
	var out registry.Subscriber
	err := c.withActor(ch).patchJSON(ctx, "/v1/subscribers/"+esc(name), SubscriberUpdateRequest{SubscriberUpdate: u, Reason: ch.Reason}, &out)
	return out, err
}

// RemoveSubscriber removes a subscriber and revokes its keys.
func (c *Client) RemoveSubscriber(ctx context.Context, name string, ch registry.Change) error {
	return c.withActor(ch).do(ctx, http.MethodDelete, "/v1/subscribers/"+esc(name), reasonQuery(ch), nil, "", nil)
}

// AddAPIKey makes a new API key for a subscriber; the key is returned once.
func (c *Client) AddAPIKey(ctx context.Context, name string, ch registry.Change) (string, registry.APIKey, error) {
	var out NewKey
	err := c.withActor(ch).do(ctx, http.MethodPost, "/v1/subscribers/"+esc(name)+"/keys", reasonQuery(ch), nil, "", &out)
	return out.Key, out.APIKey, err
}

// RevokeAPIKey revokes a subscriber's key.
func (c *Client) RevokeAPIKey(ctx context.Context, name, keyID string, ch registry.Change) error {
	return c.withActor(ch).do(ctx, http.MethodDelete, "/v1/subscribers/"+esc(name)+"/keys/"+esc(keyID), reasonQuery(ch), nil, "", nil)
}
