package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// API is a minimal StacyVM v1 client over plain net/http with keep-alive,
// kept small so that client overhead does not blur the server's figures.
type API struct {
	// Base is the API root, e.g. http://127.0.0.1:7423/api/v1.
	Base string
	// Image is sent with every spawn.
	Image string
	// Provider, when set, is sent with every spawn.
	Provider string
	hc       *http.Client
}

// NewAPI returns a client for base with a connection pool large enough for
// the concurrency sections.
func NewAPI(base, image string) *API {
	tr := &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &API{Base: base, Image: image, hc: &http.Client{Transport: tr}}
}

// Close drops idle connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

// apiError is a non-2xx answer.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// do sends one request and decodes a 2xx JSON answer into out (if non-nil).
func (a *API) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &apiError{Status: resp.StatusCode, Body: string(b)}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Spawn creates a sandbox and returns its id.
func (a *API) Spawn(ctx context.Context) (string, error) {
	var sb struct {
		ID string `json:"id"`
	}
	body := map[string]any{"ttl": "2h"}
	if a.Image != "" {
		body["image"] = a.Image
	}
	if a.Provider != "" {
		body["provider"] = a.Provider
	}
	if err := a.do(ctx, "POST", "/sandboxes", body, &sb); err != nil {
		return "", fmt.Errorf("spawn: %w", err)
	}
	return sb.ID, nil
}

// Destroy deletes a sandbox.
func (a *API) Destroy(ctx context.Context, id string) error {
	return a.do(ctx, "DELETE", "/sandboxes/"+id, nil, nil)
}

// ExecResult is the synchronous exec answer.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// Exec runs argv (argv mode) synchronously.
func (a *API) Exec(ctx context.Context, id string, argv ...string) (ExecResult, error) {
	var r ExecResult
	err := a.do(ctx, "POST", "/sandboxes/"+id+"/exec",
		map[string]any{"command": argv[0], "args": argv[1:], "mode": "argv"}, &r)
	if err == nil && r.ExitCode != 0 {
		err = fmt.Errorf("exec %q: exit %d: %s", argv, r.ExitCode, r.Stderr)
	}
	return r, err
}

// ExecStream runs argv with "stream":true and returns the number of stdout
// bytes decoded from the NDJSON lines and the exit code.
func (a *API) ExecStream(ctx context.Context, id string, argv ...string) (int64, int, error) {
	b, _ := json.Marshal(map[string]any{"command": argv[0], "args": argv[1:], "mode": "argv", "stream": true})
	req, err := http.NewRequestWithContext(ctx, "POST", a.Base+"/sandboxes/"+id+"/exec", bytes.NewReader(b))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, 0, &apiError{Status: resp.StatusCode, Body: string(body)}
	}
	// Lines are counted without a full JSON decode: decoding tens of MB of
	// \u0000 escapes costs the client more than the server spends sending
	// them, and would be charged to ours.
	br := bufio.NewReaderSize(resp.Body, 256<<10)
	var n int64
	exit := -1
	prefix := []byte(`{"stream":"stdout","data":"`)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: fall back to reading it whole.
			rest, rerr := br.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), rerr
		}
		if len(bytes.TrimSpace(line)) > 0 {
			if c, ok := countJSONString(line, prefix); ok {
				n += c
			} else {
				var l struct {
					Stream   string `json:"stream"`
					Data     string `json:"data"`
					ExitCode *int   `json:"exit_code"`
				}
				if jerr := json.Unmarshal(line, &l); jerr != nil {
					return n, exit, jerr
				}
				if l.Stream == "stdout" {
					n += int64(len(l.Data))
				} else if l.Stream == "exit" && l.ExitCode != nil {
					exit = *l.ExitCode
				}
			}
		}
		if err == io.EOF {
			return n, exit, nil
		}
		if err != nil {
			return n, exit, err
		}
	}
}

// countJSONString returns the decoded byte length of the JSON string that
// follows prefix in line, when line is exactly prefix + string + "}".
func countJSONString(line, prefix []byte) (int64, bool) {
	if !bytes.HasPrefix(line, prefix) {
		return 0, false
	}
	b := line[len(prefix):]
	var n int64
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			if bytes.Equal(bytes.TrimSpace(b[i+1:]), []byte("}")) {
				return n, true
			}
			return 0, false
		case c != '\\':
			n++
		case i+1 < len(b) && b[i+1] == 'u' && i+5 < len(b):
			v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
			if err != nil {
				return 0, false
			}
			switch {
			case v < 0x80:
				n++
			case v < 0x800:
				n += 2
			case v >= 0xD800 && v < 0xDC00:
				n += 4 // high surrogate: the pair is one 4-byte rune
			case v >= 0xDC00 && v < 0xE000:
			default:
				n += 3
			}
			i += 5
		default:
			n++
			i++
		}
	}
	return 0, false
}

// ExecRaw runs argv synchronously and returns the raw response body; the
// caller decodes it outside any timed section.
func (a *API) ExecRaw(ctx context.Context, id string, argv ...string) ([]byte, error) {
	b, _ := json.Marshal(map[string]any{"command": argv[0], "args": argv[1:], "mode": "argv"})
	req, err := http.NewRequestWithContext(ctx, "POST", a.Base+"/sandboxes/"+id+"/exec", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = &apiError{Status: resp.StatusCode, Body: string(body[:min(len(body), 512)])}
	}
	return body, err
}

// PutFile streams r to path with PUT files/raw.
func (a *API) PutFile(ctx context.Context, id, path string, r io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, "PUT",
		a.Base+"/sandboxes/"+id+"/files/raw?path="+url.QueryEscape(path), r)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &apiError{Status: resp.StatusCode, Body: string(b)}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// GetFile copies the file at path into w and returns its size.
func (a *API) GetFile(ctx context.Context, id, path string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET",
		a.Base+"/sandboxes/"+id+"/files?path="+url.QueryEscape(path), nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, &apiError{Status: resp.StatusCode, Body: string(b)}
	}
	return io.Copy(w, resp.Body)
}

// List fetches GET /sandboxes and returns how many sandboxes it holds.
func (a *API) List(ctx context.Context) (int, error) {
	var out []json.RawMessage
	err := a.do(ctx, "GET", "/sandboxes", nil, &out)
	return len(out), err
}

// Status returns the HTTP status of a GET on path (0 on transport error).
func (a *API) Status(ctx context.Context, path string) int {
	req, err := http.NewRequestWithContext(ctx, "GET", a.Base+path, nil)
	if err != nil {
		return 0
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
