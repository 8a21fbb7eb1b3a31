package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/preview"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// fakePreview adds ports to the fake service: a sandbox's port P is the
// host's 127.0.0.1:P, dialled directly (the real service goes through the
// agent; its e2e tests cover that path).
type fakePreview struct{ *fakeService }

func (f fakePreview) PortTarget(ctx context.Context, id string, port int) (*sandbox.Sandbox, error) {
	return f.Get(ctx, id)
}

func (f fakePreview) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if _, err := f.Get(ctx, id); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, errs.Wrap(errs.Unavailable, agent.ErrPortClosed, "nothing is listening on port %d inside the sandbox", port)
	}
	return c, err
}

const testKey = "preview-unit-key-0123456789"

type previewEnv struct {
	srv     *httptest.Server
	id      string
	port    int // the app's port
	signer  *preview.Signer
	apiPort string
}

func newPreviewEnv(t *testing.T) *previewEnv {
	t.Helper()
	return newPreviewEnvWith(t, nil)
}

// newPreviewEnvWith is newPreviewEnv with options adjusted by tweak.
func newPreviewEnvWith(t *testing.T, tweak func(*Options)) *previewEnv {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			// The app accepts any origin: the proxy's check is under test.
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, b, err := c.Read(r.Context())
			if err == nil {
				c.Write(r.Context(), typ, b)
			}
			c.Close(websocket.StatusNormalClosure, "")
			return
		}
		fmt.Fprintf(w, "path=%s key=%q cookie=%q prefix=%q host=%s", r.URL.RequestURI(), r.Header.Get("X-API-Key"), r.Header.Get("Cookie"), r.Header.Get("X-Forwarded-Prefix"), r.Host)
	}))
	t.Cleanup(app.Close)
	svc := newFakeService()
	signer, err := preview.NewSigner([]byte(strings.Repeat("s", 32)), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Service: fakePreview{svc}, APIKey: testKey, Logger: slog.New(slog.DiscardHandler),
		Preview: PreviewOptions{Domain: "localhost", PublicDomain: "localhost:1", Signer: signer},
	}
	if tweak != nil {
		tweak(&opts)
	}
	h := New(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	sb, err := svc.Create(context.Background(), sandbox.CreateRequest{Image: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, appPort, _ := net.SplitHostPort(strings.TrimPrefix(app.URL, "http://"))
	p, _ := strconv.Atoi(appPort)
	_, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	return &previewEnv{srv: srv, id: sb.ID, port: p, signer: signer, apiPort: apiPort}
}

func (e *previewEnv) get(t *testing.T, host, path, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	if host != "" {
		req.Host = host
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPreview_RoutesByHostAndPath(t *testing.T) {
	e := newPreviewEnv(t)
	host := fmt.Sprintf("%d-%s.localhost:%s", e.port, e.id, e.apiPort)
	code, body := e.get(t, host, "/a/b?x=1", testKey)
	if code != 200 || !strings.Contains(body, `path=/a/b?x=1 key=""`) || !strings.Contains(body, "host="+host) {
		t.Errorf("host routing: %d %s", code, body)
	}
	code, body = e.get(t, "", fmt.Sprintf("/preview/%s/%d/a%%2Fb?x=1", e.id, e.port), testKey)
	if code != 200 || !strings.Contains(body, `path=/a%2Fb?x=1 key=""`) || !strings.Contains(body, fmt.Sprintf(`prefix="/preview/%s/%d"`, e.id, e.port)) {
		t.Errorf("path routing: %d %s", code, body)
	}
	// The API itself is untouched on its own host.
	if code, _ := e.get(t, "", "/api/v1/health", ""); code != 200 {
		t.Errorf("API health through the hook: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(e.srv.URL, "http", "ws", 1)+fmt.Sprintf("/preview/%s/%d/ws", e.id, e.port),
		&websocket.DialOptions{HTTPHeader: http.Header{"X-API-Key": {testKey}}})
	if err != nil {
		t.Fatalf("websocket through the proxy: %v", err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, b, err := c.Read(ctx); err != nil || string(b) != "hi" {
		t.Errorf("websocket echo %q %v", b, err)
	}
}

func TestPreview_Errors(t *testing.T) {
	e := newPreviewEnv(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, c := range []struct {
		name, host, path, key string
		status                int
		code                  string
	}{
		{"closed port", "", fmt.Sprintf("/preview/%s/%d/", e.id, closed), testKey, 502, "BAD_GATEWAY"},
		{"port 0", "", "/preview/" + e.id + "/0/", testKey, 400, "BAD_REQUEST"},
		{"port 70000 by host", "70000-" + e.id + ".localhost", "/", testKey, 400, "BAD_REQUEST"},
		{"non-numeric port", "", "/preview/" + e.id + "/http/", testKey, 400, "BAD_REQUEST"},
		{"escape", "", fmt.Sprintf("/preview/%s/%d/a/../../x", e.id, e.port), testKey, 400, "BAD_REQUEST"},
		{"unknown sandbox", "", fmt.Sprintf("/preview/sb-00000000000000ff/%d/", e.port), testKey, 404, "NOT_FOUND"},
		{"no key", "", fmt.Sprintf("/preview/%s/%d/", e.id, e.port), "", 401, "UNAUTHORIZED"},
		{"bad token", "", fmt.Sprintf("/preview/%s/%d/?stacyvm_preview_token=v1.e30.AAAA", e.id, e.port), "", 401, "UNAUTHORIZED"},
	} {
		code, body := e.get(t, c.host, c.path, c.key)
		if code != c.status || !strings.Contains(body, `"code":"`+c.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, body, c.status, c.code)
		}
	}
}

func TestPreview_TokenSetsCookie(t *testing.T) {
	e := newPreviewEnv(t)
	tok, _ := e.signer.Mint(preview.Claims{Sandbox: e.id, Port: e.port, Expires: time.Now().Add(time.Minute)})
	req, _ := http.NewRequest("GET", e.srv.URL+fmt.Sprintf("/preview/%s/%d/x?stacyvm_preview_token=%s&keep=1", e.id, e.port, tok), nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "path=/x?keep=1 ") {
		t.Fatalf("token in query: %d %s", resp.StatusCode, b)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Path != fmt.Sprintf("/preview/%s/%d/", e.id, e.port) || !cookies[0].HttpOnly {
		t.Fatalf("cookies %v", resp.Header["Set-Cookie"])
	}
	req, _ = http.NewRequest("GET", e.srv.URL+fmt.Sprintf("/preview/%s/%d/sub", e.id, e.port), nil)
	req.AddCookie(cookies[0])
	req.Header.Add("Cookie", "app=1")
	resp, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `cookie="app=1"`) {
		t.Errorf("cookie auth: %d %s (the token cookie must not reach the app)", resp.StatusCode, b)
	}
}

// TestPreview_WebSocketOriginCheck: a page on another origin must not open a
// WebSocket to a preview with the visitor's preview cookie or credentials
// (cross-site WebSocket hijacking); the preview's own origin, listed CORS
// origins and clients without an Origin may.
func TestPreview_WebSocketOriginCheck(t *testing.T) {
	e := newPreviewEnvWith(t, func(o *Options) {
		op, err := NewOriginPolicy([]string{"https://app.example"}, false)
		if err != nil {
			t.Fatal(err)
		}
		o.Security.Origins = op
	})
	tok, _ := e.signer.Mint(preview.Claims{Sandbox: e.id, Port: e.port, Expires: time.Now().Add(time.Minute)})
	hostRouted := fmt.Sprintf("%d-%s.localhost:%s", e.port, e.id, e.apiPort)
	pathRouted := fmt.Sprintf("/preview/%s/%d/ws", e.id, e.port)
	apiOrigin := strings.Replace(e.srv.URL, "https://", "http://", 1)
	cookie := previewTokenCookie + "=" + tok
	cases := []struct {
		name, host, path, origin, key, cookie string
		upgrade                               bool
		status                                int
	}{
		{"no origin (non-browser), key", "", pathRouted, "", testKey, "", true, 101},
		{"no origin, cookie", "", pathRouted, "", "", cookie, true, 101},
		{"same origin, path routing", "", pathRouted, apiOrigin, "", cookie, true, 101},
		{"same origin, host routing", hostRouted, "/ws", "http://" + hostRouted, "", cookie, true, 101},
		{"listed origin", "", pathRouted, "https://app.example", testKey, "", true, 101},
		{"foreign origin with cookie", "", pathRouted, "http://evil.example", "", cookie, true, 403},
		{"foreign origin with key", "", pathRouted, "http://evil.example", testKey, "", true, 403},
		{"sibling preview (same site) with cookie", hostRouted, "/ws", fmt.Sprintf("http://8001-sb-0000000000000bad.localhost:%s", e.apiPort), "", cookie, true, 403},
		{"listed origin with another scheme", "", pathRouted, "http://app.example", testKey, "", true, 403},
		{"opaque origin", "", pathRouted, "null", "", cookie, true, 403},
		{"origin with the host as a suffix", hostRouted, "/ws", "http://evil" + hostRouted, "", cookie, true, 403},
		{"plain request from a foreign origin", "", fmt.Sprintf("/preview/%s/%d/x", e.id, e.port), "http://evil.example", testKey, "", false, 200},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("GET", e.srv.URL+c.path, nil)
		if c.host != "" {
			req.Host = c.host
		}
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.key != "" {
			req.Header.Set("X-API-Key", c.key)
		}
		if c.cookie != "" {
			req.Header.Set("Cookie", c.cookie)
		}
		if c.upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var body []byte
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ = io.ReadAll(resp.Body)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
			continue
		}
		if c.status == 403 && (!strings.Contains(string(body), `"code":"FORBIDDEN"`) || !strings.Contains(string(body), `"message":"origin`)) {
			t.Errorf("%s: body %s, want the typed FORBIDDEN error", c.name, body)
		}
	}
}
