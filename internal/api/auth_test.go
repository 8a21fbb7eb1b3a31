package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stacyvm/stacyvm/internal/auth"
)

// testIDP is an OIDC issuer on loopback: discovery + JWKS for one ES256 key.
type testIDP struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
}

func newTestIDP(t testing.TB) *testIDP {
	t.Helper()
	p := &testIDP{}
	p.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: p.key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIDP) token(t testing.TB, sub string, groups []string, tenant string, exp time.Duration) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(map[string]any{"iss": p.srv.URL, "aud": "stacyvm", "sub": sub, "groups": groups, "tenant_id": tenant,
		"exp": time.Now().Add(exp).Unix(), "iat": time.Now().Unix()})
	jws, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func oidcHarness(t *testing.T) (*harness, *testIDP) {
	idp := newTestIDP(t)
	v, err := auth.NewOIDC(auth.OIDCConfig{Issuer: idp.srv.URL, Audience: "stacyvm", OperatorGroups: []string{"devs"}, AdminGroups: []string{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	h := matrixHarness(t, func(o *Options) { o.Security.OIDC = v })
	return h, idp
}

func TestAuth_OIDCBearer(t *testing.T) {
	h, idp := oidcHarness(t)
	tests := []struct {
		name   string
		token  string
		status int
		role   string
	}{
		{"operator", idp.token(t, "alice", []string{"devs"}, "acme", time.Hour), 200, "operator"},
		{"admin group", idp.token(t, "root", []string{"root"}, "ops", time.Hour), 200, "admin"},
		{"no group: viewer", idp.token(t, "vic", nil, "acme", time.Hour), 200, "viewer"},
		{"expired", idp.token(t, "alice", []string{"devs"}, "acme", -time.Hour), 401, ""},
		{"malformed", "abc.def.ghi", 401, ""},
		{"empty bearer", "", 401, ""},
		{"huge", strings.Repeat("x", 20000), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do("GET", "/auth/whoami", "", "Authorization", "Bearer "+tt.token)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 200 && decodeMap(t, rec)["role"] != tt.role {
				t.Fatalf("role = %v, want %s", decodeMap(t, rec)["role"], tt.role)
			}
		})
	}
	// A person's token may not name another owner.
	tok := idp.token(t, "alice", []string{"devs"}, "acme", time.Hour)
	if rec := h.do("POST", "/sandboxes", `{}`, "Authorization", "Bearer "+tok, "X-User-ID", "bob"); rec.Code != 403 {
		t.Errorf("OIDC user acting for bob: %d, want 403", rec.Code)
	}
	if rec := h.do("POST", "/sandboxes", `{}`, "Authorization", "Basic YTpi"); rec.Code != 401 {
		t.Errorf("Basic auth: %d, want 401", rec.Code)
	}
	// Tenant membership overrides the group mapping (tenant admins manage it).
	if rec := h.do("POST", "/admin/tenants", `{"id":"acme"}`, "X-Admin-API-Key", matrixKeys[RoleAdmin][1]); rec.Code != 201 {
		t.Fatalf("create tenant: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("PUT", "/admin/tenants/acme/members/vic", `{"role":"tenant_admin"}`, "X-Admin-API-Key", matrixKeys[RoleAdmin][1]); rec.Code != 200 {
		t.Fatalf("put member: %d %s", rec.Code, rec.Body)
	}
	rec := h.do("GET", "/auth/whoami", "", "Authorization", "Bearer "+idp.token(t, "vic", nil, "acme", time.Hour))
	if decodeMap(t, rec)["role"] != "tenant_admin" {
		t.Errorf("member role not applied: %s", rec.Body)
	}
}

func TestAuth_KeysCreatedThroughTheAdminAPI(t *testing.T) {
	h := matrixHarness(t)
	admin := []string{"X-Admin-API-Key", matrixKeys[RoleAdmin][1]}
	tadmin := []string{"X-API-Key", matrixKeys[RoleTenantAdmin][1]}
	rec := h.do("POST", "/admin/keys", `{"name":"ci","role":"operator","tenant_id":"acme"}`, admin...)
	if rec.Code != 201 {
		t.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	m := decodeMap(t, rec)
	key, id := m["key"].(string), m["id"].(string)
	if !strings.HasPrefix(key, auth.KeyPrefix) || len(key) < 40 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("created key %q (headers %v)", key, rec.Header())
	}
	for _, hdr := range [][]string{{"X-API-Key", key}, {"Authorization", "Bearer " + key}} {
		rec = h.do("GET", "/auth/whoami", "", hdr...)
		if m := decodeMap(t, rec); rec.Code != 200 || m["tenant_id"] != "acme" || m["role"] != "operator" || m["act_for_users"] != false {
			t.Fatalf("whoami with the new key (%s): %d %s", hdr[0], rec.Code, rec.Body)
		}
	}
	// The list never shows the key or its hash.
	rec = h.do("GET", "/admin/keys", "", admin...)
	if strings.Contains(rec.Body.String(), key) || strings.Contains(rec.Body.String(), auth.HashKey(key)) || !strings.Contains(rec.Body.String(), id) {
		t.Fatalf("key list leaks the key or lacks the id: %s", rec.Body)
	}
	// A tenant admin of another tenant sees nothing of it and cannot delete it.
	if rec := h.do("GET", "/admin/keys", "", tadmin...); strings.Contains(rec.Body.String(), id) {
		t.Errorf("tenant admin of default lists acme's key: %s", rec.Body)
	}
	if rec := h.do("DELETE", "/admin/keys/"+id, "", tadmin...); rec.Code != 404 {
		t.Errorf("tenant admin deleting another tenant's key: %d, want 404", rec.Code)
	}
	if rec := h.do("POST", "/admin/keys", `{"role":"admin"}`, tadmin...); rec.Code != 403 {
		t.Errorf("tenant admin minting an admin key: %d, want 403", rec.Code)
	}
	if rec := h.do("POST", "/admin/keys", `{"role":"operator","tenant_id":"acme"}`, tadmin...); rec.Code != 404 {
		t.Errorf("tenant admin minting a key for another tenant: %d, want 404", rec.Code)
	}
	// Worker keys are apart from the ranks: an admin mints them, a tenant
	// admin does not.
	if rec := h.do("POST", "/admin/keys", `{"role":"worker"}`, admin...); rec.Code != 201 {
		t.Errorf("admin minting a worker key: %d %s, want 201", rec.Code, rec.Body)
	}
	if rec := h.do("POST", "/admin/keys", `{"role":"worker"}`, tadmin...); rec.Code != 403 {
		t.Errorf("tenant admin minting a worker key: %d, want 403", rec.Code)
	}
	if rec := h.do("POST", "/admin/keys", `{"role":"root"}`, admin...); rec.Code != 400 {
		t.Errorf("unknown role: %d, want 400", rec.Code)
	}
	// A stored key without act_for_users cannot name another owner.
	if rec := h.do("POST", "/sandboxes", `{}`, "X-API-Key", key, "X-User-ID", "someone"); rec.Code != 403 {
		t.Errorf("stored key acting for someone: %d, want 403", rec.Code)
	}
	if rec := h.do("DELETE", "/admin/keys/"+id, "", admin...); rec.Code != 200 {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("GET", "/auth/whoami", "", "X-API-Key", key); rec.Code != 401 {
		t.Errorf("revoked key: %d, want 401", rec.Code)
	}
}

func TestAuth_AdminFallback(t *testing.T) {
	op := []string{"X-API-Key", matrixKeys[RoleOperator][1]}
	if rec := matrixHarness(t).do("GET", "/admin/tenants", "", op...); rec.Code != 403 {
		t.Errorf("fallback off: %d, want 403", rec.Code)
	}
	h := matrixHarness(t, func(o *Options) { o.Security.AdminFallback = true })
	if rec := h.do("GET", "/admin/tenants", "", op...); rec.Code != 200 {
		t.Errorf("fallback on: %d, want 200: %s", rec.Code, rec.Body)
	}
	// Only configured regular keys fall back; a viewer key does not.
	if rec := h.do("GET", "/admin/tenants", "", "X-API-Key", matrixKeys[RoleViewer][1]); rec.Code != 403 {
		t.Errorf("viewer with fallback: %d, want 403", rec.Code)
	}
	// The admin key in X-Admin-API-Key only; a regular key there is refused.
	if rec := h.do("GET", "/admin/tenants", "", "X-Admin-API-Key", matrixKeys[RoleOperator][1]); rec.Code != 401 {
		t.Errorf("regular key as X-Admin-API-Key: %d, want 401", rec.Code)
	}
}

func TestAuth_KeyRotation(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.APIKey = "old-key-0123456789,new-key-0123456789" })
	for _, k := range []string{"old-key-0123456789", "new-key-0123456789"} {
		if rec := h.do("GET", "/sandboxes", "", "X-API-Key", k); rec.Code != 200 {
			t.Errorf("key %s: %d", k, rec.Code)
		}
	}
	if rec := h.do("GET", "/sandboxes", "", "X-API-Key", "old-key-0123456789,new-key-0123456789"); rec.Code != 401 {
		t.Errorf("the joined value is not a key: %d", rec.Code)
	}
}

func TestAuth_UserIDHeader(t *testing.T) {
	h := matrixHarness(t)
	op := []string{"X-API-Key", matrixKeys[RoleOperator][1]}
	for _, bad := range []string{"a\x01b", "a/b", `a\b`, "a b", strings.Repeat("u", 129), "\x7f"} {
		rec := h.do("GET", "/sandboxes", "", append(op, "X-User-ID", bad)...)
		if rec.Code != 400 {
			t.Errorf("X-User-ID %q: %d, want 400", bad, rec.Code)
		}
	}
	if rec := h.do("GET", "/sandboxes", "", append(op, "X-User-ID", strings.Repeat("u", 128))...); rec.Code != 200 {
		t.Errorf("128-character X-User-ID: %d, want 200", rec.Code)
	}
}

func TestRateLimit_ByPrincipalWithRetryAfter(t *testing.T) {
	h := matrixHarness(t, func(o *Options) { o.Security.RateLimit, o.Security.RateBurst = 0.5, 2 })
	op := []string{"X-API-Key", matrixKeys[RoleOperator][1]}
	for i := range 2 {
		if rec := h.do("GET", "/sandboxes", "", op...); rec.Code != 200 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
	// Spoofed forwarding headers and user ids do not buy a new bucket.
	rec := h.do("GET", "/sandboxes", "", append(op, "X-Forwarded-For", "10.9.9.9", "X-Real-IP", "10.9.9.8", "X-User-ID", "fresh-user")...)
	m := wantError(t, rec, 429, "RESOURCE_LIMIT")
	if ra := rec.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After = %q, want 2 (one token per 2s); %v", ra, m)
	}
	// Another principal has its own bucket.
	if rec := h.do("GET", "/sandboxes", "", "X-API-Key", matrixKeys[RoleViewer][1]); rec.Code != 200 {
		t.Errorf("other principal: %d", rec.Code)
	}
	// Failed logins are limited per peer address.
	for range 2 {
		h.do("GET", "/sandboxes", "", "X-API-Key", "guess-0123456789")
	}
	if rec := h.do("GET", "/sandboxes", "", "X-API-Key", "guess-9876543210"); rec.Code != 429 {
		t.Errorf("third bad key from one address: %d, want 429", rec.Code)
	}
}

func TestRateLimit_BoundedMemory(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(1, 1, 100, func() time.Time { return now })
	for i := range 10000 {
		l.allow("k" + string(rune('a'+i%26)) + strings.Repeat("x", i%50) + string(rune(i)))
	}
	if n := l.size(); n > 100 {
		t.Fatalf("limiter holds %d buckets, cap 100", n)
	}
	now = now.Add(time.Hour) // idle buckets expire
	l.allow("fresh")
	if n := l.size(); n != 1 {
		t.Fatalf("after an idle hour: %d buckets, want 1", n)
	}
}

func TestCORS_ExplicitOrigins(t *testing.T) {
	pol, err := NewOriginPolicy([]string{"https://app.example"}, false)
	if err != nil {
		t.Fatal(err)
	}
	h := matrixHarness(t, func(o *Options) { o.Security.Origins = pol })
	pre := func(origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("OPTIONS", BasePath+"/sandboxes", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-api-key") // as browsers send it
		rec := httptest.NewRecorder()
		h.h.ServeHTTP(rec, req)
		return rec
	}
	if rec := pre("https://app.example"); rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example" || rec.Code >= 300 {
		t.Errorf("allowed origin preflight: %d %v", rec.Code, rec.Header())
	}
	if rec := pre("https://evil.example"); rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("evil origin got CORS headers: %v", rec.Header())
	}
	if _, err := NewOriginPolicy([]string{"*"}, false); err == nil {
		t.Error("\"*\" accepted outside development")
	}
	if p, err := NewOriginPolicy([]string{"*"}, true); err != nil || !p.Allowed(&http.Request{Header: http.Header{"Origin": {"https://x"}}}) {
		t.Errorf("\"*\" in development: %v", err)
	}
	for _, bad := range []string{"app.example", "https://app.example/path", "ftp://x", "https://u@x"} {
		if _, err := NewOriginPolicy([]string{bad}, true); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
	r := httptest.NewRequest("GET", "http://api.local/x", nil)
	for origin, want := range map[string]bool{"": true, "https://app.example": true, "http://api.local": true, "https://evil.example": false, "null": false} {
		r.Header.Del("Origin")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if got := pol.Allowed(r); got != want {
			t.Errorf("Allowed(Origin %q) = %v, want %v", origin, got, want)
		}
	}
}

func TestTenantsAPI_PoliciesAndAuditExport(t *testing.T) {
	h := matrixHarness(t)
	admin := []string{"X-Admin-API-Key", matrixKeys[RoleAdmin][1]}
	tadmin := []string{"X-API-Key", matrixKeys[RoleTenantAdmin][1]}
	steps := []struct {
		method, path, body string
		hdr                []string
		status             int
	}{
		{"POST", "/admin/tenants", `{"id":"acme","name":"Acme"}`, admin, 201},
		{"POST", "/admin/tenants", `{"id":"acme"}`, admin, 409},
		{"POST", "/admin/tenants", `{"id":"Bad/ID"}`, admin, 400},
		{"POST", "/admin/tenants", `{"id":"x"}`, tadmin, 403},
		{"POST", "/admin/tenants/acme/policies", `{"kind":"image","effect":"deny","pattern":"("}`, admin, 400},
		{"POST", "/admin/tenants/acme/policies", `{"kind":"cpu","effect":"deny","pattern":"x"}`, admin, 400},
		{"POST", "/admin/tenants/acme/policies", `{"kind":"image","effect":"maybe","pattern":"x"}`, admin, 400},
		{"POST", "/admin/tenants/acme/policies", `{"id":"no-python","kind":"image","effect":"deny","pattern":"stacyvm/python.*","priority":5}`, admin, 201},
		{"POST", "/admin/tenants/ghost/policies", `{"kind":"image","effect":"deny","pattern":"x"}`, admin, 404},
		{"GET", "/admin/tenants/acme/policies", "", admin, 200},
		{"GET", "/admin/tenants/acme", "", tadmin, 404}, // another tenant: not revealed
		{"GET", "/admin/tenants/acme/policies", "", tadmin, 404},
		{"DELETE", "/admin/tenants/acme/policies/no-python", "", tadmin, 404},
		{"PUT", "/admin/tenants/acme/members/alice", `{"role":"admin"}`, admin, 400},
		{"PUT", "/admin/tenants/acme/members/a%2Fb", `{"role":"viewer"}`, admin, 400},
		{"PUT", "/admin/tenants/acme/members/alice", `{"role":"operator"}`, admin, 200},
		{"GET", "/admin/audit?tenant=acme", "", tadmin, 404},
		{"GET", "/admin/audit?format=xml", "", admin, 400},
		{"DELETE", "/admin/tenants/acme/policies/no-python", "", admin, 200},
	}
	for _, s := range steps {
		if rec := h.do(s.method, s.path, s.body, s.hdr...); rec.Code != s.status {
			t.Fatalf("%s %s: %d, want %d: %s", s.method, s.path, rec.Code, s.status, rec.Body)
		}
	}
	// Oversized admin bodies are refused.
	if rec := h.do("POST", "/admin/tenants", `{"id":"big","name":"`+strings.Repeat("n", 2<<20)+`"}`, admin...); rec.Code != 413 {
		t.Errorf("2 MiB admin body: %d, want 413", rec.Code)
	}
	rec := h.do("GET", "/admin/audit?format=jsonl&tenant=acme&kind=admin", "", admin...)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %v", rec.Code, rec.Header())
	}
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(rec.Body.String()), "\n") {
		var e auditJSON
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if e.TenantID != "acme" || e.Kind != "admin" || e.RemoteAddr == "" || e.RequestID == "" {
			t.Errorf("event %+v", e)
		}
		actions = append(actions, e.Action+"="+e.Result)
	}
	got := strings.Join(actions, " ")
	for _, want := range []string{"POST /api/v1/admin/tenants/{tenant}/policies=201", "PUT /api/v1/admin/tenants/{tenant}/members/{user}=200", "DELETE /api/v1/admin/tenants/{tenant}/policies/{policy}=200"} {
		if !strings.Contains(got, want) {
			t.Errorf("export lacks %s: %s", want, got)
		}
	}
	// Denied attempts are recorded with their result too.
	rec = h.do("GET", "/admin/audit?format=csv", "", admin...)
	rows, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	if err != nil || len(rows) < 2 || rows[0][0] != "seq" {
		t.Fatalf("csv: %v %v", err, rows)
	}
	denied := false
	for _, r := range rows[1:] {
		if r[5] == "POST /api/v1/admin/tenants" && r[9] == "403" && strings.HasPrefix(r[4], "key:") {
			denied = true
		}
	}
	if !denied {
		t.Errorf("the tenant admin's denied tenant creation is not in the audit: %v", rows)
	}
	if strings.Contains(rec.Body.String(), matrixKeys[RoleAdmin][1]) || strings.Contains(rec.Body.String(), matrixKeys[RoleTenantAdmin][1]) {
		t.Error("audit export contains a key")
	}
}

