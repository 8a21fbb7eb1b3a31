package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// idp is a real OIDC discovery + JWKS server on loopback whose key set the
// test can rotate.
type idp struct {
	srv      *httptest.Server
	mu       sync.Mutex
	keys     []jose.JSONWebKey // public keys served
	jwksHits atomic.Int32
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/jwks",
			"authorization_endpoint": p.srv.URL + "/auth", "token_endpoint": p.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksHits.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: p.keys})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) publish(kid string, pub crypto.PublicKey, alg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
}

func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(claims)
	jws, err := s.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawToken builds a compact JWS by hand with an arbitrary header (for
// algorithms a proper signer refuses to produce).
func rawToken(header, claims map[string]any, sig func(signingInput string) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(sig(in))
}

func TestOIDC_Tokens(t *testing.T) {
	p := newIDP(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	p.publish("rsa1", rsaKey.Public(), "RS256")
	p.publish("ec256", ec256.Public(), "ES256")
	p.publish("ec384", ec384.Public(), "ES384")
	p.publish("ec521", ec521.Public(), "ES512")

	v, err := NewOIDC(OIDCConfig{
		Issuer: p.srv.URL, Audience: "stacyvm", ClockSkew: 30 * time.Second,
		AdminGroups: []string{"ops-admins"}, OperatorGroups: []string{"devs"},
		TenantAdminGroups: []string{"team-leads"},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": p.srv.URL, "aud": "stacyvm", "sub": "alice",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
			"groups": []string{"devs"}, "tenant_id": "acme",
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())

	tests := []struct {
		name  string
		token string
		ok    bool
		role  Role
	}{
		{"good RS256", sign(t, jose.RS256, rsaKey, "rsa1", claims(nil)), true, RoleOperator},
		{"good ES256", sign(t, jose.ES256, ec256, "ec256", claims(nil)), true, RoleOperator},
		{"good ES384", sign(t, jose.ES384, ec384, "ec384", claims(nil)), true, RoleOperator},
		{"good ES512", sign(t, jose.ES512, ec521, "ec521", claims(nil)), true, RoleOperator},
		{"admin group", sign(t, jose.ES256, ec256, "ec256", claims(func(c map[string]any) { c["groups"] = []string{"devs", "ops-admins"} })), true, RoleAdmin},
		{"no group is viewer", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { delete(c, "groups") })), true, RoleViewer},
		{"expired", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Minute).Unix() })), false, ""},
		{"expired within skew", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })), true, RoleOperator},
		{"no exp", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { delete(c, "exp") })), false, ""},
		{"issued in the future", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() })), false, ""},
		{"wrong audience", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { c["aud"] = "someone-else" })), false, ""},
		{"wrong issuer", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), false, ""},
		{"unknown key", sign(t, jose.RS256, otherRSA, "rsa-unknown", claims(nil)), false, ""},
		{"known kid, wrong key", sign(t, jose.RS256, otherRSA, "rsa1", claims(nil)), false, ""},
		{"bad tenant claim", sign(t, jose.RS256, rsaKey, "rsa1", claims(func(c map[string]any) { c["tenant_id"] = "../x" })), false, ""},
		{"alg none", rawToken(map[string]any{"alg": "none", "typ": "JWT"}, claims(nil), func(string) []byte { return nil }), false, ""},
		{"HS256 with the public key as secret", rawToken(map[string]any{"alg": "HS256", "kid": "rsa1"}, claims(nil), func(in string) []byte {
			m := hmac.New(sha256.New, pubDER)
			m.Write([]byte(in))
			return m.Sum(nil)
		}), false, ""},
		{"tampered payload", func() string {
			tok := sign(t, jose.RS256, rsaKey, "rsa1", claims(nil))
			parts := strings.Split(tok, ".")
			c, _ := json.Marshal(claims(func(c map[string]any) { c["groups"] = []string{"ops-admins"} }))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + parts[2]
		}(), false, ""},
		{"garbage", "not-a-token", false, ""},
		{"empty parts", "..", false, ""},
		{"oversized", strings.Repeat("a", MaxTokenBytes) + ".b.c", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, err := v.Verify(context.Background(), tt.token)
			if !tt.ok {
				if err == nil {
					t.Fatalf("accepted: %+v", pr)
				}
				if !errs.Is(err, errs.Unauthorized) {
					t.Fatalf("error class %v, want Unauthorized: %v", errs.ClassOf(err), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if pr.Role != tt.role || pr.Subject != "alice" || pr.Tenant != "acme" || pr.Method != MethodOIDC || pr.ActForUsers {
				t.Fatalf("principal %+v, want role %s subject alice tenant acme", pr, tt.role)
			}
		})
	}
}

func TestOIDC_KeyRotationRefetchesJWKS(t *testing.T) {
	p := newIDP(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.publish("k1", k1.Public(), "ES256")
	v, err := NewOIDC(OIDCConfig{Issuer: p.srv.URL, Audience: "stacyvm"})
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]any{"iss": p.srv.URL, "aud": "stacyvm", "sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}
	if _, err := v.Verify(context.Background(), sign(t, jose.ES256, k1, "k1", c)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, jose.ES256, k1, "k1", c)); err != nil {
		t.Fatal(err)
	}
	if got := p.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times for two tokens with a known kid, want 1 (cached)", got)
	}
	// The IdP rotates to k2: a token with the new kid triggers one refetch.
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok2 := sign(t, jose.ES256, k2, "k2", c)
	p.publish("k2", k2.Public(), "ES256")
	pr, err := v.Verify(context.Background(), tok2)
	if err != nil {
		t.Fatalf("token signed by the rotated key: %v", err)
	}
	if pr.Subject != "bob" || pr.Tenant != DefaultTenant || pr.Role != RoleViewer {
		t.Fatalf("principal %+v", pr)
	}
	if got := p.jwksHits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refetch on the unknown kid)", got)
	}
}

func TestOIDC_DiscoveryDownIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	v, err := NewOIDC(OIDCConfig{Issuer: srv.URL, Audience: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), "a.b.c")
	if !errs.Is(err, errs.Unavailable) {
		t.Fatalf("got %v, want Unavailable", err)
	}
}

func TestNewOIDC_BadConfig(t *testing.T) {
	for _, c := range []OIDCConfig{
		{Audience: "a"}, {Issuer: "https://i"}, {Issuer: "https://i", Audience: "a", ClockSkew: time.Hour},
		{Issuer: "https://i", Audience: "a", DefaultRole: "root"},
	} {
		if _, err := NewOIDC(c); !errs.Is(err, errs.Invalid) {
			t.Errorf("NewOIDC(%+v) = %v, want Invalid", c, err)
		}
	}
}

func FuzzOIDCVerify(f *testing.F) {
	p := &idp{}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	defer p.srv.Close()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.publish("k", k.Public(), "ES256")
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: p.keys})
	})
	v, _ := NewOIDC(OIDCConfig{Issuer: "https://issuer", Audience: "a", JWKSURL: p.srv.URL + "/jwks"})
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJ4In0.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		pr, err := v.Verify(context.Background(), tok)
		if err == nil {
			t.Fatalf("fuzzed token accepted: %q -> %+v", tok, pr)
		}
	})
}
