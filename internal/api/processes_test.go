package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// fakeInteractive adds scripted interactive methods to the fake service:
// sessions fail with openErr (a real session needs an agent; the e2e tests
// run those), and one process "proc-1" exists with fixed output.
type fakeInteractive struct {
	*fakeService
	openErr error
	started []sandbox.ProcessRequest
}

var _ InteractiveService = (*fakeInteractive)(nil)

func (f *fakeInteractive) OpenSession(_ context.Context, id string, req sandbox.ProcessRequest) (*sandbox.Session, error) {
	if _, err := f.live(id); err != nil {
		return nil, err
	}
	return nil, f.openErr
}

func (f *fakeInteractive) StartProcess(_ context.Context, id string, req sandbox.ProcessRequest) (agent.ProcessInfo, error) {
	if _, err := f.live(id); err != nil {
		return agent.ProcessInfo{}, err
	}
	f.started = append(f.started, req)
	return agent.ProcessInfo{ID: "proc-1", PID: 7, Argv: []string{"/bin/sh", "-c", req.Command}, Running: true}, nil
}

func (f *fakeInteractive) ListProcesses(_ context.Context, id string) ([]agent.ProcessInfo, error) {
	if _, err := f.live(id); err != nil {
		return nil, err
	}
	return nil, nil
}

func (f *fakeInteractive) proc(id, pid string) error {
	if _, err := f.live(id); err != nil {
		return err
	}
	if pid != "proc-1" {
		return errs.New(errs.NotFound, "process %q not found", pid)
	}
	return nil
}

// fakeOutput is proc-1's output: "é" split across two chunks, then stderr.
var fakeOutput = []agent.OutputChunk{
	{Offset: 0, Stream: agent.FrameStdout, Data: []byte("caf\xc3")},
	{Offset: 4, Stream: agent.FrameStdout, Data: []byte("\xa9\n")},
	{Offset: 6, Stream: agent.FrameStderr, Data: []byte("warn\n")},
}

func (f *fakeInteractive) GetProcess(_ context.Context, id, pid string) (agent.ProcessInfo, error) {
	if err := f.proc(id, pid); err != nil {
		return agent.ProcessInfo{}, err
	}
	code := 0
	return agent.ProcessInfo{ID: pid, ExitCode: &code, OutputEnd: 11}, nil
}

func (f *fakeInteractive) ProcessOutput(_ context.Context, id, pid string, offset int64, _ bool, fn func(agent.OutputChunk) error) (*agent.ExecResult, error) {
	if err := f.proc(id, pid); err != nil {
		return nil, err
	}
	for _, c := range fakeOutput {
		if c.Offset+int64(len(c.Data)) <= offset {
			continue
		}
		if c.Offset < offset {
			c.Data, c.Offset = c.Data[offset-c.Offset:], offset
		}
		if err := fn(c); err != nil {
			return nil, err
		}
	}
	return &agent.ExecResult{ExitCode: 3}, nil
}

func (f *fakeInteractive) ProcessStdin(_ context.Context, id, pid string, data io.Reader, _ int64, _ bool) error {
	if err := f.proc(id, pid); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, data)
	return err
}

func (f *fakeInteractive) SignalProcess(_ context.Context, id, pid, signal string) error {
	if _, err := agent.ParseSignal(signal); err != nil {
		return err
	}
	return f.proc(id, pid)
}

func (f *fakeInteractive) ResizeProcess(_ context.Context, id, pid string, _, _ int) error {
	return f.proc(id, pid)
}

func (f *fakeInteractive) KillProcess(_ context.Context, id, pid string) (agent.ProcessInfo, error) {
	return f.GetProcess(context.Background(), id, pid)
}

func newInteractiveHarness(t *testing.T, openErr error) (*harness, *fakeInteractive) {
	fi := &fakeInteractive{fakeService: newFakeService(), openErr: openErr}
	h := newHarness(t, func(o *Options) { o.Service = fi })
	h.svc = fi.fakeService
	return h, fi
}

func TestProcesses_NotSupportedWithoutInteractiveService(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	rec := h.do("POST", "/sandboxes/"+id+"/processes", `{"command":"sleep 1"}`, "Content-Type", "application/json")
	wantError(t, rec, http.StatusServiceUnavailable, "UNAVAILABLE")
}

