package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// sreq sends one request with headers and returns status, body and headers.
func sreq(t *testing.T, s *server, method, path string, body any, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

func mustStatus(t *testing.T, what string, got int, data []byte, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: status %d, want %d: %s", what, got, want, data)
	}
}

// oidcIssuer is a discovery + JWKS server in the test process on loopback;
// the server under test fetches its keys over HTTP.
type oidcIssuer struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	o := &oidcIssuer{}
	o.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": o.srv.URL, "jwks_uri": o.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: o.key.Public(), KeyID: "e2e", Algorithm: "ES256", Use: "sig"}}})
	})
	o.srv = httptest.NewServer(mux)
	t.Cleanup(o.srv.Close)
	return o
}

func (o *oidcIssuer) token(t *testing.T, sub, tenant string, groups []string, exp time.Duration) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: o.key}, (&jose.SignerOptions{}).WithHeader("kid", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(map[string]any{"iss": o.srv.URL, "aud": "stacyvm", "sub": sub, "tenant_id": tenant, "groups": groups,
		"iat": time.Now().Unix(), "exp": time.Now().Add(exp).Unix()})
	jws, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// TestSecurity_TenancyPoliciesAudit runs the real binary against Docker:
// keys created through the admin API, OIDC tokens from a loopback issuer,
// tenant isolation (404 across tenants), a tenant image policy, header
// validation, and an audit export that holds no secrets.
func TestSecurity_TenancyPoliciesAudit(t *testing.T) {
	const opKey, adminKey = "e2e-operator-key-0123456789abcdef", "e2e-admin-key-0123456789abcdef"
	idp := newOIDCIssuer(t)
	s := startServer(t, "",
		"STACYVM_AUTH_API_KEY="+opKey, "STACYVM_AUTH_ADMIN_API_KEY="+adminKey,
		"STACYVM_AUTH_OIDC_ISSUER="+idp.srv.URL, "STACYVM_AUTH_OIDC_AUDIENCE=stacyvm",
		"STACYVM_AUTH_OIDC_OPERATOR_GROUPS=devs")
	admin := []string{"X-Admin-API-Key", adminKey}

	for _, id := range []string{"acme", "evil"} {
		code, data, _ := sreq(t, s, "POST", "/admin/tenants", map[string]any{"id": id}, admin...)
		mustStatus(t, "create tenant "+id, code, data, 201)
	}
	newKey := func(tenant string) string {
		code, data, _ := sreq(t, s, "POST", "/admin/keys", map[string]any{"role": "operator", "tenant_id": tenant, "name": tenant + "-ci"}, admin...)
		mustStatus(t, "create key", code, data, 201)
		var k struct{ Key string }
		_ = json.Unmarshal(data, &k)
		return k.Key
	}
	acme := []string{"X-API-Key", newKey("acme")}
	evil := []string{"X-API-Key", newKey("evil")}

	// acme spawns with a secret in the environment.
	code, data, _ := sreq(t, s, "POST", "/sandboxes", map[string]any{"env": map[string]string{"API_TOKEN": "tok-SECRET-env-e2e"}}, acme...)
	mustStatus(t, "acme spawn", code, data, 201)
	var sb struct{ ID string }
	var sbm map[string]any
	_ = json.Unmarshal(data, &sbm)
	sb.ID, _ = sbm["id"].(string)
	if sbm["tenant_id"] != "acme" || !strings.HasPrefix(sbm["owner_id"].(string), "key:") {
		t.Fatalf("sandbox %s", data)
	}
	t.Cleanup(func() { sreq(t, s, "DELETE", "/sandboxes/"+sb.ID, nil, admin...) })

	code, data, _ = sreq(t, s, "POST", "/sandboxes/"+sb.ID+"/exec", map[string]any{"command": "echo out-visible-e2e; echo $API_TOKEN >/dev/null"}, acme...)
	mustStatus(t, "acme exec", code, data, 200)
	code, data, _ = sreq(t, s, "POST", "/sandboxes/"+sb.ID+"/files", map[string]any{"path": "/tmp/s.txt", "content": "file-SECRET-content-e2e"}, acme...)
	mustStatus(t, "acme write", code, data, 200)
	code, data, _ = sreq(t, s, "GET", "/sandboxes/"+sb.ID+"/files?path=/tmp/s.txt", nil, acme...)
	mustStatus(t, "acme read", code, data, 200)

	// Another tenant: every operation is 404, the list is empty.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/sandboxes/" + sb.ID, nil},
		{"POST", "/sandboxes/" + sb.ID + "/exec", map[string]any{"command": "id"}},
		{"GET", "/sandboxes/" + sb.ID + "/files?path=/tmp/s.txt", nil},
		{"POST", "/sandboxes/" + sb.ID + "/files", map[string]any{"path": "/tmp/x", "content": "x"}},
		{"GET", "/sandboxes/" + sb.ID + "/files/list?path=/", nil},
		{"POST", "/sandboxes/" + sb.ID + "/extend", map[string]any{"ttl": "1h"}},
		{"GET", "/sandboxes/" + sb.ID + "/logs", nil},
		{"DELETE", "/sandboxes/" + sb.ID, nil},
	} {
		code, data, _ := sreq(t, s, c.method, c.path, c.body, evil...)
		mustStatus(t, "evil "+c.method+" "+c.path, code, data, 404)
	}
	code, data, _ = sreq(t, s, "GET", "/sandboxes", nil, evil...)
	if code != 200 || strings.Contains(string(data), sb.ID) {
		t.Fatalf("evil lists acme's sandbox: %d %s", code, data)
	}
	code, data, _ = sreq(t, s, "GET", "/sandboxes", nil, admin...)
	if code != 200 || !strings.Contains(string(data), sb.ID) {
		t.Fatalf("admin does not see acme's sandbox: %d %s", code, data)
	}

	// An OIDC user of tenant evil (operator through its group) sees nothing
	// of acme either; an expired or forged token is 401.
	tok := idp.token(t, "mallory", "evil", []string{"devs"}, time.Hour)
	code, data, _ = sreq(t, s, "GET", "/sandboxes/"+sb.ID, nil, "Authorization", "Bearer "+tok)
	mustStatus(t, "OIDC evil get", code, data, 404)
	code, data, _ = sreq(t, s, "GET", "/auth/whoami", nil, "Authorization", "Bearer "+tok)
	if code != 200 || !strings.Contains(string(data), `"tenant_id":"evil"`) || !strings.Contains(string(data), `"role":"operator"`) {
		t.Fatalf("whoami: %d %s", code, data)
	}
	forged := tok[:strings.LastIndex(tok, ".")] + ".AAAA"
	for name, bad := range map[string]string{"expired": idp.token(t, "mallory", "evil", []string{"devs"}, -time.Hour), "forged": forged, "malformed": "a.b"} {
		code, data, _ = sreq(t, s, "GET", "/sandboxes", nil, "Authorization", "Bearer "+bad)
		mustStatus(t, name+" token", code, data, 401)
	}
	code, data, _ = sreq(t, s, "POST", "/sandboxes", map[string]any{}, "Authorization", "Bearer "+tok, "X-User-ID", "someone-else")
	mustStatus(t, "OIDC user acting for another user", code, data, 403)

	// Bad user ids and oversized headers.
	for name, v := range map[string]string{"control": "a\x01b", "slash": "a/b", "129 chars": strings.Repeat("u", 129)} {
		req, _ := http.NewRequest("GET", s.url+"/sandboxes", nil)
		req.Header.Set("X-API-Key", opKey)
		req.Header["X-User-Id"] = []string{v}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// net/http refuses to send a control character; that is a
			// client-side rejection, fine.
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("X-User-ID %s: %d, want 400", name, resp.StatusCode)
		}
	}
	// Control characters over a raw connection (Go's client refuses to send them).
	host := strings.TrimPrefix(strings.TrimSuffix(s.url, "/api/v1"), "http://")
	for _, v := range []string{"a\x01b", "a\x7fb"} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /api/v1/sandboxes HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\nX-User-ID: %s\r\nConnection: close\r\n\r\n", host, opKey, v)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != 400 {
			t.Errorf("raw X-User-ID %q: %d, want 400", v, resp.StatusCode)
		}
	}
	code, _, _ = sreq(t, s, "GET", "/sandboxes", nil, "X-API-Key", opKey, "X-Big", strings.Repeat("b", 80<<10))
	if code != 431 {
		t.Errorf("80 KiB header: %d, want 431", code)
	}

	// A tenant policy denies an image on every create path.
	code, data, _ = sreq(t, s, "POST", "/admin/tenants/acme/policies", map[string]any{"kind": "image", "effect": "deny", "pattern": "("}, admin...)
	mustStatus(t, "bad pattern", code, data, 400)
	code, data, _ = sreq(t, s, "POST", "/admin/tenants/acme/policies", map[string]any{"id": "no-python", "kind": "image", "effect": "deny", "pattern": "stacyvm/python"}, admin...)
	mustStatus(t, "policy", code, data, 201)
	// Every spelling Docker accepts for that image is the same image
	// (decision 031); references Docker would take for an image ID, or not
	// accept at all, are 400.
	fakeDigest := "sha256:" + strings.Repeat("ab", 32)
	for _, img := range []string{"stacyvm/python", "stacyvm/python:latest", "docker.io/stacyvm/python", "docker.io/stacyvm/python:latest",
		"index.docker.io/stacyvm/python", "index.docker.io/stacyvm/python:latest", "stacyvm/python@" + fakeDigest, "docker.io/stacyvm/python:latest@" + fakeDigest} {
		code, data, _ = sreq(t, s, "POST", "/sandboxes", map[string]any{"image": img}, acme...)
		mustStatus(t, "denied image "+img, code, data, 403)
	}
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", "stacyvm/python").Output()
	if err != nil {
		t.Fatalf("docker image inspect stacyvm/python: %v", err)
	}
	imageID := strings.TrimSpace(string(out)) // sha256:<64 hex>
	for _, img := range []string{imageID, strings.TrimPrefix(imageID, "sha256:"), strings.TrimPrefix(imageID, "sha256:")[:12], "Stacyvm/Python", "stacyvm/python:", "stacyvm/python@sha256:abc"} {
		code, data, _ = sreq(t, s, "POST", "/sandboxes", map[string]any{"image": img}, acme...)
		mustStatus(t, "invalid image "+img, code, data, 400)
		if !strings.Contains(string(data), `"code":"`) {
			t.Errorf("invalid image %s: untyped error body %s", img, data)
		}
	}
	code, data, _ = sreq(t, s, "POST", "/sandboxes/admission", map[string]any{"image": "stacyvm/python"}, acme...)
	if code != 200 || !strings.Contains(string(data), `"allowed":false`) || !strings.Contains(string(data), "policy_denied") {
		t.Fatalf("admission of a denied image: %d %s", code, data)
	}
	code, data, _ = sreq(t, s, "POST", "/sandboxes", map[string]any{"image": "stacyvm/python"}, evil...)
	mustStatus(t, "evil is not bound by acme's policy", code, data, 201)
	var other map[string]any
	_ = json.Unmarshal(data, &other)
	code, data, _ = sreq(t, s, "DELETE", "/sandboxes/"+other["id"].(string), nil, evil...)
	mustStatus(t, "evil destroy own", code, data, 200)

	code, data, _ = sreq(t, s, "DELETE", "/sandboxes/"+sb.ID, nil, acme...)
	mustStatus(t, "acme destroy", code, data, 200)

	// The audit export: operations and admin calls of acme, no secrets.
	code, data, hdr := sreq(t, s, "GET", "/admin/audit?format=jsonl&tenant=acme", nil, admin...)
	mustStatus(t, "audit export", code, data, 200)
	export := string(data)
	for _, want := range []string{`"action":"sandbox.spawn"`, `"action":"sandbox.exec"`, "out-visible-e2e", `"action":"file.write"`, "/tmp/s.txt",
		`"action":"file.read"`, `"action":"sandbox.destroy"`, "API_TOKEN", "policies", "127.0.0.1"} {
		if !strings.Contains(export, want) {
			t.Errorf("audit export lacks %s", want)
		}
	}
	if hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("content type %q", hdr.Get("Content-Type"))
	}
	code, csvData, _ := sreq(t, s, "GET", "/admin/audit?format=csv&tenant=acme", nil, admin...)
	mustStatus(t, "csv export", code, csvData, 200)
	rows, err := csv.NewReader(bytes.NewReader(csvData)).ReadAll()
	if err != nil || len(rows) < 6 {
		t.Fatalf("csv export: %v, %d rows", err, len(rows))
	}
	for _, leak := range []string{"tok-SECRET-env-e2e", "file-SECRET-content-e2e", opKey, adminKey, acme[1], evil[1], tok} {
		if strings.Contains(export, leak) || strings.Contains(string(csvData), leak) {
			t.Errorf("audit export contains a secret (%.12s...)", leak)
		}
		if strings.Contains(s.logBuf.String(), leak) {
			t.Errorf("server log contains a secret (%.12s...)", leak)
		}
	}
	// evil's export (as a tenant admin would get it) holds none of acme's
	// events, only evil's own (including its failed attempts on acme's id).
	code, data, _ = sreq(t, s, "GET", "/admin/audit?format=jsonl&tenant=evil", nil, admin...)
	if code != 200 || strings.Contains(string(data), `"tenant_id":"acme"`) || strings.Contains(string(data), "out-visible-e2e") {
		t.Errorf("evil's export holds acme's events: %s", data)
	}
	if !strings.Contains(string(data), `"result":"NOT_FOUND"`) {
		t.Errorf("evil's failed attempts are not audited: %s", data)
	}
}