func TestCSVCell_DefusesFormulas(t *testing.T) {
	for in, want := range map[string]string{"=cmd()": "'=cmd()", "+1": "'+1", "-1": "'-1", "@x": "'@x", "ok": "ok", "": ""} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzAuthHeaders throws arbitrary credential and user headers at a server
// with every credential kind configured: configured keys (viewer, operator,
// admin), a key created through the admin API (stored hashed), and OIDC
// bearer tokens verified against a loopback issuer. The seeds are real
// credentials of each kind (valid, expired, alg none, wrong audience,
// another key's signature), so mutations reach token parsing and the key
// lookups. Invariants: only 200/400/401/403, and whoever /auth/whoami
// reports is exactly one of the principals the real credentials give.
func FuzzAuthHeaders(f *testing.F) {
	idp := newTestIDP(f)
	v, err := auth.NewOIDC(auth.OIDCConfig{Issuer: idp.srv.URL, Audience: "stacyvm", OperatorGroups: []string{"devs"}, AdminGroups: []string{"root"}})
	if err != nil {
		f.Fatal(err)
	}
	const opKey, viewKey, adminKey = "fuzz-key-0123456789", "fuzz-viewer-0123456789", "fuzz-admin-0123456789"
	h := newHarness(f, func(o *Options) {
		o.APIKey = opKey
		o.AdminAPIKey = adminKey
		o.Security.Keys = map[Role][]string{RoleViewer: {viewKey}}
		o.Security.Governance = openGov(f)
		o.Security.OIDC = v
	})
	rec := h.do("POST", "/admin/keys", `{"name":"fuzz","role":"operator","tenant_id":"acme"}`, "X-Admin-API-Key", adminKey)
	if rec.Code != 201 {
		f.Fatalf("create stored key: %d %s", rec.Code, rec.Body)
	}
	stored, _ := decodeMap(f, rec)["key"].(string)

	good := idp.token(f, "alice", []string{"devs"}, "acme", time.Hour)
	root := idp.token(f, "root", []string{"root"}, "ops", time.Hour)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := signES256(f, otherKey, map[string]any{"iss": idp.srv.URL, "aud": "stacyvm", "sub": "mallory", "groups": []string{"root"},
		"exp": time.Now().Add(time.Hour).Unix()})
	wrongAud := signES256(f, idp.key, map[string]any{"iss": idp.srv.URL, "aud": "other", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	b64 := base64.RawURLEncoding.EncodeToString
	none := b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + b64([]byte(`{"iss":"`+idp.srv.URL+`","aud":"stacyvm","sub":"root","groups":["root"],"exp":9999999999}`)) + "."

	// The principals real credentials give; a fuzzed request may get one
	// of these, or be refused, and nothing else.
	who := func(hdr ...string) string {
		rec := h.do("GET", "/auth/whoami", "", hdr...)
		if rec.Code != 200 {
			return ""
		}
		m := decodeMap(f, rec)
		return fmt.Sprint(m["subject"], "|", m["role"], "|", m["tenant_id"], "|", m["act_for_users"])
	}
	known := map[string]bool{who(): true}
	for _, hdr := range [][]string{{"X-API-Key", opKey}, {"X-API-Key", viewKey}, {"X-Admin-API-Key", adminKey}, {"X-API-Key", adminKey},
		{"X-API-Key", stored}, {"Authorization", "Bearer " + stored}, {"Authorization", "Bearer " + good}, {"Authorization", "Bearer " + root}} {
		p := who(hdr...)
		if p == "" {
			f.Fatalf("a real credential (%s) is refused", hdr[0])
		}
		known[p] = true
	}

	for _, seed := range [][4]string{
		{opKey, "", "", "alice"},
		{"", "Bearer " + good, "", ""},
		{"", "Bearer " + good, "", "bob"},
		{"", "Bearer " + root, "", ""},
		{"", "bearer " + good, "", ""},
		{"", "Bearer " + idp.token(f, "alice", []string{"devs"}, "acme", -time.Hour), "", ""},
		{"", "Bearer " + forged, "", ""},
		{"", "Bearer " + wrongAud, "", ""},
		{"", "Bearer " + none, "", ""},
		{"", "Bearer " + good[:len(good)-4], "", ""},
		{"", "Bearer " + good + "." + good, "", ""},
		{"", "Bearer " + stored, "", ""},
		{stored, "", "", "a/b"},
		{stored[:len(stored)-1], "", "", ""},
		{"", "Bearer " + auth.HashKey(stored), "", ""},
		{"", "", adminKey, ""},
		{"x", "Bearer svk_abc", opKey, "\x00"},
		{"", "Bearer a.b.c", "", "a/b"},
		{"", "Basic YTpi", "", strings.Repeat("u", 129)},
		{viewKey + "," + opKey, "", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, key, authz, admin, user string) {
		hdr := map[string]string{"X-API-Key": key, "Authorization": authz, "X-Admin-API-Key": admin, "X-User-ID": user}
		for _, path := range []string{"/auth/whoami", "/sandboxes"} {
			req := httptest.NewRequest("GET", BasePath+path, nil)
			for k, v := range hdr {
				if v != "" {
					req.Header[k] = []string{v}
				}
			}
			rec := httptest.NewRecorder()
			h.h.ServeHTTP(rec, req)
			switch rec.Code {
			case 200, 400, 401, 403:
			default:
				t.Fatalf("GET %s: status %d for key=%q authz=%q admin=%q user=%q: %s", path, rec.Code, key, authz, admin, user, rec.Body)
			}
			if path == "/auth/whoami" && rec.Code == 200 {
				var m map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
					t.Fatalf("whoami body %q: %v", rec.Body, err)
				}
				if p := fmt.Sprint(m["subject"], "|", m["role"], "|", m["tenant_id"], "|", m["act_for_users"]); !known[p] {
					t.Fatalf("key=%q authz=%q admin=%q user=%q gave principal %s, which no real credential gives", key, authz, admin, user, p)
				}
			}
		}
	})
}

// signES256 signs claims with key under kid "k1" (the test issuer's kid).
func signES256(t testing.TB, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(claims)
	jws, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}
