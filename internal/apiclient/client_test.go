package apiclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// fakeAPI mimics the wire of API.md closely enough for the client: status
// codes, error bodies, NDJSON streams. It records the last request.
type fakeAPI struct {
	mu      sync.Mutex
	lastKey string
	lastReq map[string]any
	files   map[string][]byte
}

func (f *fakeAPI) last() (key string, body map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastKey, f.lastReq
}

const sbJSON = `{"id":"sb-0123456789ab","state":"running","provider":"docker","image":"stacyvm/busybox","memory_mb":512,"vcpus":1,"created_at":"2026-01-02T03:04:05Z","expires_at":"2026-01-02T03:34:05Z","metadata":{"a":"b"}}`

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-ID", "req-1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%q,"message":%q}`, code, msg)
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	readBody := func(r *http.Request) map[string]any {
		m := map[string]any{}
		_ = json.NewDecoder(r.Body).Decode(&m)
		f.mu.Lock()
		f.lastReq = m
		f.mu.Unlock()
		return m
	}
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"ok","version":"1.2.3","uptime":"1m0s"}`)
	})
	mux.HandleFunc("GET /api/v1/providers", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `[{"name":"docker","healthy":true,"default":true,"latency_ms":3,"last_checked":"2026-01-02T03:04:05Z","capabilities":["spawn","exec"]}]`)
	})
	mux.HandleFunc("POST /api/v1/sandboxes", func(w http.ResponseWriter, r *http.Request) {
		req := readBody(r)
		if req["image"] == "bad" {
			writeErr(w, 400, "BAD_REQUEST", "image: invalid reference")
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, sbJSON)
	})
	mux.HandleFunc("GET /api/v1/sandboxes", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("state") == "none" {
			io.WriteString(w, `null`)
			return
		}
		io.WriteString(w, "["+sbJSON+"]")
	})
	mux.HandleFunc("GET /api/v1/sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "sb-0123456789ab" {
			writeErr(w, 404, "NOT_FOUND", "sandbox not found")
			return
		}
		io.WriteString(w, sbJSON)
	})
	mux.HandleFunc("DELETE /api/v1/sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "sb-0123456789ab" {
			writeErr(w, 404, "NOT_FOUND", "sandbox not found")
			return
		}
		io.WriteString(w, `{"status":"destroyed"}`)
	})
	mux.HandleFunc("POST /api/v1/sandboxes/{id}/extend", func(w http.ResponseWriter, r *http.Request) {
		req := readBody(r)
		if req["ttl"] == "100h" {
			writeErr(w, 429, "RESOURCE_LIMIT", "ttl exceeds max_ttl 24h")
			return
		}
		io.WriteString(w, sbJSON)
	})
	mux.HandleFunc("POST /api/v1/sandboxes/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		req := readBody(r)
		switch {
		case req["command"] == "sleep":
			writeErr(w, 408, "TIMEOUT", "exec timed out after 1s")
		case req["stream"] == true && r.Header.Get("Accept") == "application/x-ndjson":
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprintln(w, `{"stream":"stdout","data":"hello\n"}`)
			w.(http.Flusher).Flush()
			fmt.Fprintln(w, `{"stream":"stderr","data":"oops\n"}`)
			if req["command"] != "cut" {
				fmt.Fprintln(w, `{"stream":"exit","data":"","exit_code":3}`)
			}
		default:
			io.WriteString(w, `{"exit_code":3,"stdout":"hello\n","stderr":"oops\n","duration":"5.07ms"}`)
		}
	})
	mux.HandleFunc("POST /api/v1/sandboxes/{id}/files", func(w http.ResponseWriter, r *http.Request) {
		req := readBody(r)
		content := []byte(req["content"].(string))
		if req["encoding"] == "base64" {
			content, _ = base64.StdEncoding.DecodeString(string(content))
		}
		f.mu.Lock()
		f.files[req["path"].(string)] = content
		f.mu.Unlock()
		io.WriteString(w, `{"status":"written"}`)
	})
	mux.HandleFunc("GET /api/v1/sandboxes/{id}/files", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		b, ok := f.files[r.URL.Query().Get("path")]
		f.mu.Unlock()
		if !ok {
			writeErr(w, 404, "NOT_FOUND", "file not found")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	})
	mux.HandleFunc("GET /api/v1/sandboxes/{id}/files/list", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `[{"path":"/a","size":3,"mode":"644","is_dir":false,"mod_time":"2026-01-02T03:04:05Z"}]`)
	})
	mux.HandleFunc("GET /api/v1/sandboxes/{id}/files/stat", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"path":%q,"size":0,"mode":"755","is_dir":true,"mod_time":"2026-01-02T03:04:05Z"}`, r.URL.Query().Get("path"))
	})
	mux.HandleFunc("GET /api/v1/sandboxes/{id}/files/glob", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `["/x/%s"]`, r.URL.Query().Get("pattern"))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.lastKey = r.Header.Get("X-API-Key")
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func newTest(t *testing.T) (*Client, *fakeAPI) {
	t.Helper()
	f := &fakeAPI{files: map[string][]byte{}}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return New(srv.URL+"/", "key-1"), f
}

func TestNew_BaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:7423":           "http://h:7423/api/v1",
		"http://h:7423/":          "http://h:7423/api/v1",
		"http://h:7423/api/v1/":   "http://h:7423/api/v1",
		"https://x/prefix/api/v1": "https://x/prefix/api/v1",
	} {
		if got := New(in, "").BaseURL(); got != want {
			t.Errorf("New(%q).BaseURL() = %q, want %q", in, got, want)
		}
	}
}

func TestClient_SandboxLifecycle(t *testing.T) {
	c, f := newTest(t)
	ctx := context.Background()

	sb, err := c.Spawn(ctx, SpawnRequest{Image: "stacyvm/busybox", TTL: "10m", Env: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &Sandbox{ID: "sb-0123456789ab", State: "running", Provider: "docker", Image: "stacyvm/busybox",
		MemoryMB: 512, VCPUs: 1, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		ExpiresAt: time.Date(2026, 1, 2, 3, 34, 5, 0, time.UTC), Metadata: map[string]string{"a": "b"}}
	if diff := cmp.Diff(want, sb); diff != "" {
		t.Errorf("Spawn (-want +got):\n%s", diff)
	}
	key, body := f.last()
	if key != "key-1" {
		t.Errorf("X-API-Key = %q", key)
	}
	if diff := cmp.Diff(map[string]any{"image": "stacyvm/busybox", "ttl": "10m", "env": map[string]any{"A": "1"}}, body); diff != "" {
		t.Errorf("spawn body (-want +got):\n%s", diff)
	}
	if _, err := c.Get(ctx, sb.ID); err != nil {
		t.Error(err)
	}
	list, err := c.List(ctx, ListOptions{})
	if err != nil || len(list) != 1 {
		t.Errorf("List = %v, %v", list, err)
	}
	if list, err := c.List(ctx, ListOptions{State: "none"}); err != nil || list == nil || len(list) != 0 {
		t.Errorf("List(null) = %#v, %v; want empty non-nil", list, err)
	}
	if _, err := c.Extend(ctx, sb.ID, "1h"); err != nil {
		t.Errorf("Extend: %v", err)
	}
	if _, body := f.last(); body["ttl"] != "1h" {
		t.Errorf("Extend body %v", body)
	}
	if err := c.Destroy(ctx, sb.ID); err != nil {
		t.Error(err)
	}
}

func TestClient_Errors(t *testing.T) {
	c, _ := newTest(t)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want APIError
	}{
		{"get unknown", func() error { _, err := c.Get(ctx, "sb-nope"); return err },
			APIError{Status: 404, Code: "NOT_FOUND", Message: "sandbox not found", RequestID: "req-1"}},
		{"destroy unknown", func() error { return c.Destroy(ctx, "sb-nope") },
			APIError{Status: 404, Code: "NOT_FOUND", Message: "sandbox not found", RequestID: "req-1"}},
		{"bad spawn", func() error { _, err := c.Spawn(ctx, SpawnRequest{Image: "bad"}); return err },
			APIError{Status: 400, Code: "BAD_REQUEST", Message: "image: invalid reference", RequestID: "req-1"}},
		{"extend over max", func() error { _, err := c.Extend(ctx, "sb-0123456789ab", "100h"); return err },
			APIError{Status: 429, Code: "RESOURCE_LIMIT", Message: "ttl exceeds max_ttl 24h", RequestID: "req-1"}},
		{"exec timeout", func() error { _, err := c.Exec(ctx, "sb-0123456789ab", ExecRequest{Command: "sleep"}); return err },
			APIError{Status: 408, Code: "TIMEOUT", Message: "exec timed out after 1s", RequestID: "req-1"}},
		{"unknown route, plain text body", func() error { return c.call(ctx, request{method: "GET", path: "/nope"}, nil) },
			APIError{Status: 404, Code: "NOT_FOUND", Message: "404 page not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if diff := cmp.Diff(&tt.want, ae); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
		})
	}
	_, err := c.Get(ctx, "sb-nope")
	if !IsNotFound(err) || err.Error() != "NOT_FOUND: sandbox not found" {
		t.Errorf("err = %v", err)
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.Class() != errs.NotFound {
		t.Errorf("class = %v", ae.Class())
	}
}

func TestClient_ExecSync(t *testing.T) {
	c, f := newTest(t)
	res, err := c.Exec(context.Background(), "sb-0123456789ab", ExecRequest{Command: "echo", Args: []string{"hi"}, Mode: ModeArgv, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&ExecResult{ExitCode: 3, Stdout: "hello\n", Stderr: "oops\n", Duration: "5.07ms"}, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, body := f.last(); body["stream"] != nil {
		t.Errorf("sync exec must not ask for a stream: %v", body)
	}
}

func TestClient_ExecStream(t *testing.T) {
	c, _ := newTest(t)
	ctx := context.Background()
	var got []ExecChunk
	code, err := c.ExecStream(ctx, "sb-0123456789ab", ExecRequest{Command: "x"}, func(ch ExecChunk) error {
		got = append(got, ch)
		return nil
	})
	if err != nil || code != 3 {
		t.Fatalf("code %d err %v", code, err)
	}
	want := []ExecChunk{{Stream: "stdout", Data: "hello\n"}, {Stream: "stderr", Data: "oops\n"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chunks (-want +got):\n%s", diff)
	}

	if _, err := c.ExecStream(ctx, "sb-0123456789ab", ExecRequest{Command: "cut"}, func(ExecChunk) error { return nil }); !errors.Is(err, ErrNoExitStatus) {
		t.Errorf("missing exit line: err = %v", err)
	}
	stop := errors.New("stop")
	if _, err := c.ExecStream(ctx, "sb-0123456789ab", ExecRequest{Command: "x"}, func(ExecChunk) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: err = %v", err)
	}
	var ae *APIError
	if _, err := c.ExecStream(ctx, "sb-0123456789ab", ExecRequest{Command: "sleep"}, func(ExecChunk) error { return nil }); !errors.As(err, &ae) || ae.Code != "TIMEOUT" {
		t.Errorf("timeout: err = %v", err)
	}
}

func TestClient_Files(t *testing.T) {
	c, f := newTest(t)
	ctx := context.Background()
	id := "sb-0123456789ab"
	for _, content := range [][]byte{[]byte("héllo"), {0xff, 0x00, 0xfe}} {
		if err := c.WriteFile(ctx, id, "/w/f", content, "0600"); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadFile(ctx, id, "/w/f")
		if err != nil || string(got) != string(content) {
			t.Errorf("ReadFile = %q, %v; want %q", got, err, content)
		}
	}
	if _, body := f.last(); body["mode"] != "0600" || body["encoding"] != "base64" {
		t.Errorf("binary write body = %v", body)
	}
	if _, err := c.ReadFile(ctx, id, "/missing"); !IsNotFound(err) {
		t.Errorf("missing file err = %v", err)
	}
	fis, err := c.ListFiles(ctx, id, "/")
	if err != nil || len(fis) != 1 || fis[0].Mode != "644" || fis[0].Size != 3 {
		t.Errorf("ListFiles = %+v, %v", fis, err)
	}
	fi, err := c.StatFile(ctx, id, "/dir with space")
	if err != nil || !fi.IsDir || fi.Path != "/dir with space" {
		t.Errorf("StatFile = %+v, %v", fi, err)
	}
	paths, err := c.Glob(ctx, id, "**/*.go")
	if err != nil || !cmp.Equal(paths, []string{"/x/**/*.go"}) {
		t.Errorf("Glob = %v, %v", paths, err)
	}
}

func TestClient_HealthAndProviders(t *testing.T) {
	c, _ := newTest(t)
	h, err := c.Health(context.Background())
	if err != nil || *h != (Health{Status: "ok", Version: "1.2.3", Uptime: "1m0s"}) {
		t.Errorf("Health = %+v, %v", h, err)
	}
	var h2 Health
	if err := json.Unmarshal([]byte(`{"status":"ok","uptime":90}`), &h2); err != nil || h2.Uptime != "1m30s" {
		t.Errorf("numeric uptime = %+v, %v", h2, err)
	}
	ps, err := c.Providers(context.Background())
	if err != nil || len(ps) != 1 || !ps[0].Default || !strings.Contains(strings.Join(ps[0].Capabilities, ","), "exec") {
		t.Errorf("Providers = %+v, %v", ps, err)
	}
}

func TestClient_ContextCancelled(t *testing.T) {
	c, _ := newTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Health(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
