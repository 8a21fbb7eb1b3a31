package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// ErrNoExitStatus is returned by ExecStream when the stream ended without
// the final {"stream":"exit"} line (an older server, or a cut connection).
var ErrNoExitStatus = errors.New("apiclient: exec stream ended without an exit status")

// Exec runs a command and waits for it (sync mode). A non-zero exit code is
// a result, not an error; a timeout is an *APIError with code TIMEOUT.
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest) (*ExecResult, error) {
	req.Stream = false
	var res ExecResult
	if err := c.call(ctx, request{method: http.MethodPost, path: sandboxPath(id, "/exec"), body: req}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// ExecStream runs a command and calls fn for every stdout/stderr chunk in
// order as it arrives, then returns the exit code from the final
// {"stream":"exit","exit_code":N} line. An error returned by fn stops the
// stream and is returned. A {"stream":"error"} line becomes an *APIError.
func (c *Client) ExecStream(ctx context.Context, id string, req ExecRequest, fn func(ExecChunk) error) (int, error) {
	req.Stream = true
	resp, err := c.do(ctx, request{method: http.MethodPost, path: sandboxPath(id, "/exec"), body: req, accept: "application/x-ndjson"})
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()

	// A server that ignored the stream flag answers with a sync result.
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		var res ExecResult
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return -1, fmt.Errorf("apiclient: decode exec result: %w", err)
		}
		for _, ch := range []ExecChunk{{Stream: StreamStdout, Data: res.Stdout}, {Stream: StreamStderr, Data: res.Stderr}} {
			if ch.Data == "" {
				continue
			}
			if err := fn(ch); err != nil {
				return -1, err
			}
		}
		return res.ExitCode, nil
	}

	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var ch ExecChunk
			if jerr := json.Unmarshal(line, &ch); jerr != nil {
				return -1, fmt.Errorf("apiclient: bad exec stream line %q: %w", truncate(line, 120), jerr)
			}
			switch ch.Stream {
			case StreamExit:
				if ch.ExitCode == nil {
					return -1, fmt.Errorf("apiclient: exit line without exit_code")
				}
				return *ch.ExitCode, nil
			case "error":
				code := ch.Code
				if code == "" {
					code = "INTERNAL_ERROR"
				}
				return -1, &APIError{Status: resp.StatusCode, Code: code, Message: ch.Data, RequestID: resp.Header.Get("X-Request-ID")}
			case "":
				ch.Stream = StreamStdout // as the SDKs do
			}
			if ferr := fn(ch); ferr != nil {
				return -1, ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return -1, ErrNoExitStatus
		}
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, fmt.Errorf("apiclient: read exec stream: %w", err)
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
