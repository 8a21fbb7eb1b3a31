package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// previewKey is the API key of the preview tests' servers.
const previewKey = "preview-e2e-key-0123456789abcdef"

// previewApp is a small HTTP server for the sandbox: plain answers, a
// request echo, a chunked SSE stream, a WebSocket echo (python3's standard
// library has no WebSocket server, so the handshake and framing are here)
// and a page whose JavaScript fetches a subresource and opens a WebSocket.
const previewApp = `
import sys, json, time, hashlib, base64, struct
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

PAGE = """<!doctype html><html><body><div id="fetch">pending</div><div id="ws">pending</div>
<div id="stream">pending</div><div id="sse">pending</div>
<script>
fetch('data.json').then(r => r.json()).then(j => { document.getElementById('fetch').textContent = 'fetch:' + j.msg })
  .catch(e => { document.getElementById('fetch').textContent = 'fetch-error:' + e });
const u = new URL('ws', location.href); u.protocol = u.protocol.replace('http', 'ws');
const ws = new WebSocket(u.href);
ws.onopen = () => ws.send('hello-ws');
ws.onmessage = e => { document.getElementById('ws').textContent = 'ws:' + e.data; ws.close(); };
ws.onerror = () => { document.getElementById('ws').textContent = 'ws-error'; };
// Streaming: the chunks of /stream (1 s apart) must arrive one by one, so
// the first read comes long before the last ("spread", in ms).
(async () => {
  const el = document.getElementById('stream'), t0 = performance.now(), times = [];
  try {
    const rd = (await fetch('stream')).body.getReader(), dec = new TextDecoder();
    let text = '';
    for (;;) {
      const {done, value} = await rd.read();
      if (done) break;
      text += dec.decode(value, {stream: true}); times.push(performance.now() - t0);
    }
    const ticks = text.split('\\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6));
    el.textContent = 'stream:' + ticks.join(',') + ' reads=' + times.length + ' spread=' + Math.round(times[times.length - 1] - times[0]);
  } catch (e) { el.textContent = 'stream-error:' + e; }
})();
const es = new EventSource('stream'), got = [], at = [];
es.onmessage = e => {
  got.push(e.data); at.push(performance.now());
  if (got.length === 3) { es.close(); document.getElementById('sse').textContent = 'sse:' + got.join(',') + ' spread=' + Math.round(at[2] - at[0]); }
};
es.onerror = () => { es.close(); document.getElementById('sse').textContent = 'sse-error:' + got.join(','); };
</script></body></html>"""

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered writes: head and body leave in one segment. Unbuffered, the
    # body waits on Nagle for the ACK of the head, and a delayed ACK costs
    # 40 ms per request on whichever path meets it (measured).
    wbufsize = 1 << 16
    def log_message(self, *a): pass
    def body(self, code, ctype, b):
        self.send_response(code); self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        p = self.path.split("?")[0]
        if p in ("/", "/index.html"): return self.body(200, "text/html", PAGE.encode())
        if p == "/data.json": return self.body(200, "application/json", json.dumps({"msg": "from-sandbox"}).encode())
        if p == "/small": return self.body(200, "text/plain", b"ok")
        if p.startswith("/echo"):
            info = {"path": self.path, "host": self.headers.get("Host"), "headers": {k.lower(): v for k, v in self.headers.items()}}
            return self.body(200, "application/json", json.dumps(info).encode())
        if p == "/stream":
            self.send_response(200); self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            for i in range(3):
                d = ("data: tick %d\n\n" % i).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(d), d)); self.wfile.flush()
                time.sleep(1)
            self.wfile.write(b"0\r\n\r\n"); self.wfile.flush(); return
        if p == "/ws": return self.websocket()
        self.body(404, "text/plain", b"nope")
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.body(200, "application/octet-stream", self.rfile.read(n))
    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if not key: return self.body(400, "text/plain", b"not a websocket")
        acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101); self.send_header("Upgrade", "websocket"); self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc); self.end_headers(); self.wfile.flush()
        r, w = self.rfile, self.wfile
        while True:
            h = r.read(2)
            if len(h) < 2: break
            op, n = h[0] & 0x0f, h[1] & 0x7f
            if n == 126: n = struct.unpack("!H", r.read(2))[0]
            elif n == 127: n = struct.unpack("!Q", r.read(8))[0]
            mask = r.read(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytearray(r.read(n))
            for i in range(n): data[i] ^= mask[i % 4]
            if op == 8:
                w.write(b"\x88\x02\x03\xe8"); w.flush(); break
            if op == 9: op = 10
            hdr = bytes([0x80 | op])
            if n < 126: hdr += bytes([n])
            elif n < 65536: hdr += bytes([126]) + struct.pack("!H", n)
            else: hdr += bytes([127]) + struct.pack("!Q", n)
            w.write(hdr + bytes(data)); w.flush()
        self.close_connection = True

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
`

