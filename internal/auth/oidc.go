package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// OIDCConfig configures bearer-token verification.
type OIDCConfig struct {
	Issuer   string // must equal the token's iss; discovery runs at Issuer/.well-known/openid-configuration
	Audience string // must be one of the token's aud values
	// JWKSURL skips discovery when set.
	JWKSURL string
	// ClockSkew is how long after exp a token is still accepted (default 60s,
	// at most 5m).
	ClockSkew   time.Duration
	GroupsClaim string // default "groups"
	TenantClaim string // default "tenant_id"
	// Groups mapped to roles; a token in several groups gets the strongest.
	AdminGroups, TenantAdminGroups, OperatorGroups, ViewerGroups []string
	// DefaultRole is the role of a token in none of the groups ("" = viewer).
	DefaultRole Role
	// HTTPClient fetches discovery and keys (default: a 10s-timeout client).
	HTTPClient *http.Client
	Now        func() time.Time
}

// SigningAlgs are the accepted JWS algorithms: asymmetric only. HS256 (a
// public key misused as an HMAC secret) and "none" are refused by the parser
// before any key is consulted.
var SigningAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256}

// MaxClockSkew bounds OIDCConfig.ClockSkew.
const MaxClockSkew = 5 * time.Minute

// MaxTokenBytes bounds a bearer token; larger ones are refused unparsed.
const MaxTokenBytes = 16 << 10

// OIDC verifies bearer tokens with go-oidc: signature against the issuer's
// JWKS (cached, refetched when a token names an unknown kid), issuer,
// audience, expiry with bounded skew, and an allow-list of algorithms.
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // nil until discovery succeeds
}

// NewOIDC validates cfg. Discovery happens on the first token, so a server
// starts even while its identity provider is down.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errs.New(errs.Invalid, "oidc: issuer and audience are required")
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = time.Minute
	}
	if cfg.ClockSkew < 0 || cfg.ClockSkew > MaxClockSkew {
		return nil, errs.New(errs.Invalid, "oidc: clock skew must be between 0 and %s", MaxClockSkew)
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant_id"
	}
	if cfg.DefaultRole == "" {
		cfg.DefaultRole = RoleViewer
	}
	if !cfg.DefaultRole.Valid() || cfg.DefaultRole == RoleWorker {
		return nil, errs.New(errs.Invalid, "oidc: default role %q is not a user role", cfg.DefaultRole)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OIDC{cfg: cfg}, nil
}

func (o *OIDC) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	// go-oidc uses the context as a bag of values for its background key
	// fetches: it carries the HTTP client, not a deadline.
	kctx := oidc.ClientContext(context.WithoutCancel(ctx), o.cfg.HTTPClient)
	var keys oidc.KeySet
	if o.cfg.JWKSURL != "" {
		keys = oidc.NewRemoteKeySet(kctx, o.cfg.JWKSURL)
	} else {
		dctx, cancel := context.WithTimeout(kctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, err, "identity provider discovery failed")
		}
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
			return nil, errs.New(errs.Unavailable, "identity provider discovery document has no jwks_uri")
		}
		keys = oidc.NewRemoteKeySet(kctx, meta.JWKSURI)
	}
	skew := o.cfg.ClockSkew
	o.verifier = oidc.NewVerifier(o.cfg.Issuer, keys, &oidc.Config{
		ClientID:             o.cfg.Audience,
		SupportedSigningAlgs: SigningAlgs,
		// exp is checked strictly against Now; shifting Now back by the skew
		// accepts a token at most skew after its expiry.
		Now: func() time.Time { return o.cfg.Now().Add(-skew) },
	})
	return o.verifier, nil
}

// Verify checks raw and returns its principal. Every token problem is
// Unauthorized with a generic message (the reason is in the wrapped error,
// for logs); an unreachable identity provider is Unavailable.
func (o *OIDC) Verify(ctx context.Context, raw string) (*Principal, error) {
	if len(raw) > MaxTokenBytes {
		return nil, errs.New(errs.Unauthorized, "invalid bearer token")
	}
	if strings.Count(raw, ".") != 2 {
		return nil, errs.New(errs.Unauthorized, "invalid bearer token")
	}
	v, err := o.getVerifier(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, errs.Wrap(errs.Unauthorized, err, "invalid bearer token")
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, errs.Wrap(errs.Unauthorized, err, "invalid bearer token")
	}
	if !tok.IssuedAt.IsZero() && tok.IssuedAt.After(o.cfg.Now().Add(o.cfg.ClockSkew)) {
		return nil, errs.New(errs.Unauthorized, "invalid bearer token: issued in the future")
	}
	if tok.Subject == "" {
		return nil, errs.New(errs.Unauthorized, "invalid bearer token: no subject")
	}
	if err := ValidUserID("sub", tok.Subject); err != nil {
		return nil, errs.New(errs.Unauthorized, "invalid bearer token: unusable subject")
	}
	p := &Principal{Subject: tok.Subject, Method: MethodOIDC, Role: o.roleOf(stringsClaim(claims[o.cfg.GroupsClaim]))}
	p.Tenant = DefaultTenant
	if ts := stringsClaim(claims[o.cfg.TenantClaim]); len(ts) == 1 {
		if err := ValidTenantID(ts[0]); err != nil {
			return nil, errs.New(errs.Unauthorized, "invalid bearer token: bad tenant claim")
		}
		p.Tenant = ts[0]
	}
	return p, nil
}

func (o *OIDC) roleOf(groups []string) Role {
	for _, m := range []struct {
		groups []string
		role   Role
	}{
		{o.cfg.AdminGroups, RoleAdmin},
		{o.cfg.TenantAdminGroups, RoleTenantAdmin},
		{o.cfg.OperatorGroups, RoleOperator},
		{o.cfg.ViewerGroups, RoleViewer},
	} {
		for _, g := range groups {
			if slices.Contains(m.groups, g) {
				return m.role
			}
		}
	}
	return o.cfg.DefaultRole
}

// stringsClaim reads a claim that is a string or an array of strings.
func stringsClaim(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil
		}
		return []string{one}
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	return nil
}

// String describes the verifier for logs.
func (o *OIDC) String() string {
	return fmt.Sprintf("oidc(issuer=%s audience=%s)", o.cfg.Issuer, o.cfg.Audience)
}
