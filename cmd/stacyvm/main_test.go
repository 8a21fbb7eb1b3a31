package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

const sbJSON = `{"id":"sb-0123456789ab","state":"running","provider":"docker","image":"stacyvm/busybox","memory_mb":512,"vcpus":1,"created_at":"2026-01-02T03:04:05Z","expires_at":"2026-01-02T03:34:05Z"}`

// fakeServer mimics the API wire for the commands under test and records
// the requests it saw.
type fakeServer struct {
	mu     sync.Mutex
	bodies []map[string]any
	keys   []string
}

func (f *fakeServer) lastBody() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return nil
	}
	return f.bodies[len(f.bodies)-1]
}

func apiErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%q,"message":%q}`, code, msg)
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{}
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.keys = append(f.keys, r.Header.Get("X-API-Key"))
	f.mu.Unlock()

	known := strings.HasPrefix(r.URL.Path, "/api/v1/sandboxes/sb-0123456789ab")
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/sandboxes":
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, sbJSON)
	case r.Method == "GET" && r.URL.Path == "/api/v1/sandboxes":
		io.WriteString(w, "["+sbJSON+"]")
	case !known:
		apiErr(w, 404, "NOT_FOUND", "sandbox not found")
	case r.Method == "DELETE":
		io.WriteString(w, `{"status":"destroyed"}`)
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/extend"):
		io.WriteString(w, sbJSON)
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/exec"):
		code := 0
		if body["command"] == "false" || strings.Contains(fmt.Sprint(body["command"]), "exit 7") {
			code = 7
		}
		if body["stream"] == true {
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprintln(w, `{"stream":"stdout","data":"out-1\n"}`)
			fmt.Fprintln(w, `{"stream":"stderr","data":"err-1\n"}`)
			fmt.Fprintln(w, `{"stream":"stdout","data":"out-2\n"}`)
			fmt.Fprintf(w, `{"stream":"exit","data":"","exit_code":%d}`+"\n", code)
			return
		}
		fmt.Fprintf(w, `{"exit_code":%d,"stdout":"out-1\nout-2\n","stderr":"err-1\n","duration":"1ms"}`, code)
	default:
		io.WriteString(w, sbJSON)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in-process against a fake server.
func runCLI(t *testing.T, environ []string, args ...string) (result, *fakeServer) {
	t.Helper()
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	var out, errOut bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, environ: environ,
		build: buildInfo{Version: "v9.9.9", Commit: "c0ffee"}}
	full := append([]string{"--server", srv.URL}, args...)
	if len(environ) > 0 && strings.HasPrefix(environ[0], "STACYVM_SERVER=") {
		environ[0] = "STACYVM_SERVER=" + srv.URL
		full = args
	}
	code := run(context.Background(), full, e)
	return result{code, out.String(), errOut.String()}, f
}

func TestCLI_Spawn(t *testing.T) {
	r, f := runCLI(t, nil, "spawn", "--image", "stacyvm/busybox", "--ttl", "1h", "--memory", "256",
		"--env", "A=1", "--env", "B=x=y", "--metadata", "task=42", "--network", "none")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"ID", "STATE", "IMAGE", "EXPIRES", "sb-0123456789ab", "running", "stacyvm/busybox"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout %q lacks %q", r.stdout, want)
		}
	}
	want := map[string]any{"image": "stacyvm/busybox", "ttl": "1h", "memory_mb": float64(256), "network": "none",
		"env": map[string]any{"A": "1", "B": "x=y"}, "metadata": map[string]any{"task": "42"}}
	if diff := cmp.Diff(want, f.lastBody()); diff != "" {
		t.Errorf("spawn body (-want +got):\n%s", diff)
	}
}

func TestCLI_OutputJSON(t *testing.T) {
	tests := [][]string{{"spawn"}, {"get", "sb-0123456789ab"}, {"extend", "sb-0123456789ab", "--ttl", "1h"}}
	for _, args := range tests {
		t.Run(args[0], func(t *testing.T) {
			r, _ := runCLI(t, nil, append([]string{"-o", "json"}, args...)...)
			var sb apiclient.Sandbox
			if err := json.Unmarshal([]byte(r.stdout), &sb); err != nil || r.code != 0 {
				t.Fatalf("code %d, stdout %q: %v", r.code, r.stdout, err)
			}
			if sb.ID != "sb-0123456789ab" || sb.State != "running" {
				t.Errorf("sandbox = %+v", sb)
			}
		})
	}
	r, _ := runCLI(t, nil, "list", "--output", "json")
	var sbs []apiclient.Sandbox
	if err := json.Unmarshal([]byte(r.stdout), &sbs); err != nil || len(sbs) != 1 {
		t.Errorf("list json %q: %v", r.stdout, err)
	}
}

func TestCLI_ExecExitCodePassthrough(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantBody map[string]any
	}{
		{"argv success", []string{"exec", "sb-0123456789ab", "--", "echo", "-n", "hi"}, 0,
			map[string]any{"command": "echo", "args": []any{"-n", "hi"}, "mode": "argv", "stream": true}},
		{"argv failure", []string{"exec", "sb-0123456789ab", "--", "false"}, 7,
			map[string]any{"command": "false", "mode": "argv", "stream": true}},
		{"shell", []string{"exec", "sb-0123456789ab", "--shell", "--workdir", "/tmp", "-e", "X=1", "--timeout", "5s", "--", "echo hi;", "exit 7"}, 7,
			map[string]any{"command": "echo hi; exit 7", "mode": "shell", "stream": true, "workdir": "/tmp",
				"env": map[string]any{"X": "1"}, "timeout": "5s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, f := runCLI(t, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", r.code, tt.wantCode, r.stderr)
			}
			if r.stdout != "out-1\nout-2\n" || r.stderr != "err-1\n" {
				t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
			}
			if diff := cmp.Diff(tt.wantBody, f.lastBody()); diff != "" {
				t.Errorf("exec body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCLI_ExecJSON(t *testing.T) {
	r, _ := runCLI(t, nil, "-o", "json", "exec", "sb-0123456789ab", "--", "false")
	var res apiclient.ExecResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout %q: %v", r.stdout, err)
	}
	if r.code != 7 || res.ExitCode != 7 || res.Stdout != "out-1\nout-2\n" {
		t.Errorf("code %d result %+v", r.code, res)
	}
}

func TestCLI_Errors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"api error is one line", []string{"get", "sb-unknown"}, 1, "error: NOT_FOUND: sandbox not found\n"},
		{"exec on unknown sandbox", []string{"exec", "sb-unknown", "--", "ls"}, 1, "error: NOT_FOUND: sandbox not found\n"},
		{"unknown command", []string{"frobnicate"}, 2, "error: unknown command \"frobnicate\" for \"stacyvm\"\n"},
		{"unknown flag", []string{"list", "--nope"}, 2, "error: unknown flag: --nope\n"},
		{"missing arg", []string{"get"}, 2, "error: accepts 1 arg(s), received 0\n"},
		{"bad kv", []string{"spawn", "--env", "NOEQUALS"}, 2, "error: --env wants KEY=VALUE, got \"NOEQUALS\"\n"},
		{"bad duration", []string{"extend", "sb-0123456789ab", "--ttl", "soon"}, 2, "error: --ttl must be a duration like 30s, 10m or 1h, got \"soon\"\n"},
		{"bad output", []string{"-o", "yaml", "list"}, 2, "error: --output must be table or json, got \"yaml\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := runCLI(t, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", r.code, tt.wantCode)
			}
			first, _, _ := strings.Cut(r.stderr, "\n")
			if first+"\n" != tt.wantStderr {
				t.Errorf("stderr = %q, want first line %q", r.stderr, tt.wantStderr)
			}
			if strings.Contains(r.stderr, "Usage:") || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("stderr has a usage dump or stack: %q", r.stderr)
			}
		})
	}
}

func TestCLI_Kill(t *testing.T) {
	r, _ := runCLI(t, nil, "rm", "sb-0123456789ab")
	if r.code != 0 || r.stdout != "sb-0123456789ab destroyed\n" {
		t.Errorf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r, _ = runCLI(t, nil, "kill", "sb-0123456789ab", "sb-gone")
	if r.code != 1 || !strings.Contains(r.stderr, "sb-gone: NOT_FOUND: sandbox not found") ||
		!strings.Contains(r.stderr, "error: 1 of 2 sandboxes not destroyed") {
		t.Errorf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCLI_APIKeyAndServerFromEnv(t *testing.T) {
	_, f := runCLI(t, []string{"STACYVM_SERVER=set-by-runCLI", "STACYVM_API_KEY=env-key"}, "list")
	if len(f.keys) != 1 || f.keys[0] != "env-key" {
		t.Errorf("X-API-Key = %q, want env-key", f.keys)
	}
	_, f = runCLI(t, []string{"STACYVM_API_KEY=env-key"}, "--api-key", "flag-key", "list")
	if len(f.keys) != 1 || f.keys[0] != "flag-key" {
		t.Errorf("X-API-Key = %q, want flag-key", f.keys)
	}
}

func TestCLI_Version(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r, _ := runCLI(t, nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "stacyvm v9.9.9\ncommit: c0ffee\ngo: go") {
			t.Errorf("%v: code %d stdout %q", args, r.code, r.stdout)
		}
	}
	r, _ := runCLI(t, nil, "-o", "json", "version")
	var b buildInfo
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil || b.Version != "v9.9.9" || b.Commit != "c0ffee" || b.Go == "" {
		t.Errorf("version json %q: %v", r.stdout, err)
	}
}

func TestCLI_ServeRejectsInvalidConfig(t *testing.T) {
	r, _ := runCLI(t, []string{"STACYVM_SERVER_PORT=0", "STACYVM_LOGGING_LEVEL=loud"}, "serve", "--config", "/nonexistent/stacyvm.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, "error: config: file /nonexistent/stacyvm.yaml") {
		t.Errorf("code %d stderr %q", r.code, r.stderr)
	}
	r, _ = runCLI(t, []string{"HOME=" + t.TempDir(), "STACYVM_SERVER_PORT=0", "STACYVM_LOGGING_LEVEL=loud", "STACYVM_DATA_DIR=" + t.TempDir()}, "serve")
	if r.code != 1 || !strings.Contains(r.stderr, "server.port: must be between 1 and 65535") ||
		!strings.Contains(r.stderr, "logging.level:") {
		t.Errorf("code %d stderr %q", r.code, r.stderr)
	}
}
