package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

func TestExec_Sync(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	tests := []struct {
		name, body     string
		exit           float64
		stdout, stderr string
	}{
		{"echo", `{"command":"echo hello","args":["world"]}`, 0, "hello world\n", ""},
		{"non-zero exit is 200", `{"command":"exit 3"}`, 3, "", ""},
		{"stderr", `{"command":"warn oops"}`, 0, "", "oops\n"},
		{"argv", `{"command":"echo","args":["a b","c"],"mode":"argv"}`, 0, "a b c\n", ""},
		{"unknown fields tolerated", `{"command":"echo x","user":"root","tty":true}`, 0, "x\n", ""},
		{"timeout within limit", `{"command":"sleep 1ms","timeout":"5s"}`, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do("POST", "/sandboxes/"+id+"/exec", tt.body)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			m := decodeMap(t, rec)
			if diff := cmp.Diff([]string{"duration", "exit_code", "stderr", "stdout"}, keys(m)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if m["exit_code"] != tt.exit || m["stdout"] != tt.stdout || m["stderr"] != tt.stderr {
				t.Errorf("got %s, want exit %v stdout %q stderr %q", rec.Body, tt.exit, tt.stdout, tt.stderr)
			}
			if _, err := time.ParseDuration(m["duration"].(string)); err != nil {
				t.Errorf("duration %v is not a Go duration", m["duration"])
			}
		})
	}
}

func TestExec_SyncTimeoutIs408(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	m := wantError(t, h.do("POST", "/sandboxes/"+id+"/exec", `{"command":"sleep 10s","timeout":"20ms"}`), 408, "TIMEOUT")
	if want := "command timed out after 20ms; its process group was killed"; m["message"] != want {
		t.Errorf("message = %q, want %q", m["message"], want)
	}
}

