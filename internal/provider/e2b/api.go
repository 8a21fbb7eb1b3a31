package e2b

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
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// The control-plane shapes below follow E2B's published OpenAPI spec
// (github.com/e2b-dev/E2B, spec/openapi.yml: schemas NewSandbox, Sandbox,
// SandboxDetail, ListedSandbox, Error; paths /sandboxes, /sandboxes/{id},
// /sandboxes/{id}/timeout). Authentication is the X-API-Key header
// (securitySchemes.ApiKeyAuth). Every error body is {"code": int,
// "message": string}.

// newSandbox is the body of POST /sandboxes (answered 201 with sandboxInfo).
type newSandbox struct {
	TemplateID          string            `json:"templateID"`
	Timeout             int               `json:"timeout"` // seconds of life from now
	AutoPause           bool              `json:"autoPause"`
	AllowInternetAccess *bool             `json:"allow_internet_access,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	EnvVars             map[string]string `json:"envVars,omitempty"`
}

// sandboxInfo is the Sandbox schema (201 of POST /sandboxes).
type sandboxInfo struct {
	TemplateID      string  `json:"templateID"`
	SandboxID       string  `json:"sandboxID"`
	ClientID        string  `json:"clientID"`
	EnvdVersion     string  `json:"envdVersion"`
	EnvdAccessToken string  `json:"envdAccessToken,omitempty"`
	Domain          *string `json:"domain,omitempty"`
}

// sandboxDetail is SandboxDetail (GET /sandboxes/{id}) and, without domain
// and token, ListedSandbox (GET /sandboxes).
type sandboxDetail struct {
	TemplateID  string            `json:"templateID"`
	SandboxID   string            `json:"sandboxID"`
	ClientID    string            `json:"clientID"`
	StartedAt   time.Time         `json:"startedAt"`
	EndAt       time.Time         `json:"endAt"`
	EnvdVersion string            `json:"envdVersion"`
	Domain      *string           `json:"domain,omitempty"`
	CPUCount    int               `json:"cpuCount"`
	MemoryMB    int               `json:"memoryMB"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	State       string            `json:"state"` // "running" or "paused"
}

// apiError is E2B's Error schema.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// api is a client of E2B's REST control plane.
type api struct {
	base    *url.URL
	key     string
	hc      *http.Client
	timeout time.Duration // per request
}

func (a *api) createSandbox(ctx context.Context, req newSandbox) (sandboxInfo, error) {
	var out sandboxInfo
	err := a.do(ctx, http.MethodPost, "/sandboxes", nil, req, &out, http.StatusCreated)
	return out, err
}

func (a *api) getSandbox(ctx context.Context, id string) (sandboxDetail, error) {
	var out sandboxDetail
	err := a.do(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(id), nil, nil, &out, http.StatusOK)
	return out, err
}

// listSandboxes returns the running sandboxes whose metadata has every
// entry of match (E2B filters server side: ?metadata=k1=v1&k2=v2, the
// whole query value URL-encoded).
func (a *api) listSandboxes(ctx context.Context, match map[string]string) ([]sandboxDetail, error) {
	q := url.Values{}
	if len(match) > 0 {
		m := url.Values{}
		for k, v := range match {
			m.Set(k, v)
		}
		q.Set("metadata", m.Encode())
	}
	var out []sandboxDetail
	err := a.do(ctx, http.MethodGet, "/sandboxes", q, nil, &out, http.StatusOK)
	return out, err
}

func (a *api) killSandbox(ctx context.Context, id string) error {
	return a.do(ctx, http.MethodDelete, "/sandboxes/"+url.PathEscape(id), nil, nil, nil, http.StatusNoContent)
}

func (a *api) setTimeout(ctx context.Context, id string, seconds int) error {
	return a.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(id)+"/timeout", nil,
		map[string]int{"timeout": seconds}, nil, http.StatusNoContent)
}

// do sends one request bounded by a.timeout and decodes a `want` answer
// into out; any other status is a classified error.
func (a *api) do(ctx context.Context, method, path string, q url.Values, in, out any, want int) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	u := *a.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return errs.Wrap(errs.Internal, err, "encode E2B request")
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "build E2B request")
	}
	req.Header.Set("X-API-Key", a.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return transportError(ctx, err, "E2B API")
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return statusError(resp, fmt.Sprintf("E2B API %s %s", method, path))
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return errs.Wrap(errs.Unavailable, err, "E2B API %s %s sent a malformed answer", method, path)
	}
	return nil
}

// transportError classifies a request that got no answer.
func transportError(ctx context.Context, err error, what string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return errs.Wrap(errs.Timeout, err, "%s did not answer in time", what)
	}
	if ctx.Err() != nil {
		return errs.Wrap(errs.Unavailable, ctx.Err(), "request cancelled")
	}
	return errs.Wrap(errs.Unavailable, err, "%s unreachable", what)
}

// statusError maps an E2B error answer to an error class. E2B's message is
// passed on, bounded: it names the problem (bad template, quota) and holds
// no secret.
func statusError(resp *http.Response, what string) error {
	var ae apiError
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := ""
	if json.Unmarshal(raw, &ae) == nil && ae.Message != "" {
		msg = ae.Message
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		msg = ": " + msg
	}
	class := errs.Unavailable
	switch c := resp.StatusCode; {
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		class = errs.Unauthorized
		msg += " (check providers.e2b.api_key)"
	case c == http.StatusNotFound:
		class = errs.NotFound
	case c == http.StatusBadRequest || c == http.StatusUnprocessableEntity:
		class = errs.Invalid
	case c == http.StatusConflict:
		class = errs.Conflict
	case c == http.StatusTooManyRequests:
		class = errs.Limit
	}
	return errs.New(class, "%s: HTTP %d%s", what, resp.StatusCode, msg)
}
