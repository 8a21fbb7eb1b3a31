package api

import (
	"container/list"
	"context"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/cors"
	"golang.org/x/time/rate"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// SecurityOptions configure authentication, limits and CORS beyond the
// APIKey/AdminAPIKey of Options (each of which may hold several keys,
// comma- or newline-separated, for rotation).
type SecurityOptions struct {
	// Keys are further accepted keys by role (e.g. viewer keys).
	Keys map[Role][]string
	// AdminFallback accepts a regular (operator) configuration key on admin
	// routes. Off by default; production lint refuses it.
	AdminFallback bool
	// OIDC verifies Authorization: Bearer tokens; nil disables them.
	OIDC *auth.OIDC
	// Governance stores keys created through the admin API, tenants,
	// members, policies and the audit log; nil disables those routes.
	Governance store.Governance
	// RateLimit is the sustained requests per second allowed per principal
	// (anonymous callers: per TCP peer address); 0 disables limiting.
	RateLimit float64
	RateBurst int
	// RateMaxKeys bounds the limiter's memory (least recently used buckets
	// are dropped first); 0 = 10000.
	RateMaxKeys int
	// Origins is the CORS and WebSocket origin policy; nil allows no
	// cross-origin browser calls.
	Origins *OriginPolicy
}

// security is the server's authentication state.
type security struct {
	keys          *auth.Keyring
	open          bool // no credentials configured: local single-user mode
	adminFallback bool
	oidc          *auth.OIDC
	gov           store.Governance
	limiter       *limiter // nil: off
	origins       *OriginPolicy
}

func newSecurity(opts Options) *security {
	so := opts.Security
	byRole := map[Role][]string{}
	for role, ks := range so.Keys {
		for _, k := range ks {
			byRole[role] = append(byRole[role], auth.SplitKeys(k)...)
		}
	}
	byRole[RoleOperator] = append(byRole[RoleOperator], auth.SplitKeys(opts.APIKey)...)
	byRole[RoleAdmin] = append(byRole[RoleAdmin], auth.SplitKeys(opts.AdminAPIKey)...)
	sec := &security{
		keys:          auth.NewKeyring(byRole),
		adminFallback: so.AdminFallback,
		oidc:          so.OIDC,
		gov:           so.Governance,
		origins:       so.Origins,
	}
	sec.open = sec.keys.Len() == 0 && sec.oidc == nil
	if so.RateLimit > 0 {
		sec.limiter = newLimiter(rate.Limit(so.RateLimit), so.RateBurst, so.RateMaxKeys, time.Now)
	}
	if sec.origins == nil {
		sec.origins = &OriginPolicy{}
	}
	return sec
}

var errBadCredentials = errs.New(errs.Unauthorized, "invalid or missing credentials")

// authenticate turns the request's credentials into a principal. No
// credentials give the public principal (or, with nothing configured, the
// local admin); credentials that are present but wrong are Unauthorized,
// never silently ignored.
func (sec *security) authenticate(r *http.Request) (*auth.Principal, error) {
	ctx := r.Context()
	if v := r.Header.Get("X-Admin-API-Key"); v != "" && !sec.open {
		e, ok := sec.keys.Lookup(v)
		if !ok || e.Role != RoleAdmin {
			return nil, errs.New(errs.Unauthorized, "invalid admin API key")
		}
		return keyPrincipal(e, auth.MethodAdminKey), nil
	}
	if v := r.Header.Get("X-API-Key"); v != "" {
		if p, err := sec.apiKey(ctx, v); p != nil || err != nil || !sec.open {
			return p, err
		}
	}
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, tok, _ := strings.Cut(v, " ")
		tok = strings.TrimSpace(tok)
		switch {
		case !strings.EqualFold(scheme, "Bearer") || tok == "":
			if !sec.open {
				return nil, errs.New(errs.Unauthorized, "unsupported Authorization scheme (want Bearer)")
			}
		case strings.HasPrefix(tok, auth.KeyPrefix):
			if p, err := sec.apiKey(ctx, tok); p != nil || err != nil || !sec.open {
				return p, err
			}
		case sec.oidc != nil:
			p, err := sec.oidc.Verify(ctx, tok)
			if err != nil {
				return nil, err
			}
			sec.applyMembership(ctx, p)
			return p, nil
		case !sec.open:
			return nil, errs.New(errs.Unauthorized, "bearer tokens are not accepted (no OIDC issuer configured)")
		}
	}
	if sec.open {
		return &auth.Principal{Subject: "local", Role: RoleAdmin, Tenant: auth.DefaultTenant, Method: auth.MethodNone, ActForUsers: true}, nil
	}
	return &auth.Principal{Role: RolePublic, Method: auth.MethodAnon}, nil
}

// apiKey looks a key up in the configured keyring, then among the keys
// created through the admin API (by hash). nil, nil means "not found" only
// in open mode; otherwise an unknown key is Unauthorized.
func (sec *security) apiKey(ctx context.Context, key string) (*auth.Principal, error) {
	if len(key) > 512 {
		return nil, errBadCredentials
	}
	if e, ok := sec.keys.Lookup(key); ok {
		return keyPrincipal(e, auth.MethodAPIKey), nil
	}
	if sec.gov != nil {
		k, err := sec.gov.Keys().GetByHash(ctx, auth.HashKey(key))
		switch {
		case err == nil:
			role, rerr := auth.ParseRole(k.Role)
			if rerr != nil {
				return nil, errBadCredentials
			}
			return &auth.Principal{Subject: "key:" + k.ID, Role: role, Tenant: k.TenantID, Method: auth.MethodStoredKey, ActForUsers: k.ActForUsers}, nil
		case !errs.Is(err, errs.NotFound):
			return nil, err
		}
	}
	if sec.open {
		return nil, nil
	}
	return nil, errBadCredentials
}

