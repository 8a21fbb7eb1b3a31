// Package apiclient is a small Go client for the StacyVM REST API v1, used by
// the CLI, the end-to-end tests and the benchmark. Every method takes a
// context; API failures come back as *APIError.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Client talks to one StacyVM server. It is safe for concurrent use.
type Client struct {
	base      string // ".../api/v1", no trailing slash
	apiKey    string
	adminKey  string
	userID    string
	userAgent string
	hc        *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc instead of a default client without a timeout
// (deadlines come from each call's context).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithAdminAPIKey sends key as X-Admin-API-Key.
func WithAdminAPIKey(key string) Option { return func(c *Client) { c.adminKey = key } }

// WithUserID sends id as X-User-ID (pool mode and attribution).
func WithUserID(id string) Option { return func(c *Client) { c.userID = id } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the server at baseURL ("http://host:7423"; a
// trailing "/api/v1" is optional). apiKey, when non-empty, is sent as
// X-API-Key.
func New(baseURL, apiKey string, opts ...Option) *Client {
	base := strings.TrimRight(strings.TrimSpace(baseURL), "/")
	if !strings.HasSuffix(base, "/api/v1") {
		base += "/api/v1"
	}
	c := &Client{base: base, apiKey: apiKey, userAgent: "stacyvm-go-client", hc: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the API root the client sends requests to.
func (c *Client) BaseURL() string { return c.base }

// APIError is an error response of the API: {"code","message"} plus the
// HTTP status and the request id when the server sent one.
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

// Error renders "CODE: message".
func (e *APIError) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Class maps the wire code back to its error class.
func (e *APIError) Class() errs.Class { return errs.ClassFromCode(e.Code) }

// IsNotFound reports whether err is an API 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == "NOT_FOUND")
}

// statusCodes gives a code to error responses that carry no JSON body.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BAD_REQUEST"
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "FORBIDDEN"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusRequestTimeout:
		return "TIMEOUT"
	case http.StatusConflict:
		return "CONFLICT"
	case http.StatusRequestEntityTooLarge:
		return "PAYLOAD_TOO_LARGE"
	case http.StatusTooManyRequests:
		return "RESOURCE_LIMIT"
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return "UNAVAILABLE"
	}
	return "INTERNAL_ERROR"
}

// decodeError builds an *APIError from a non-2xx response.
func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-ID")}
	var wire struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(body, &wire) == nil && (wire.Code != "" || wire.Message != "") {
		e.Code, e.Message = wire.Code, wire.Message
		if wire.RequestID != "" {
			e.RequestID = wire.RequestID
		}
	} else {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if e.Code == "" {
		e.Code = statusCode(resp.StatusCode)
	}
	return e
}

// request is one API call.
type request struct {
	method string
	path   string     // below /api/v1, already escaped
	query  url.Values // optional
	body   any        // JSON-encoded when non-nil, unless raw is set
	raw    io.Reader  // sent as application/octet-stream
	accept string
	// contentType overrides the raw body's application/octet-stream.
	contentType string
}

// do sends r and returns the response when its status is 2xx; otherwise it
// returns the decoded *APIError. The caller closes the body.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	contentType := ""
	switch {
	case r.raw != nil:
		body, contentType = r.raw, "application/octet-stream"
		if r.contentType != "" {
			contentType = r.contentType
		}
	case r.body != nil:
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("apiclient: encode %s %s: %w", r.method, r.path, err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("apiclient: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("X-API-Key", c.apiKey)
	}
	if c.adminKey != "" {
		req.Header.Set("X-Admin-API-Key", c.adminKey)
	}
	if c.userID != "" {
		req.Header.Set("X-User-ID", c.userID)
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("apiclient: %s %s: %w", r.method, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// call sends r and decodes a JSON response into out (unless out is nil).
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("apiclient: decode %s %s response: %w", r.method, r.path, err)
	}
	return nil
}

// sandboxPath is "/sandboxes/{id}" + suffix with id escaped.
func sandboxPath(id, suffix string) string {
	return "/sandboxes/" + url.PathEscape(id) + suffix
}

// Health calls GET /health.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.call(ctx, request{method: http.MethodGet, path: "/health"}, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Providers calls GET /providers.
func (c *Client) Providers(ctx context.Context) ([]ProviderInfo, error) {
	var ps []ProviderInfo
	if err := c.call(ctx, request{method: http.MethodGet, path: "/providers"}, &ps); err != nil {
		return nil, err
	}
	return ps, nil
}