// TestSecurity_RateLimitAndCORS: per-principal limit with Retry-After
// (spoofed forwarding headers do not help) and explicit CORS origins.
func TestSecurity_RateLimitAndCORS(t *testing.T) {
	const key = "e2e-rate-key-0123456789abcdef"
	s := startServer(t, "", "STACYVM_AUTH_API_KEY="+key,
		"STACYVM_AUTH_RATE_LIMIT_PER_SECOND=0.2", "STACYVM_AUTH_RATE_LIMIT_BURST=3",
		"STACYVM_SERVER_CORS_ALLOWED_ORIGINS=https://app.example")
	for i := range 3 {
		code, data, _ := sreq(t, s, "GET", "/sandboxes", nil, "X-API-Key", key, "X-Forwarded-For", "10.0.0."+string(rune('1'+i)))
		mustStatus(t, "within burst", code, data, 200)
	}
	code, data, hdr := sreq(t, s, "GET", "/sandboxes", nil, "X-API-Key", key, "X-Forwarded-For", "10.9.9.9")
	mustStatus(t, "over the limit", code, data, 429)
	if hdr.Get("Retry-After") == "" || !strings.Contains(string(data), "RESOURCE_LIMIT") {
		t.Errorf("429 without Retry-After or code: %v %s", hdr, data)
	}
	pre := func(origin string) http.Header {
		req, _ := http.NewRequest("OPTIONS", s.url+"/sandboxes", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-api-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	if got := pre("https://app.example").Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("allowed origin: ACAO %q", got)
	}
	if got := pre("https://evil.example").Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("evil origin: ACAO %q", got)
	}
}

// TestSecurity_WildcardCORSRefusedInProduction: the server does not start
// with "*" unless server.mode is development.
func TestSecurity_WildcardCORSRefusedInProduction(t *testing.T) {
	cmd := newServeCmd(t, "STACYVM_SERVER_CORS_ALLOWED_ORIGINS=*")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "development") {
		t.Fatalf("serve with CORS * in production: err %v, output %s", err, out)
	}
}

// newServeCmd is `stacyvm serve` on a fresh data dir with extra env, for
// tests that expect the server to refuse to start.
func newServeCmd(t *testing.T, extraEnv ...string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(binPath, "serve")
	cmd.Env = append(os.Environ(), "STACYVM_SERVER_HOST=127.0.0.1", fmt.Sprintf("STACYVM_SERVER_PORT=%d", freePort(t)),
		"STACYVM_DATA_DIR="+dir, "STACYVM_DATABASE_PATH="+filepath.Join(dir, "db"), "STACYVM_PROVIDERS_DOCKER_PULL=never")
	cmd.Env = append(cmd.Env, extraEnv...)
	return cmd
}