func TestExec_RejectsBadInput(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	tests := []struct{ name, body, msg string }{
		{"empty body", ``, "required"},
		{"malformed", `{"command":`, "malformed"},
		{"missing command", `{"args":["x"]}`, "command"},
		{"argv without command", `{"mode":"argv","args":["x"]}`, "argv mode requires a command"},
		{"bad mode", `{"command":"ls","mode":"bash"}`, `"mode"`},
		{"negative timeout", `{"command":"ls","timeout":"-1s"}`, `"timeout"`},
		{"malformed timeout", `{"command":"ls","timeout":"ten"}`, `"timeout"`},
		{"numeric timeout", `{"command":"ls","timeout":10}`, `"timeout"`},
		{"args wrong type", `{"command":"ls","args":"-l"}`, `"args"`},
		{"env wrong type", `{"command":"ls","env":["A=1"]}`, `"env"`},
		{"stream wrong type", `{"command":"ls","stream":"yes"}`, `"stream"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := wantError(t, h.do("POST", "/sandboxes/"+id+"/exec", tt.body), 400, "BAD_REQUEST")
			if !strings.Contains(m["message"].(string), tt.msg) {
				t.Errorf("message %q does not contain %q", m["message"], tt.msg)
			}
		})
	}
}

func TestExec_SyncOutputIsCappedAndMarkedTruncated(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	h.svc.scripts["flood"] = func(_ context.Context, stdout, _ io.Writer) (sandbox.ExecResult, error) {
		chunk := []byte(strings.Repeat("é", 1<<19)) // 1 MiB of 2-byte runes
		for range 17 {
			_, _ = stdout.Write(chunk)
		}
		_, _ = stdout.Write([]byte("x")) // an odd byte: the cap may cut a rune
		return sandbox.ExecResult{}, nil
	}
	rec := h.do("POST", "/sandboxes/"+id+"/exec", `{"command":"flood"}`)
	m := decodeMap(t, rec)
	if m["truncated"] != true {
		t.Fatalf("truncated = %v, want true", m["truncated"])
	}
	if n := len(m["stdout"].(string)); n > maxExecOutput || n < maxExecOutput-4 {
		t.Errorf("stdout has %d bytes, want about %d", n, maxExecOutput)
	}
	if strings.ContainsRune(m["stdout"].(string), '\uFFFD') {
		t.Errorf("a rune cut by the cap became U+FFFD")
	}
}

// readLines decodes an NDJSON body.
func readLines(t *testing.T, body io.Reader) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestExecStream_FramesChunksAndEndsWithExit(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	euro := []byte("€") // 3 bytes: e2 82 ac
	h.svc.scripts["split"] = func(_ context.Context, stdout, stderr io.Writer) (sandbox.ExecResult, error) {
		_, _ = stdout.Write(append([]byte("price: "), euro[:1]...))
		_, _ = stderr.Write([]byte("warn\n"))
		_, _ = stdout.Write(euro[1:2])
		_, _ = stdout.Write(append(euro[2:], []byte("5\n")...))
		_, _ = stdout.Write([]byte{'a', 0xff, 'b'}) // truly invalid byte
		return sandbox.ExecResult{ExitCode: 7}, nil
	}
	for _, tt := range []struct {
		name, body string
		hdr        []string
	}{
		{"stream field", `{"command":"split","stream":true}`, nil},
		{"accept header", `{"command":"split"}`, []string{"Accept", "application/json, application/x-ndjson"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do("POST", "/sandboxes/"+id+"/exec", tt.body, tt.hdr...)
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
			}
			if !rec.Flushed {
				t.Error("stream was never flushed")
			}
			want := []map[string]any{
				{"stream": "stdout", "data": "price: "},
				{"stream": "stderr", "data": "warn\n"},
				{"stream": "stdout", "data": "€5\n"},
				{"stream": "stdout", "data": "a\uFFFDb"},
				{"stream": "exit", "data": "", "exit_code": float64(7)},
			}
			if diff := cmp.Diff(want, readLines(t, rec.Body)); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExecStream_TimeoutAndLateErrors(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	h.svc.scripts["fail-late"] = func(_ context.Context, stdout, _ io.Writer) (sandbox.ExecResult, error) {
		_, _ = stdout.Write([]byte("partial"))
		return sandbox.ExecResult{}, errs.New(errs.Unavailable, "sandbox agent went away")
	}
	h.svc.scripts["fail-late-internal"] = func(_ context.Context, stdout, _ io.Writer) (sandbox.ExecResult, error) {
		_, _ = stdout.Write([]byte("partial"))
		return sandbox.ExecResult{}, io.ErrClosedPipe
	}
	tests := []struct {
		name, body string
		last       map[string]any
	}{
		{"timeout", `{"command":"sleep 10s","timeout":"100ms","stream":true}`,
			map[string]any{"stream": "exit", "data": "", "exit_code": float64(-1), "timed_out": true}},
		{"error after start", `{"command":"fail-late","stream":true}`,
			map[string]any{"stream": "error", "data": "sandbox agent went away", "code": "UNAVAILABLE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do("POST", "/sandboxes/"+id+"/exec", tt.body)
			lines := readLines(t, rec.Body)
			if rec.Code != 200 || len(lines) == 0 {
				t.Fatalf("status %d, %d lines", rec.Code, len(lines))
			}
			if diff := cmp.Diff(tt.last, lines[len(lines)-1]); diff != "" {
				t.Errorf("last line (-want +got):\n%s", diff)
			}
		})
	}
	rec := h.do("POST", "/sandboxes/"+id+"/exec", `{"command":"fail-late-internal","stream":true}`)
	lines := readLines(t, rec.Body)
	last := lines[len(lines)-1]
	if last["code"] != "INTERNAL_ERROR" || strings.Contains(last["data"].(string), "pipe") {
		t.Errorf("internal error line leaks or misses code: %v", last)
	}
}

func TestExecStream_ErrorsBeforeStartAreJSON(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	h.svc.scripts["limit"] = func(context.Context, io.Writer, io.Writer) (sandbox.ExecResult, error) {
		return sandbox.ExecResult{}, errs.New(errs.Limit, "timeout exceeds max_exec_timeout")
	}
	wantError(t, h.do("POST", "/sandboxes/"+id+"/exec", `{"command":"limit","stream":true}`), 429, "RESOURCE_LIMIT")
	wantError(t, h.do("POST", "/sandboxes/sb-missing/exec", `{"command":"echo","stream":true}`), 404, "NOT_FOUND")
}

func TestExecStream_HeaderSentBeforeFirstOutput(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	srv := httptest.NewServer(h.h)
	defer srv.Close()
	start := time.Now()
	resp, err := http.Post(srv.URL+BasePath+"/sandboxes/"+id+"/exec", "application/json",
		strings.NewReader(`{"command":"sleep 1s","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if d := time.Since(start); resp.StatusCode != 200 || d > 900*time.Millisecond {
		t.Fatalf("status %d after %s; want 200 before the command ends", resp.StatusCode, d)
	}
	lines := readLines(t, resp.Body)
	if len(lines) != 1 || lines[0]["stream"] != "exit" {
		t.Errorf("lines = %v, want one exit line", lines)
	}
}

func TestExecStream_ClientDisconnectCancelsCommand(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "POST", BasePath+"/sandboxes/"+id+"/exec",
		strings.NewReader(`{"command":"sleep 30s","stream":true}`))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.h.ServeHTTP(httptest.NewRecorder(), req)
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running 5s after the client went away")
	}
}

func TestExecStream_ConcurrentStdoutStderrLinesStayWhole(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	h.svc.scripts["both"] = func(_ context.Context, stdout, stderr io.Writer) (sandbox.ExecResult, error) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 200 {
				_, _ = stderr.Write([]byte("err-line\n"))
			}
		}()
		for range 200 {
			_, _ = stdout.Write([]byte("out-line\n"))
		}
		<-done
		return sandbox.ExecResult{}, nil
	}
	rec := h.do("POST", "/sandboxes/"+id+"/exec", `{"command":"both","stream":true}`)
	counts := map[string]int{}
	for _, l := range readLines(t, rec.Body) {
		counts[l["stream"].(string)]++
		if s := l["stream"]; (s == "stdout" && l["data"] != "out-line\n") || (s == "stderr" && l["data"] != "err-line\n") {
			t.Fatalf("interleaved line: %v", l)
		}
	}
	if diff := cmp.Diff(map[string]int{"stdout": 200, "stderr": 200, "exit": 1}, counts); diff != "" {
		t.Errorf("line counts (-want +got):\n%s", diff)
	}
}
