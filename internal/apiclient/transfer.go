package apiclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Upload streams r to path inside the sandbox (PUT files/raw), any size,
// creating parents; it returns the size the server wrote.
func (c *Client) Upload(ctx context.Context, id, path string, r io.Reader) (int64, error) {
	var res struct {
		Size int64 `json:"size"`
	}
	if err := c.call(ctx, request{method: http.MethodPut, path: sandboxPath(id, "/files/raw"),
		query: url.Values{"path": {path}}, raw: r}, &res); err != nil {
		return 0, err
	}
	return res.Size, nil
}

// Download opens path inside the sandbox for streaming; the caller closes
// the reader.
func (c *Client) Download(ctx context.Context, id, path string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/files"),
		query: url.Values{"path": {path}}, accept: "application/octet-stream"})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Logs returns the sandbox's last lines of output (lines <= 0: the server's
// default).
func (c *Client) Logs(ctx context.Context, id string, lines int) ([]string, error) {
	q := url.Values{}
	if lines > 0 {
		q.Set("lines", strconv.Itoa(lines))
	}
	out := []string{}
	if err := c.call(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/logs"), query: q}, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// Stats returns the sandbox's current resource use.
func (c *Client) Stats(ctx context.Context, id string) (*Stats, error) {
	var s Stats
	if err := c.call(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/stats")}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Stats is GET /sandboxes/{id}/stats.
type Stats struct {
	Supported     bool    `json:"supported"`
	CPUPct        float64 `json:"cpu_pct,omitempty"`
	MemBytes      int64   `json:"mem_bytes,omitempty"`
	MemLimitBytes int64   `json:"mem_limit_bytes,omitempty"`
}

// String renders the stats on one line.
func (s Stats) String() string {
	if !s.Supported {
		return "stats not supported by this provider"
	}
	return fmt.Sprintf("cpu %.1f%%  mem %d / %d bytes", s.CPUPct, s.MemBytes, s.MemLimitBytes)
}

// Chmod sets path's permission bits (octal digits, e.g. "0755").
func (c *Client) Chmod(ctx context.Context, id, path, mode string) error {
	return c.call(ctx, request{method: http.MethodPost, path: sandboxPath(id, "/files/chmod"),
		body: map[string]string{"path": path, "mode": mode}}, nil)
}

// Move renames oldPath to newPath inside the sandbox.
func (c *Client) Move(ctx context.Context, id, oldPath, newPath string) error {
	return c.call(ctx, request{method: http.MethodPost, path: sandboxPath(id, "/files/move"),
		body: map[string]string{"old_path": oldPath, "new_path": newPath}}, nil)
}