func keyPrincipal(e auth.KeyEntry, method string) *auth.Principal {
	return &auth.Principal{Subject: "key:" + auth.KeyID(e.Hash), Role: e.Role, Tenant: e.Tenant, Method: method, ActForUsers: e.ActForUsers}
}

// applyMembership gives an OIDC user the role recorded for it in its
// tenant's member list (tenant admins manage it), unless it is an admin.
func (sec *security) applyMembership(ctx context.Context, p *auth.Principal) {
	if sec.gov == nil || p.Role == RoleAdmin {
		return
	}
	m, err := sec.gov.Tenants().GetMember(ctx, p.Tenant, p.Subject)
	if err != nil {
		return
	}
	if role, err := auth.ParseRole(m.Role); err == nil && role != RoleAdmin && role != RoleWorker {
		p.Role = role
	}
}

// checkUserHeader validates X-User-ID and refuses it from principals that
// may not act for other users.
func checkUserHeader(r *http.Request, p *auth.Principal) error {
	v := strings.TrimSpace(r.Header.Get("X-User-ID"))
	if v == "" {
		return nil
	}
	if err := auth.ValidUserID("X-User-ID", v); err != nil {
		return err
	}
	if !p.ActForUsers && !p.IsAdmin() && v != p.Subject {
		return errs.New(errs.Forbidden, "X-User-ID: this principal may not act for other users")
	}
	return nil
}

// peerHost is the TCP peer's address without port. Forwarded-for headers
// are never trusted: anyone can send them.
func peerHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// limiter is a token bucket per key with bounded memory: at most max
// buckets, least recently used evicted first, idle ones dropped after ttl.
type limiter struct {
	limit rate.Limit
	burst int
	max   int
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	lru   *list.List // front = most recently used; values *bucket
	byKey map[string]*list.Element
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(l rate.Limit, burst, max int, now func() time.Time) *limiter {
	if burst <= 0 {
		burst = int(math.Max(1, math.Ceil(float64(l))))
	}
	if max <= 0 {
		max = 10000
	}
	return &limiter{limit: l, burst: burst, max: max, ttl: 10 * time.Minute, now: now, lru: list.New(), byKey: map[string]*list.Element{}}
}

// allow takes one token for key; when none is left it returns how long
// until one is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if el, ok := l.byKey[key]; ok {
		b = el.Value.(*bucket)
		l.lru.MoveToFront(el)
	} else {
		b = &bucket{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		l.byKey[key] = l.lru.PushFront(b)
	}
	b.seen = now
	for l.lru.Len() > l.max || (l.lru.Len() > 0 && now.Sub(l.lru.Back().Value.(*bucket).seen) > l.ttl) {
		old := l.lru.Back()
		delete(l.byKey, old.Value.(*bucket).key)
		l.lru.Remove(old)
	}
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// rateLimitError is a 429 that carries its Retry-After.
func rateLimitError(w http.ResponseWriter, wait time.Duration) error {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return errs.New(errs.Limit, "rate limit exceeded; retry after %ds", secs)
}

// OriginPolicy decides which browser origins may call the API (CORS) and
// open WebSockets. Same-origin requests and non-browser clients (no Origin
// header) are always allowed; "*" is only accepted in development mode.
type OriginPolicy struct {
	any     bool
	origins map[string]bool
}

// NewOriginPolicy validates origins ("scheme://host[:port]"); "*" is
// Invalid unless development is set.
func NewOriginPolicy(origins []string, development bool) (*OriginPolicy, error) {
	p := &OriginPolicy{origins: map[string]bool{}}
	for _, o := range origins {
		if o == "*" {
			if !development {
				return nil, errs.New(errs.Invalid, "CORS origin \"*\" is only allowed with server.mode: development")
			}
			p.any = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, errs.New(errs.Invalid, "%q is not an origin (want scheme://host[:port])", o)
		}
		p.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return p, nil
}

// Allowed reports whether r's Origin may use the API. The WebSocket and
// preview handlers call it before upgrading or proxying.
func (p *OriginPolicy) Allowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if p.originOK(o) {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func (p *OriginPolicy) originOK(o string) bool {
	if p == nil {
		return false
	}
	return p.any || p.origins[strings.ToLower(o)]
}

// OriginAllowed is the server's origin check (see OriginPolicy.Allowed).
func (s *server) OriginAllowed(r *http.Request) bool { return s.sec.origins.Allowed(r) }

// corsHandler answers preflights and sets CORS headers for allowed origins.
// It runs before authentication: a preflight carries no credentials.
func (sec *security) corsHandler(next http.Handler) http.Handler {
	c := cors.New(cors.Options{
		AllowOriginFunc: sec.origins.originOK,
		AllowedMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch},
		AllowedHeaders: []string{"Content-Type", "Authorization", "X-API-Key", "X-Admin-API-Key",
			"X-Request-ID", "X-User-ID", "X-Tenant-ID", "Accept"},
		ExposedHeaders:   []string{"X-Request-ID", "X-Next-Cursor", "Retry-After"},
		AllowCredentials: false,
		MaxAge:           600,
	})
	return c.Handler(next)
}
