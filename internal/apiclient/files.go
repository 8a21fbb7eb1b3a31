package apiclient

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// WriteFile writes content to path inside the sandbox, creating parents.
// mode is octal digits ("0644"); "" takes the server default. Content that
// is not valid UTF-8 is sent base64-encoded.
func (c *Client) WriteFile(ctx context.Context, id, path string, content []byte, mode string) error {
	body := struct {
		Path     string `json:"path"`
		Content  string `json:"content"`
		Mode     string `json:"mode,omitempty"`
		Encoding string `json:"encoding,omitempty"`
	}{Path: path, Mode: mode}
	if utf8.Valid(content) {
		body.Content = string(content)
	} else {
		body.Content, body.Encoding = base64.StdEncoding.EncodeToString(content), "base64"
	}
	return c.call(ctx, request{method: http.MethodPost, path: sandboxPath(id, "/files"), body: body}, nil)
}

// ReadFile returns the bytes of path inside the sandbox.
func (c *Client) ReadFile(ctx context.Context, id, path string) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/files"),
		query: url.Values{"path": {path}}, accept: "application/octet-stream"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("apiclient: read file body: %w", err)
	}
	return b, nil
}

// DeleteFile removes path; recursive removes a directory tree.
func (c *Client) DeleteFile(ctx context.Context, id, path string, recursive bool) error {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", strconv.FormatBool(true))
	}
	return c.call(ctx, request{method: http.MethodDelete, path: sandboxPath(id, "/files"), query: q}, nil)
}

// ListFiles lists the directory at path; never nil on success.
func (c *Client) ListFiles(ctx context.Context, id, path string) ([]FileInfo, error) {
	fis := []FileInfo{}
	if err := c.call(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/files/list"),
		query: url.Values{"path": {path}}}, &fis); err != nil {
		return nil, err
	}
	if fis == nil {
		fis = []FileInfo{}
	}
	return fis, nil
}

// StatFile describes path.
func (c *Client) StatFile(ctx context.Context, id, path string) (*FileInfo, error) {
	var fi FileInfo
	if err := c.call(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/files/stat"),
		query: url.Values{"path": {path}}}, &fi); err != nil {
		return nil, err
	}
	return &fi, nil
}

// Glob returns the absolute paths matching pattern ("**" recurses); never
// nil on success.
func (c *Client) Glob(ctx context.Context, id, pattern string) ([]string, error) {
	paths := []string{}
	if err := c.call(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/files/glob"),
		query: url.Values{"pattern": {pattern}}}, &paths); err != nil {
		return nil, err
	}
	if paths == nil {
		paths = []string{}
	}
	return paths, nil
}
