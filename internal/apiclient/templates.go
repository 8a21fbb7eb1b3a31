package apiclient

import (
	"context"
	"net/http"
	"net/url"
)

// Template is the API's template object.
type Template struct {
	Name         string            `json:"name"`
	Version      int               `json:"version,omitempty"`
	Image        string            `json:"image"`
	Description  string            `json:"description,omitempty"`
	Setup        []string          `json:"setup,omitempty"`
	AllowedHosts []string          `json:"allowed_hosts,omitempty"`
	MemoryMB     int               `json:"memory_mb,omitempty"`
	CPUCores     float64           `json:"cpu_cores,omitempty"`
	TTLSeconds   int               `json:"ttl_seconds,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	PoolSize     int               `json:"pool_size,omitempty"`
	Provider     string            `json:"provider,omitempty"`
	Network      string            `json:"network,omitempty"`
	CreatedAt    string            `json:"created_at,omitempty"`
	UpdatedAt    string            `json:"updated_at,omitempty"`
}

func templatePath(name, suffix string) string { return "/templates/" + url.PathEscape(name) + suffix }

// Templates lists the templates.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	out := []Template{}
	if err := c.call(ctx, request{method: http.MethodGet, path: "/templates"}, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []Template{}
	}
	return out, nil
}

// Template returns one template.
func (c *Client) Template(ctx context.Context, name string) (*Template, error) {
	var t Template
	if err := c.call(ctx, request{method: http.MethodGet, path: templatePath(name, "")}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateTemplate creates a template (name and image required).
func (c *Client) CreateTemplate(ctx context.Context, t Template) (*Template, error) {
	var out Template
	if err := c.call(ctx, request{method: http.MethodPost, path: "/templates", body: t}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteTemplate deletes a template.
func (c *Client) DeleteTemplate(ctx context.Context, name string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: templatePath(name, "")}, nil)
}

// SpawnTemplate creates a sandbox from a template; ttl and provider are
// optional.
func (c *Client) SpawnTemplate(ctx context.Context, name, provider, ttl string) (*Sandbox, error) {
	body := map[string]string{}
	if provider != "" {
		body["provider"] = provider
	}
	if ttl != "" {
		body["ttl"] = ttl
	}
	var sb Sandbox
	if err := c.call(ctx, request{method: http.MethodPost, path: templatePath(name, "/spawn"), body: body}, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}
