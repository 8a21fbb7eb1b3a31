package e2b

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// envd is E2B's in-sandbox daemon, reached through the sandbox proxy at
// https://49983-{sandboxID}.{domain}. Two of its calls are used, once per
// sandbox, to install and start our agent:
//
//   - POST /files?path=P&username=U, multipart/form-data with a "file" part
//     (github.com/e2b-dev/E2B spec/envd/envd.yaml): writes P, creating
//     parent directories, owned by U ("root" or "user"); 200 with a JSON
//     array of EntryInfo, errors as {"code","message"}.
//   - process.Process/Start (spec/envd/process/process.proto), a Connect
//     server-streaming RPC. We speak the Connect protocol's JSON codec by
//     hand: POST /process.Process/Start, Content-Type
//     application/connect+json, the request as one enveloped message
//     (1 flag byte, 4-byte big-endian length, JSON), the answer a stream
//     of such envelopes ({"event":{"start":{"pid":N}}}, data, end) closed
//     by an end-stream envelope (flag 0x02) that may carry
//     {"error":{"code","message"}}. The user is chosen by
//     "Authorization: Basic base64(user:)", as the SDKs do.
//
// Secure sandboxes also need "X-Access-Token: <envdAccessToken>" on both.
const envdPort = 49983

// envdUser is the sandbox user our agent runs as: root, like the agent in
// every other provider (execs may then drop privileges themselves).
const envdUser = "root"

type envd struct {
	hc    *http.Client
	base  string // https://49983-{id}.{domain}
	token string // envdAccessToken, "" for non-secure sandboxes
}

func (e *envd) header(req *http.Request) {
	if e.token != "" {
		req.Header.Set("X-Access-Token", e.token)
	}
}

// upload streams the host file src to dst inside the sandbox.
func (e *envd) upload(ctx context.Context, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "open agent binary")
	}
	defer f.Close()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() { // owned here: ends when the copy ends or the request closes pr
		part, err := mw.CreateFormFile("file", path.Base(dst))
		if err == nil {
			_, err = io.Copy(part, f)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	q := url.Values{"path": {dst}, "username": {envdUser}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/files?"+q.Encode(), pr)
	if err != nil {
		pr.Close()
		return errs.Wrap(errs.Internal, err, "build envd upload")
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	e.header(req)
	resp, err := e.hc.Do(req)
	pr.Close()
	if err != nil {
		return transportError(ctx, err, "E2B sandbox envd")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp, "envd upload")
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil
}

// processConfig, startRequest and processEvent are process.proto messages
// in protobuf's canonical JSON form.
type processConfig struct {
	Cmd  string            `json:"cmd"`
	Args []string          `json:"args,omitempty"`
	Envs map[string]string `json:"envs,omitempty"`
	Cwd  string            `json:"cwd,omitempty"`
}

type startRequest struct {
	Process processConfig `json:"process"`
	Tag     string        `json:"tag,omitempty"`
}

type processEvent struct {
	Event struct {
		Start *struct {
			PID uint32 `json:"pid"`
		} `json:"start,omitempty"`
		End *struct {
			ExitCode int32  `json:"exitCode"`
			Exited   bool   `json:"exited"`
			Status   string `json:"status"`
			Error    string `json:"error"`
		} `json:"end,omitempty"`
	} `json:"event"`
}

// Connect envelope flags.
const (
	connectFlagEndStream = 0x02
	connectMaxMessage    = 4 << 20
)

// start runs cfg in the sandbox and returns its pid once envd reports the
// start. The stream is then closed: envd keeps the process running after
// its client disconnects (the SDKs' "disconnect" of a background command).
// A process that ends before we hang up is an error with its output's end.
func (e *envd) start(ctx context.Context, cfg processConfig, tag string) (uint32, error) {
	msg, err := json.Marshal(startRequest{Process: cfg, Tag: tag})
	if err != nil {
		return 0, errs.Wrap(errs.Internal, err, "encode process start")
	}
	env := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(env[1:5], uint32(len(msg)))
	copy(env[5:], msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/process.Process/Start", bytes.NewReader(env))
	if err != nil {
		return 0, errs.Wrap(errs.Internal, err, "build process start")
	}
	req.ContentLength = int64(len(env))
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(envdUser+":")))
	e.header(req)
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, transportError(ctx, err, "E2B sandbox envd")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, statusError(resp, "envd process start")
	}
	br := bufio.NewReader(resp.Body)
	for {
		flags, payload, err := readEnvelope(br)
		if err != nil {
			return 0, errs.Wrap(errs.Unavailable, err, "envd process start: stream ended before the process started")
		}
		if flags&connectFlagEndStream != 0 {
			var end struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			json.Unmarshal(payload, &end)
			if end.Error != nil {
				return 0, errs.New(connectClass(end.Error.Code), "envd process start: %s: %s", end.Error.Code, end.Error.Message)
			}
			return 0, errs.New(errs.Unavailable, "envd process start: stream ended before the process started")
		}
		var ev processEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return 0, errs.Wrap(errs.Unavailable, err, "envd process start: malformed event")
		}
		switch {
		case ev.Event.Start != nil:
			return ev.Event.Start.PID, nil
		case ev.Event.End != nil:
			return 0, errs.New(errs.Unavailable, "envd process start: process ended at once (exit %d, %s)", ev.Event.End.ExitCode, ev.Event.End.Status)
		}
	}
}

// readEnvelope reads one Connect envelope.
func readEnvelope(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > connectMaxMessage {
		return 0, nil, fmt.Errorf("connect message of %d bytes exceeds %d", n, connectMaxMessage)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return h[0], b, nil
}

// connectClass maps a Connect error code to an error class.
func connectClass(code string) errs.Class {
	switch code {
	case "invalid_argument", "failed_precondition", "out_of_range":
		return errs.Invalid
	case "not_found":
		return errs.NotFound
	case "unauthenticated", "permission_denied":
		return errs.Unauthorized
	case "resource_exhausted":
		return errs.Limit
	case "deadline_exceeded":
		return errs.Timeout
	}
	return errs.Unavailable
}
