package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// DialFunc opens one stream connection to an agent.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Client talks to one agent. It is safe for concurrent use: calls run on
// separate pooled connections and never wait on each other.
type Client struct {
	http *http.Client
	// bulk carries large file uploads: 1 MiB buffers instead of 64 KiB,
	// and no idle connections, so the big buffers are never held by idle
	// sandboxes (one dial per bulk transfer costs microseconds).
	bulk *http.Client
}

// bulkSocketBuffer is the send buffer asked for on bulk connections.
const bulkSocketBuffer = 2 << 20

// bulkThreshold is the upload size from which the bulk transport is used.
const bulkThreshold = 1 << 20

// NewClient returns a Client that reaches the agent through dial.
func NewClient(dial DialFunc) *Client {
	tr := &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		// Idle connections keep these buffers for IdleConnTimeout; requests
		// on this transport are small (bulk uploads use c.bulk), responses
		// arrive in frames of at most 32 KiB from the agent.
		WriteBufferSize: 8 << 10,
		ReadBufferSize:  32 << 10,
	}
	bulk := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := dial(ctx)
			if uc, ok := c.(*net.UnixConn); ok && err == nil {
				// A unix stream socket's send buffer bounds the bytes in
				// flight; the 208 KiB default makes a 100 MB upload a few
				// thousand 64 KiB round trips. Best effort (net.core.wmem_max).
				_ = uc.SetWriteBuffer(bulkSocketBuffer)
			}
			return c, err
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
		WriteBufferSize:    256 << 10,
		ReadBufferSize:     64 << 10,
	}
	return &Client{http: &http.Client{Transport: tr}, bulk: &http.Client{Transport: bulk}}
}

// NewUnixClient returns a Client for an agent listening on a unix socket.
func NewUnixClient(socketPath string) *Client {
	var d net.Dialer
	return NewClient(func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "unix", socketPath)
	})
}

// Close releases idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
	c.bulk.CloseIdleConnections()
}

const base = "http://agent/v1"

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, size int64, ctype string) (*http.Response, error) {
	return c.doWith(c.http, ctx, method, path, q, body, size, ctype)
}

func (c *Client) doWith(hc *http.Client, ctx context.Context, method, path string, q url.Values, body io.Reader, size int64, ctype string) (*http.Response, error) {
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "build agent request")
	}
	if body != nil && size >= 0 {
		req.ContentLength = size
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, errs.Wrap(errs.Timeout, err, "sandbox agent call timed out")
			}
			return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "request cancelled")
		}
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent unreachable")
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	var eb ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &eb) != nil || eb.Code == "" {
		return errs.New(errs.Internal, "agent answered %d", resp.StatusCode)
	}
	return errs.New(errs.ClassFromCode(eb.Code), "%s", eb.Message)
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil, -1, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return errs.Wrap(errs.Unavailable, err, "sandbox agent sent a malformed answer")
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, path string, in any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "encode agent request")
	}
	resp, err := c.do(ctx, http.MethodPost, path, nil, bytes.NewReader(b), int64(len(b)), "application/json")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Ping returns the agent's identity; it is the readiness probe.
func (c *Client) Ping(ctx context.Context) (Info, error) {
	var info Info
	err := c.getJSON(ctx, "/ping", nil, &info)
	return info, err
}

