package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// signalNames are the signals a client may send, by name without "SIG".
func signalNames() map[string]syscall.Signal {
	return map[string]syscall.Signal{
		"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
		"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "ALRM": syscall.SIGALRM,
		"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "WINCH": syscall.SIGWINCH,
		"PIPE": syscall.SIGPIPE,
	}
}

// ParseSignal accepts "SIGINT", "INT" (any case) or the number of one of
// the supported signals (HUP INT QUIT KILL USR1 USR2 TERM ALRM CONT STOP
// TSTP WINCH PIPE).
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	names := signalNames()
	if sig, ok := names[n]; ok {
		return sig, nil
	}
	if v, err := strconv.Atoi(n); err == nil {
		for _, sig := range names {
			if int(sig) == v {
				return sig, nil
			}
		}
	}
	return 0, errs.New(errs.Invalid, "unknown signal %q (use a name like SIGINT, SIGTERM, SIGKILL, SIGHUP)", printableArg(name))
}

// StartProcess starts a detached background process.
func (c *Client) StartProcess(ctx context.Context, spec ProcessSpec) (ProcessInfo, error) {
	var out ProcessInfo
	err := c.sendJSON(ctx, http.MethodPost, "/processes", spec, &out)
	return out, err
}

// Processes lists the background processes, oldest first.
func (c *Client) Processes(ctx context.Context) ([]ProcessInfo, error) {
	out := []ProcessInfo{}
	err := c.sendJSON(ctx, http.MethodGet, "/processes", nil, &out)
	return out, err
}

// Process describes one background process (NotFound for unknown ids).
func (c *Client) Process(ctx context.Context, id string) (ProcessInfo, error) {
	var out ProcessInfo
	err := c.sendJSON(ctx, http.MethodGet, procPath(id, ""), nil, &out)
	return out, err
}

// KillProcess kills the process's whole session and returns its state,
// normally already exited.
func (c *Client) KillProcess(ctx context.Context, id string) (ProcessInfo, error) {
	var out ProcessInfo
	err := c.sendJSON(ctx, http.MethodDelete, procPath(id, ""), nil, &out)
	return out, err
}

// SignalProcess sends a signal to the process's group (on a TTY, to the
// terminal's foreground group).
func (c *Client) SignalProcess(ctx context.Context, id, signal string) error {
	return c.sendJSON(ctx, http.MethodPost, procPath(id, "/signal"), SignalRequest{Signal: signal}, nil)
}

// ResizeProcess resizes a TTY process's terminal.
func (c *Client) ResizeProcess(ctx context.Context, id string, cols, rows uint16) error {
	return c.sendJSON(ctx, http.MethodPost, procPath(id, "/resize"), ResizeRequest{Cols: cols, Rows: rows}, nil)
}

// ProcessStdin streams data into the process's stdin, then closes it when
// eof is set.
func (c *Client) ProcessStdin(ctx context.Context, id string, data io.Reader, size int64, eof bool) error {
	var q url.Values
	if eof {
		q = url.Values{"eof": {"true"}}
	}
	if data == nil {
		data, size = http.NoBody, 0
	}
	resp, err := c.procDo(ctx, http.MethodPost, procPath(id, "/stdin"), q, data, size, "application/octet-stream")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// OutputChunk is a piece of a background process's output at Offset.
type OutputChunk struct {
	Offset int64
	Stream byte // FrameStdout or FrameStderr
	Data   []byte
}

// ProcessOutput reads the output from offset (from the oldest byte kept if
// that was dropped) and calls fn for each chunk in order; Data is only
// valid during the call. With follow it waits for more until the process
// exits. It returns the exit result once the process has exited and all its
// output was delivered, or nil when the stream ended earlier (no follow, or
// fn's error, which is returned).
func (c *Client) ProcessOutput(ctx context.Context, id string, offset int64, follow bool, fn func(OutputChunk) error) (*ExecResult, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.procDo(ctx, http.MethodGet, procPath(id, "/output"), q, nil, -1, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf := make([]byte, 0, 32<<10)
	off := int64(-1)
	for {
		typ, payload, err := ReadFrame(resp.Body, buf)
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "output stream cancelled")
			}
			return nil, errs.Wrap(errs.Unavailable, err, "output stream from sandbox agent broke")
		}
		if cap(payload) > cap(buf) {
			buf = payload[:0]
		}
		switch typ {
		case FrameOffset:
			if len(payload) != 8 {
				return nil, errs.New(errs.Unavailable, "malformed offset frame")
			}
			off = int64(binary.BigEndian.Uint64(payload))
		case FrameStdout, FrameStderr:
			if off < 0 {
				return nil, errs.New(errs.Unavailable, "output stream without an offset")
			}
			if err := fn(OutputChunk{Offset: off, Stream: typ, Data: payload}); err != nil {
				return nil, err
			}
			off += int64(len(payload))
		case FrameExit:
			var res ExecResult
			if err := json.Unmarshal(payload, &res); err != nil {
				return nil, errs.Wrap(errs.Unavailable, err, "malformed exit frame")
			}
			return &res, nil
		default:
			return nil, errs.New(errs.Unavailable, "unknown output frame type %d", typ)
		}
	}
}

func procPath(id, suffix string) string {
	return "/processes/" + url.PathEscape(id) + suffix
}

// sendJSON sends in (nil: no body) and decodes a JSON answer into out (nil:
// discard).
func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	size := int64(-1)
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return errs.Wrap(errs.Internal, err, "encode agent request")
		}
		body, size, ctype = bytes.NewReader(b), int64(len(b)), "application/json"
	}
	resp, err := c.procDo(ctx, method, path, nil, body, size, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return errs.Wrap(errs.Unavailable, err, "sandbox agent sent a malformed answer")
	}
	return nil
}

// HeaderProcesses marks every answer of the session and process endpoints,
// so a host tells "no such process" (404 with it) from an agent that
// predates them (404 without: a sandbox created by an older server).
const HeaderProcesses = "X-Stacyvm-Processes"

// errAgentTooOld is the answer of an agent without the process endpoints.
func errAgentTooOld() error {
	return errs.New(errs.Conflict, "this sandbox's agent predates interactive sessions and background processes; create a new sandbox")
}

// procDo is Client.do for the process endpoints: an error answer without
// HeaderProcesses comes from an agent that lacks them.
func (c *Client) procDo(ctx context.Context, method, path string, q url.Values, body io.Reader, size int64, ctype string) (*http.Response, error) {
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
	resp, err := c.http.Do(req)
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
		if resp.StatusCode == http.StatusNotFound && resp.Header.Get(HeaderProcesses) == "" {
			return nil, errAgentTooOld()
		}
		return nil, decodeError(resp)
	}
	return resp, nil
}
