package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Spawn creates a sandbox (POST /sandboxes) and returns it once running.
func (c *Client) Spawn(ctx context.Context, req SpawnRequest) (*Sandbox, error) {
	var sb Sandbox
	if err := c.call(ctx, request{method: http.MethodPost, path: "/sandboxes", body: req}, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}

// Get returns one sandbox; an unknown id is an *APIError with status 404.
func (c *Client) Get(ctx context.Context, id string) (*Sandbox, error) {
	var sb Sandbox
	if err := c.call(ctx, request{method: http.MethodGet, path: sandboxPath(id, "")}, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}

// List returns the visible sandboxes, newest first; never nil on success.
func (c *Client) List(ctx context.Context, opts ListOptions) ([]Sandbox, error) {
	q := url.Values{}
	if opts.OwnerID != "" {
		q.Set("owner_id", opts.OwnerID)
	}
	if opts.State != "" {
		q.Set("state", opts.State)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	sbs := []Sandbox{}
	if err := c.call(ctx, request{method: http.MethodGet, path: "/sandboxes", query: q}, &sbs); err != nil {
		return nil, err
	}
	if sbs == nil {
		sbs = []Sandbox{}
	}
	return sbs, nil
}

// Destroy deletes a sandbox (DELETE /sandboxes/{id}).
func (c *Client) Destroy(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: sandboxPath(id, "")}, nil)
}

// Extend sets the sandbox's expiry to now + ttl (a Go duration string).
func (c *Client) Extend(ctx context.Context, id, ttl string) (*Sandbox, error) {
	var sb Sandbox
	body := map[string]string{"ttl": ttl}
	if err := c.call(ctx, request{method: http.MethodPost, path: sandboxPath(id, "/extend"), body: body}, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}