func TestProcesses_RoutesAndBadInput(t *testing.T) {
	h, fi := newInteractiveHarness(t, nil)
	id := h.create(`{}`)
	base := "/sandboxes/" + id + "/processes"
	jsonCT := []string{"Content-Type", "application/json"}

	rec := h.do("POST", base, `{"command":"npm run dev","tty":true,"cols":100,"rows":30,"stdin":true,"timeout":"2h","output_limit":65536}`, jsonCT...)
	if rec.Code != http.StatusCreated || decodeMap(t, rec)["id"] != "proc-1" {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	if got := fi.started[0]; got.Timeout != 2*time.Hour || !got.TTY || got.Cols != 100 || !got.Stdin || got.OutputLimit != 65536 {
		t.Errorf("service got %+v", got)
	}
	if rec := h.do("GET", base, ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("list: %d %s, want []", rec.Code, rec.Body)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", base, `{"command":""}`, 400, "BAD_REQUEST"},
		{"POST", base, `{"command":"x","mode":"weird"}`, 400, "BAD_REQUEST"},
		{"POST", base, `{"command":"x","timeout":"soon"}`, 400, "BAD_REQUEST"},
		{"POST", base, `{"command":"x","tty":"yes"}`, 400, "BAD_REQUEST"},
		{"POST", "/sandboxes/sb-000000000000/processes", `{"command":"x"}`, 404, "NOT_FOUND"},
		{"GET", base + "/proc-2", "", 404, "NOT_FOUND"},
		{"DELETE", base + "/proc-2", "", 404, "NOT_FOUND"},
		{"GET", base + "/proc-2/output", "", 404, "NOT_FOUND"},
		{"POST", base + "/proc-2/stdin", `{"data":"x"}`, 404, "NOT_FOUND"},
		{"POST", base + "/proc-1/signal", `{"signal":"SIGNOPE"}`, 400, "BAD_REQUEST"},
		{"POST", base + "/proc-1/signal", `{}`, 400, "BAD_REQUEST"},
		{"GET", base + "/proc-1/output?offset=-1", "", 400, "BAD_REQUEST"},
		{"GET", base + "/proc-1/output?offset=12", "", 400, "BAD_REQUEST"},
		{"GET", base + "/proc-1/output?follow=maybe", "", 400, "BAD_REQUEST"},
	} {
		rec := h.do(c.method, c.path, c.body, jsonCT...)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.code) {
			t.Errorf("%s %s %s: %d %s, want %d %s", c.method, c.path, c.body, rec.Code, rec.Body, c.status, c.code)
		}
	}
	if rec := h.do("POST", base+"/proc-1/signal", `{"signal":"SIGTERM"}`, jsonCT...); rec.Code != 200 {
		t.Errorf("signal: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("POST", base+"/proc-1/stdin?eof=true", "raw bytes", "Content-Type", "application/octet-stream"); rec.Code != 200 {
		t.Errorf("raw stdin: %d %s", rec.Code, rec.Body)
	}
}

func TestProcesses_OutputNDJSONKeepsRunesAndOffsets(t *testing.T) {
	h, _ := newInteractiveHarness(t, nil)
	id := h.create(`{}`)
	rec := h.do("GET", "/sandboxes/"+id+"/processes/proc-1/output", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("output: %d %s", rec.Code, rec.Body)
	}
	var lines []string
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	want := []string{
		`{"stream":"stdout","data":"caf","offset":0}`,
		`{"stream":"stdout","data":"é\n","offset":3}`, // the split rune waits for its tail
		`{"stream":"stderr","data":"warn\n","offset":6}`,
		`{"stream":"exit","data":"","exit_code":3}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	rec = h.do("GET", "/sandboxes/"+id+"/processes/proc-1/output?offset=5", "", "Accept", "application/octet-stream")
	if rec.Code != 200 || rec.Body.String() != "\nwarn\n" || rec.Header().Get("X-Output-Offset") != "5" {
		t.Errorf("raw from 5: %d %q offset %q", rec.Code, rec.Body, rec.Header().Get("X-Output-Offset"))
	}
}

func TestExecWS_ErrorsBeforeAndAfterUpgrade(t *testing.T) {
	h, _ := newInteractiveHarness(t, errs.New(errs.Conflict, "sandbox is paused, not running"))
	id := h.create(`{}`)
	srv := httptest.NewServer(h.h)
	defer srv.Close()
	url := srv.URL + BasePath + "/sandboxes/" + id + "/exec/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: %v %v, want 403", resp, err)
	}
	_, resp, err = websocket.Dial(ctx, srv.URL+BasePath+"/sandboxes/sb-000000000000/exec/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown sandbox: %v %v, want 404", resp, err)
	}
	// Same-origin browsers are fine; the service's Conflict closes with 4409.
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {srv.URL}}})
	if err != nil {
		t.Fatalf("same origin: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"command":"sh","tty":true}`)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read error message: %v", err)
	}
	var e wsError
	if json.Unmarshal(msg, &e); e.Stream != "error" || e.Code != "CONFLICT" || !strings.Contains(e.Message, "paused") {
		t.Errorf("error message %s", msg)
	}
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4409 || ce.Reason != "CONFLICT" {
		t.Errorf("close: %v, want 4409 CONFLICT", err)
	}
}

func TestAppendOutputMessage_EscapesAndReplacesInvalidUTF8(t *testing.T) {
	got := string(appendOutputMessage(nil, "stdout", []byte("a\"b\x1b[0m\xff")))
	want := `{"stream":"stdout","data":"a\"b\u001b[0m\ufffd"}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