// Exec runs req and copies the process's output to stdout and stderr as it
// arrives (either may be nil to discard). It returns when the process has
// exited. Cancelling ctx closes the connection, and the agent then kills the
// process group. A timeout (req.TimeoutMS) is reported as a result with
// TimedOut set, not as an error.
func (c *Client) Exec(ctx context.Context, req ExecRequest, stdout, stderr io.Writer) (ExecResult, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return ExecResult{}, errs.Wrap(errs.Internal, err, "encode exec request")
	}
	resp, err := c.do(ctx, http.MethodPost, "/exec", nil, bytes.NewReader(b), int64(len(b)), "application/json")
	if err != nil {
		return ExecResult{}, err
	}
	defer resp.Body.Close()
	// The transport already buffers the body (ReadBufferSize); the frame
	// buffer starts small and grows to the largest frame seen, so a short
	// command allocates almost nothing.
	r := resp.Body
	buf := make([]byte, 0, 4<<10)
	for {
		typ, payload, err := ReadFrame(r, buf)
		if err != nil {
			if ctx.Err() != nil {
				return ExecResult{}, errs.Wrap(errs.Unavailable, ctx.Err(), "exec cancelled")
			}
			return ExecResult{}, errs.Wrap(errs.Unavailable, err, "exec stream from sandbox agent broke")
		}
		if cap(payload) > cap(buf) {
			buf = payload[:0]
		}
		switch typ {
		case FrameStdout:
			if stdout != nil {
				if _, err := stdout.Write(payload); err != nil {
					return ExecResult{}, fmt.Errorf("write stdout: %w", err)
				}
			}
		case FrameStderr:
			if stderr != nil {
				if _, err := stderr.Write(payload); err != nil {
					return ExecResult{}, fmt.Errorf("write stderr: %w", err)
				}
			}
		case FrameExit:
			var res ExecResult
			if err := json.Unmarshal(payload, &res); err != nil {
				return ExecResult{}, errs.Wrap(errs.Unavailable, err, "malformed exit frame")
			}
			// Read the body's end (the chunked terminator): a body closed
			// before EOF costs its connection, and the next call a dial.
			drain(r)
			return res, nil
		case FrameError:
			var eb ErrorBody
			if err := json.Unmarshal(payload, &eb); err != nil {
				return ExecResult{}, errs.Wrap(errs.Unavailable, err, "malformed error frame")
			}
			drain(r)
			return ExecResult{}, errs.New(errs.ClassFromCode(eb.Code), "%s", eb.Message)
		default:
			return ExecResult{}, errs.New(errs.Unavailable, "unknown exec frame type %d", typ)
		}
	}
}

// drain reads what is left of a finished response (normally nothing but the
// chunked terminator), bounded so a misbehaving agent cannot stall us.
func drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10))
}

// ReadFile streams a regular file. The caller closes the reader. size is the
// file's length when the agent sent it, else -1.
func (c *Client) ReadFile(ctx context.Context, path string) (rc io.ReadCloser, size int64, err error) {
	resp, err := c.do(ctx, http.MethodGet, "/files", url.Values{"path": {path}}, nil, -1, "")
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// WriteFile streams body into path (parents created, replaced atomically)
// with permission bits mode. size is body's length, or -1 when unknown.
func (c *Client) WriteFile(ctx context.Context, path string, mode uint32, body io.Reader, size int64) error {
	q := url.Values{"path": {path}, "mode": {"0" + strconv.FormatUint(uint64(mode&0o7777), 8)}}
	if body == nil {
		body = http.NoBody
		size = 0
	}
	hc := c.http
	if size < 0 || size >= bulkThreshold {
		hc = c.bulk
	}
	resp, err := c.doWith(hc, ctx, http.MethodPut, "/files", q, body, size, "application/octet-stream")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Delete removes path; a directory needs recursive. A missing path is NotFound.
func (c *Client) Delete(ctx context.Context, path string, recursive bool) error {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "true")
	}
	resp, err := c.do(ctx, http.MethodDelete, "/files", q, nil, -1, "")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// List returns the entries of directory path, sorted by name.
func (c *Client) List(ctx context.Context, path string) ([]FileInfo, error) {
	out := []FileInfo{}
	err := c.getJSON(ctx, "/files/list", url.Values{"path": {path}}, &out)
	return out, err
}

// Stat describes path.
func (c *Client) Stat(ctx context.Context, path string) (FileInfo, error) {
	var fi FileInfo
	err := c.getJSON(ctx, "/files/stat", url.Values{"path": {path}}, &fi)
	return fi, err
}

// Glob returns the absolute paths matching pattern, sorted; "**" matches any
// number of directories.
func (c *Client) Glob(ctx context.Context, pattern string) ([]string, error) {
	out := []string{}
	err := c.getJSON(ctx, "/files/glob", url.Values{"pattern": {pattern}}, &out)
	if out == nil {
		out = []string{}
	}
	return out, err
}

// Move renames oldPath to newPath.
func (c *Client) Move(ctx context.Context, oldPath, newPath string) error {
	return c.postJSON(ctx, "/files/move", MoveRequest{OldPath: oldPath, NewPath: newPath})
}

// Chmod sets the permission bits of path from an octal string.
func (c *Client) Chmod(ctx context.Context, path, mode string) error {
	return c.postJSON(ctx, "/files/chmod", ChmodRequest{Path: path, Mode: mode})
}