// appPort is where previewApp listens inside the sandbox.
const appPort = 8000

// keyedServer starts a server that requires previewKey.
func keyedServer(t *testing.T, extraEnv ...string) *server {
	return startServer(t, "", append([]string{"STACYVM_AUTH_API_KEY=" + previewKey}, extraEnv...)...)
}

// kdo does one request with the API key (when key != "") against url.
func kdo(t *testing.T, c *http.Client, method, u, key string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// kcall is server.call with the API key, under /api/v1.
func (s *server) kcall(method, path string, body any, out any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	resp, data := kdo(s.t, nil, method, s.url+path, previewKey, rd, map[string]string{"Content-Type": "application/json"})
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, data
}

// root is the server's base URL without /api/v1.
func (s *server) root() string { return strings.TrimSuffix(s.url, "/api/v1") }

func (s *server) hostPort() string { u, _ := url.Parse(s.url); return u.Host }

// startApp spawns a stacyvm/python sandbox with network mode network, starts
// previewApp in it and waits until it answers through the preview proxy.
func startApp(t *testing.T, s *server, network string) string {
	t.Helper()
	var sb sandboxJSON
	if code, data := s.kcall("POST", "/sandboxes", map[string]any{"image": "stacyvm/python", "network": network}, &sb); code != 201 {
		t.Fatalf("spawn: %d %s", code, data)
	}
	if code, data := s.kcall("POST", "/sandboxes/"+sb.ID+"/files", map[string]any{"path": "/app/app.py", "content": previewApp}, nil); code != 200 {
		t.Fatalf("write app: %d %s", code, data)
	}
	cmd := fmt.Sprintf("python3 /app/app.py %d >/tmp/app.log 2>&1 </dev/null &", appPort)
	if code, data := s.kcall("POST", "/sandboxes/"+sb.ID+"/exec", map[string]any{"command": cmd}, nil); code != 200 {
		t.Fatalf("start app: %d %s", code, data)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, _ := kdo(t, nil, "GET", fmt.Sprintf("%s/preview/%s/%d/small", s.root(), sb.ID, appPort), previewKey, nil, nil)
		if resp.StatusCode == 200 {
			return sb.ID
		}
		time.Sleep(100 * time.Millisecond)
	}
	var r execJSON
	s.kcall("POST", "/sandboxes/"+sb.ID+"/exec", map[string]any{"command": "cat /tmp/app.log"}, &r)
	t.Fatalf("the app in %s never answered through the preview; its log: %s", sb.ID, r.Stdout)
	return ""
}

// hostClient sends every request to the server's address whatever the URL's
// host, so Host-routed preview URLs (*.localhost) work without DNS.
func hostClient(s *server) *http.Client {
	addr := s.hostPort()
	var d net.Dialer
	return &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// previewRoute is one way of reaching a sandbox port.
type previewRoute struct {
	name   string
	base   func(id string, port int) string // URL of "/" of the port
	client *http.Client
}

func previewRoutes(s *server) []previewRoute {
	_, port, _ := net.SplitHostPort(s.hostPort())
	return []previewRoute{
		{name: "host", client: hostClient(s), base: func(id string, p int) string {
			return fmt.Sprintf("http://%d-%s.localhost:%s", p, id, port)
		}},
		{name: "path", client: http.DefaultClient, base: func(id string, p int) string {
			return fmt.Sprintf("%s/preview/%s/%d", s.root(), id, p)
		}},
	}
}

// TestPreview_PlainStreamingWebSocket: a real server inside the sandbox,
// reached by Host and by path, over bridge and over network none.
func TestPreview_PlainStreamingWebSocket(t *testing.T) {
	s := keyedServer(t)
	for _, network := range []string{"bridge", "none"} {
		id := startApp(t, s, network)
		var sb struct {
			PreviewDomain string `json:"preview_domain"`
		}
		s.kcall("GET", "/sandboxes/"+id, nil, &sb)
		if _, port, _ := net.SplitHostPort(s.hostPort()); sb.PreviewDomain != "localhost:"+port {
			t.Errorf("sandbox JSON preview_domain = %q, want localhost:%s", sb.PreviewDomain, port)
		}
		for _, rt := range previewRoutes(s) {
			t.Run(network+"/"+rt.name, func(t *testing.T) {
				base := rt.base(id, appPort)
				resp, data := kdo(t, rt.client, "GET", base+"/small", previewKey, nil, nil)
				if resp.StatusCode != 200 || string(data) != "ok" {
					t.Fatalf("GET /small: %d %q", resp.StatusCode, data)
				}
				// The app sees its own path and query, never our credentials.
				resp, data = kdo(t, rt.client, "GET", base+"/echo/a%2Fb?x=1&y=2", previewKey, nil, map[string]string{"Cookie": "app=1"})
				var echo struct {
					Path    string            `json:"path"`
					Host    string            `json:"host"`
					Headers map[string]string `json:"headers"`
				}
				json.Unmarshal(data, &echo)
				if resp.StatusCode != 200 || echo.Path != "/echo/a%2Fb?x=1&y=2" || echo.Headers["x-api-key"] != "" || echo.Headers["cookie"] != "app=1" {
					t.Errorf("echo: %d path %q headers %v", resp.StatusCode, echo.Path, echo.Headers)
				}
				if rt.name == "path" && echo.Headers["x-forwarded-prefix"] != "/preview/"+id+"/8000" {
					t.Errorf("X-Forwarded-Prefix = %q", echo.Headers["x-forwarded-prefix"])
				}
				// A 1 MiB body goes up and comes back.
				payload := make([]byte, 1<<20)
				rand.Read(payload)
				resp, data = kdo(t, rt.client, "POST", base+"/upload", previewKey, bytes.NewReader(payload), nil)
				if resp.StatusCode != 200 || !bytes.Equal(data, payload) {
					t.Errorf("POST 1 MiB: %d, %d bytes back, equal=%v", resp.StatusCode, len(data), bytes.Equal(data, payload))
				}
				checkStreaming(t, rt.client, base+"/stream")
				checkWebSocket(t, rt.client, base+"/ws")
			})
		}
	}
}

// checkStreaming: the first event arrives long before the response ends.
func checkStreaming(t *testing.T, c *http.Client, u string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("X-API-Key", previewKey)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	first := time.Since(start)
	if err != nil || line != "data: tick 0\n" {
		t.Fatalf("first stream line %q %v", line, err)
	}
	rest, _ := io.ReadAll(br)
	total := time.Since(start)
	if !strings.Contains(string(rest), "tick 2") {
		t.Errorf("stream ended without tick 2: %q", rest)
	}
	if first > 800*time.Millisecond || total < 1900*time.Millisecond {
		t.Errorf("first event after %v, end after %v: want the first byte well before the end (~2 s)", first, total)
	}
	t.Logf("stream: first event after %v, end after %v", first.Round(time.Millisecond), total.Round(time.Millisecond))
}

// checkWebSocket: text and 200 KB binary messages echo through the proxy.
func checkWebSocket(t *testing.T, c *http.Client, u string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(u, "http", "ws", 1), &websocket.DialOptions{
		HTTPClient: c, HTTPHeader: http.Header{"X-API-Key": {previewKey}},
	})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	big := make([]byte, 200<<10)
	rand.Read(big)
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{{websocket.MessageText, []byte("hello")}, {websocket.MessageBinary, big}} {
		if err := conn.Write(ctx, m.typ, m.data); err != nil {
			t.Fatalf("ws write: %v", err)
		}
		typ, got, err := conn.Read(ctx)
		if err != nil || typ != m.typ || !bytes.Equal(got, m.data) {
			t.Fatalf("ws echo: type %v, %d bytes, %v; want %d bytes back", typ, len(got), err, len(m.data))
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

// TestPreview_BadInput: closed ports, bad ports, escapes, missing or bad
// credentials and tokens.
func TestPreview_BadInput(t *testing.T) {
	s := keyedServer(t)
	id := startApp(t, s, "bridge")
	for _, rt := range previewRoutes(s) {
		t.Run(rt.name, func(t *testing.T) {
			start := time.Now()
			resp, data := kdo(t, rt.client, "GET", rt.base(id, 9)+"/", previewKey, nil, nil)
			took := time.Since(start)
			wantError(t, "closed port", resp.StatusCode, data, 502, "BAD_GATEWAY")
			if took > 2*time.Second || !strings.Contains(string(data), "nothing is listening on port 9") {
				t.Errorf("closed port: %v, %s; want a clear message within 2 s", took, data)
			}
			t.Logf("closed port answered in %v", took.Round(time.Millisecond))
			for _, p := range []string{"0", "70000", "abc"} {
				u := strings.Replace(rt.base(id, 1234), "1234", p, 1) + "/"
				resp, data := kdo(t, rt.client, "GET", u, previewKey, nil, nil)
				wantError(t, "port "+p, resp.StatusCode, data, 400, "BAD_REQUEST")
			}
			resp, data = kdo(t, rt.client, "GET", rt.base("sb-0123456789abcdef", appPort)+"/", previewKey, nil, nil)
			wantError(t, "unknown sandbox", resp.StatusCode, data, 404, "NOT_FOUND")
			resp, data = kdo(t, rt.client, "GET", rt.base(id, appPort)+"/small", "", nil, nil)
			wantError(t, "no credentials", resp.StatusCode, data, 401, "UNAUTHORIZED")
			resp, data = kdo(t, rt.client, "GET", rt.base(id, appPort)+"/small", "wrong-key-0123456789", nil, nil)
			wantError(t, "wrong key", resp.StatusCode, data, 401, "UNAUTHORIZED")
		})
	}
	// Path routing: nothing climbs out of the prefix, encoded or not.
	for _, p := range []string{"/a/../../../api/v1/sandboxes", "/%2e%2e/%2e%2e/sb-1/80/", "/./small"} {
		resp, data := rawGet(t, s.hostPort(), fmt.Sprintf("/preview/%s/%d%s", id, appPort, p))
		wantError(t, "escape "+p, resp.StatusCode, data, 400, "BAD_REQUEST")
	}
	// The bare prefix redirects to its slashed form (relative links work).
	resp, _ := kdo(t, hostClient(s), "GET", fmt.Sprintf("%s/preview/%s/%d?q=1", s.root(), id, appPort), previewKey, nil, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != fmt.Sprintf("/preview/%s/%d/?q=1", id, appPort) {
		t.Errorf("bare prefix: %d Location %q", resp.StatusCode, loc)
	}
}

// rawGet sends a request line as written (no client-side path cleaning).
func rawGet(t *testing.T, addr, target string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\nConnection: close\r\n\r\n", target, addr, previewKey)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

type previewTokenJSON struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	URL       string `json:"url"`
	PathURL   string `json:"path_url"`
}

func mintToken(t *testing.T, s *server, id string, port int, ttl string) previewTokenJSON {
	t.Helper()
	var tok previewTokenJSON
	body := map[string]any{}
	if ttl != "" {
		body["ttl"] = ttl
	}
	if code, data := s.kcall("POST", fmt.Sprintf("/sandboxes/%s/preview/%d/token", id, port), body, &tok); code != 200 {
		t.Fatalf("mint token: %d %s", code, data)
	}
	return tok
}

// TestPreview_Tokens: a shared URL works without the API key, sets a
// cookie for the page's subresources, and only for its sandbox and port;
// expired and forged tokens are 401.
func TestPreview_Tokens(t *testing.T) {
	s := keyedServer(t)
	id := startApp(t, s, "bridge")
	tok := mintToken(t, s, id, appPort, "10m")
	if !strings.HasPrefix(tok.URL, fmt.Sprintf("http://%d-%s.localhost:", appPort, id)) || !strings.Contains(tok.PathURL, "/preview/"+id+"/8000/?stacyvm_preview_token=") {
		t.Fatalf("token URLs: %+v", tok)
	}
	for _, u := range []string{tok.URL, tok.PathURL} {
		c := hostClient(s)
		resp, data := kdo(t, c, "GET", u, "", nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(data), "<div id=\"fetch\">") {
			t.Fatalf("token URL %s: %d %.100s", u, resp.StatusCode, data)
		}
		var cookie *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "stacyvm_preview_token" {
				cookie = ck
			}
		}
		if cookie == nil || !cookie.HttpOnly {
			t.Fatalf("token URL %s set no HttpOnly cookie: %v", u, resp.Header["Set-Cookie"])
		}
		sub := strings.Split(u, "?")[0] + "echo"
		resp, data = kdo(t, c, "GET", sub, "", nil, map[string]string{"Cookie": cookie.Name + "=" + cookie.Value + "; app=2"})
		if resp.StatusCode != 200 || strings.Contains(string(data), "stacyvm_preview_token") || !strings.Contains(string(data), "app=2") {
			t.Errorf("subresource with the cookie: %d %s", resp.StatusCode, data)
		}
	}
	// The token is for port 8000 of this sandbox only.
	other := strings.Replace(tok.PathURL, "/8000/", "/8001/", 1)
	resp, data := kdo(t, nil, "GET", other, "", nil, nil)
	wantError(t, "token on another port", resp.StatusCode, data, 401, "UNAUTHORIZED")
	// Forged: one character of the MAC changed.
	i := strings.LastIndex(tok.PathURL, ".") + 3
	flip := map[byte]byte{'A': 'B'}[tok.PathURL[i]]
	if flip == 0 {
		flip = 'A'
	}
	forged := tok.PathURL[:i] + string(flip) + tok.PathURL[i+1:]
	resp, data = kdo(t, nil, "GET", forged, "", nil, nil)
	wantError(t, "forged token", resp.StatusCode, data, 401, "UNAUTHORIZED")
	// Expired.
	short := mintToken(t, s, id, appPort, "1s")
	time.Sleep(1500 * time.Millisecond)
	resp, data = kdo(t, nil, "GET", short.PathURL, "", nil, nil)
	wantError(t, "expired token", resp.StatusCode, data, 401, "UNAUTHORIZED")
	if !strings.Contains(string(data), "expired") {
		t.Errorf("expired token message: %s", data)
	}
	// Minting: bad port, bad ttl, unknown sandbox, no key.
	for _, c := range []struct {
		path   string
		body   any
		status int
	}{
		{"/sandboxes/" + id + "/preview/0/token", nil, 400},
		{"/sandboxes/" + id + "/preview/abc/token", nil, 400},
		{"/sandboxes/" + id + "/preview/8000/token", map[string]any{"ttl": "9999h"}, 400},
		{"/sandboxes/" + id + "/preview/8000/token", map[string]any{"ttl": "-1m"}, 400},
		{"/sandboxes/sb-00000000000000aa/preview/8000/token", nil, 404},
	} {
		if code, data := s.kcall("POST", c.path, c.body, nil); code != c.status {
			t.Errorf("POST %s %v: %d %s, want %d", c.path, c.body, code, data, c.status)
		}
	}
	if code, _ := s.call("POST", "/sandboxes/"+id+"/preview/8000/token", nil, nil); code != 401 {
		t.Errorf("minting without a key: %d, want 401", code)
	}
}

// TestPreview_Chromium: a real headless Chromium opens a shared preview URL
// (no API key: the token in the URL becomes a cookie); the page's script
// fetches a subresource, echoes over a WebSocket, reads a chunked stream
// with fetch and a ReadableStream and the same stream with EventSource, and
// the test reads the results from the DOM. The stream's three events are
// sent 1 s apart, so events that arrive spread over more than 1.5 s prove
// the proxy passes them on one by one rather than buffering the answer.
// By Host (*.localhost resolves to loopback in Chromium) and by path.
func TestPreview_Chromium(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (scripts/ci-prepare.sh installs it)")
		}
		t.Skip("chromium is not installed (scripts/ci-prepare.sh installs it)")
	}
	s := keyedServer(t)
	id := startApp(t, s, "none")
	tok := mintToken(t, s, id, appPort, "10m")
	for _, r := range []struct{ name, url string }{{"by host", tok.URL}, {"by path", tok.PathURL}} {
		u := r.name // the URLs carry the token: keep it out of the log
		dom := loadInChromium(t, chrome, r.url, "fetch", "ws", "stream", "sse")
		if dom["fetch"] != "fetch:from-sandbox" || dom["ws"] != "ws:hello-ws" {
			t.Errorf("%s: DOM shows %q and %q, want fetch:from-sandbox and ws:hello-ws", u, dom["fetch"], dom["ws"])
		}
		var reads, spread int
		if _, err := fmt.Sscanf(dom["stream"], "stream:tick 0,tick 1,tick 2 reads=%d spread=%d", &reads, &spread); err != nil || reads < 2 || spread < 1500 {
			t.Errorf("%s: fetch stream shows %q, want the three ticks in at least 2 reads spread over >= 1500 ms", u, dom["stream"])
		}
		if _, err := fmt.Sscanf(dom["sse"], "sse:tick 0,tick 1,tick 2 spread=%d", &spread); err != nil || spread < 1500 {
			t.Errorf("%s: EventSource shows %q, want the three ticks spread over >= 1500 ms", u, dom["sse"])
		}
		t.Logf("%s: %s; %s", u, dom["stream"], dom["sse"])
	}
}

// TestPreview_BodiesStayWhole: 1 MiB echoes back to back, by host and by
// path. Regression: without full-duplex request bodies, the HTTP/1 server
// closed the inbound body when the answer began, the proxy transport's
// final EOF read failed, and it tore the upstream connection down
// mid-answer (3-6% truncated answers on a loaded machine).
func TestPreview_BodiesStayWhole(t *testing.T) {
	s := keyedServer(t)
	id := startApp(t, s, "none")
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	bad := 0
	for range 40 {
		for _, rt := range previewRoutes(s) {
			resp, data := kdo(t, rt.client, "POST", rt.base(id, appPort)+"/upload", previewKey, bytes.NewReader(payload), nil)
			if resp.StatusCode != 200 || !bytes.Equal(data, payload) {
				bad++
				t.Logf("%s: %d, %d bytes back", rt.name, resp.StatusCode, len(data))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of 80 echoes came back damaged", bad)
	}
}

// TestPreview_WebSocketOrigin: a page on a foreign origin (here another
// site, and a sibling preview on the same preview domain) cannot open a
// WebSocket to a preview with the visitor's preview cookie: 403 with the
// typed error body. The preview's own origin can, by Host and by path.
func TestPreview_WebSocketOrigin(t *testing.T) {
	s := keyedServer(t)
	id := startApp(t, s, "bridge")
	tok := mintToken(t, s, id, appPort, "10m")
	cookie := "stacyvm_preview_token=" + tok.Token
	_, port, _ := net.SplitHostPort(s.hostPort())
	for _, rt := range previewRoutes(s) {
		t.Run(rt.name, func(t *testing.T) {
			base := rt.base(id, appPort)
			u, _ := url.Parse(base)
			own := "http://" + u.Host
			for _, origin := range []string{"http://evil.example", fmt.Sprintf("http://8000-sb-00000000000000ee.localhost:%s", port), "null"} {
				resp, data := kdo(t, rt.client, "GET", base+"/ws", "", nil, map[string]string{
					"Cookie": cookie, "Origin": origin, "Connection": "Upgrade", "Upgrade": "websocket",
					"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
				wantError(t, "foreign origin "+origin, resp.StatusCode, data, 403, "FORBIDDEN")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws", &websocket.DialOptions{
				HTTPClient: rt.client, HTTPHeader: http.Header{"Cookie": {cookie}, "Origin": {own}},
			})
			if err != nil {
				t.Fatalf("same-origin websocket (Origin %s): %v", own, err)
			}
			defer conn.CloseNow()
			if err := conn.Write(ctx, websocket.MessageText, []byte("same-origin")); err != nil {
				t.Fatal(err)
			}
			if _, got, err := conn.Read(ctx); err != nil || string(got) != "same-origin" {
				t.Fatalf("same-origin echo %q %v", got, err)
			}
			conn.Close(websocket.StatusNormalClosure, "")
		})
	}
}
