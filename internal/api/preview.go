package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/preview"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// Live previews: a reverse proxy in front of every sandbox port, reached
// by Host ("{port}-{id}.{domain}") or by path ("/preview/{id}/{port}/...").
// Upstream connections go through the sandbox agent (agent.Client.DialPort),
// so every provider and network "none" work alike. Requests need the API's
// own credentials (operator role, tenant rules) or a preview token minted by
// POST /sandboxes/{id}/preview/{port}/token.

// PreviewOptions configure the preview proxy. A zero Domain disables
// host routing; a nil Signer disables preview tokens.
type PreviewOptions struct {
	// Domain is the preview host suffix ("localhost" serves
	// 8080-sb-1234.localhost); a port in it is ignored for matching.
	Domain string
	// PublicDomain is what sandbox JSON reports as preview_domain (Domain
	// with the port clients reach the server on, e.g. "localhost:7423").
	PublicDomain string
	// Signer mints and verifies preview tokens.
	Signer *preview.Signer
	// MaxTokenTTL caps minted tokens; 0 = 7 days.
	MaxTokenTTL time.Duration
}

// PreviewService is what previews need from the sandbox domain.
type PreviewService interface {
	// PortTarget resolves a running sandbox the caller may see.
	PortTarget(ctx context.Context, id string, port int) (*sandbox.Sandbox, error)
	// DialPort opens a stream to the port inside the sandbox.
	DialPort(ctx context.Context, id string, port int) (net.Conn, error)
}

// Token transport: the query parameter a shared URL carries, and the cookie
// it turns into so the page's own subresources and WebSockets load.
const (
	previewTokenParam  = "stacyvm_preview_token"
	previewTokenCookie = "stacyvm_preview_token"
)

// previewDialTimeout bounds reaching a port (agent dial + in-sandbox dial).
const previewDialTimeout = 15 * time.Second

type previewProxy struct {
	svc    PreviewService
	opts   PreviewOptions
	proxy  *httputil.ReverseProxy
	server *server
}

type previewCtxKey struct{}

// previewReq travels from the handler to Rewrite in the request context.
type previewReq struct {
	target preview.Target
	rest   string // upstream path
	prefix string // "/preview/{id}/{port}" for path routing, "" for host routing
}

func newPreviewProxy(s *server, svc PreviewService, opts PreviewOptions) *previewProxy {
	if opts.MaxTokenTTL <= 0 {
		opts.MaxTokenTTL = 7 * 24 * time.Hour
	}
	p := &previewProxy{svc: svc, opts: opts, server: s}
	tr := &http.Transport{
		DialContext:           p.dial,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass the app's encoding through untouched
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     tr,
		FlushInterval: -1, // stream: SSE and chunked answers reach the browser at once
		ErrorHandler:  p.proxyError,
		ErrorLog:      nil,
	}
	return p
}

// upstreamHost encodes a target as the transport's connection-pool key; dial
// decodes it. ".sandbox" never resolves: only dial understands it.
func upstreamHost(t preview.Target) string {
	return t.Sandbox + ".sandbox:" + strconv.Itoa(t.Port)
}

func (p *previewProxy) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "bad upstream address")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "bad upstream port")
	}
	ctx, cancel := context.WithTimeout(ctx, previewDialTimeout)
	defer cancel()
	// Authorization happened on the request path (servePreview); the
	// connection may be pooled and reused for later authorized requests.
	return p.svc.DialPort(auth.WithPrincipal(ctx, nil), strings.TrimSuffix(host, ".sandbox"), port)
}

func (p *previewProxy) rewrite(pr *httputil.ProxyRequest) {
	pq := pr.In.Context().Value(previewCtxKey{}).(*previewReq)
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = upstreamHost(pq.target)
	out.URL.Path = pq.rest
	out.URL.RawPath = pr.In.URL.RawPath
	if pq.prefix != "" {
		// Keep the client's encoding (%2F stays %2F) past the prefix.
		out.URL.RawPath, _ = strings.CutPrefix(pr.In.URL.EscapedPath(), pq.prefix)
	}
	q := out.URL.Query()
	if q.Has(previewTokenParam) {
		q.Del(previewTokenParam)
		out.URL.RawQuery = q.Encode()
	}
	out.Host = pr.In.Host // dev servers check Host; they see the preview host
	pr.SetXForwarded()
	if pq.prefix != "" {
		out.Header.Set("X-Forwarded-Prefix", pq.prefix)
	}
	// Our credentials never reach the sandbox.
	out.Header.Del("X-API-Key")
	out.Header.Del("X-Admin-API-Key")
	if a := out.Header.Get("Authorization"); a != "" {
		if scheme, _, _ := strings.Cut(a, " "); strings.EqualFold(scheme, "Bearer") {
			out.Header.Del("Authorization")
		}
	}
	stripCookie(out.Header, previewTokenCookie)
}

// stripCookie removes cookie name from the Cookie headers of h.
func stripCookie(h http.Header, name string) {
	vals := h.Values("Cookie")
	if len(vals) == 0 {
		return
	}
	var keep []string
	for _, line := range vals {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if k, _, _ := strings.Cut(part, "="); part != "" && k != name {
				keep = append(keep, part)
			}
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// errBadGateway is the proxy's own failure: the sandbox runs but its port
// did not answer.
func errBadGateway(msg string) error {
	return &httpError{http.StatusBadGateway, "BAD_GATEWAY", msg}
}

func (p *previewProxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	pq, _ := r.Context().Value(previewCtxKey{}).(*previewReq)
	port := 0
	if pq != nil {
		port = pq.target.Port
	}
	switch {
	case errors.Is(err, agent.ErrPortClosed):
		err = errBadGateway(errs.Message(err))
	case errs.ClassOf(err) != errs.Internal:
		// NotFound, Conflict, Unavailable...: mapped as everywhere else.
	case r.Context().Err() != nil:
		return // the client left; nobody reads an answer
	default:
		p.server.log.InfoContext(r.Context(), "preview upstream failed", "port", port, "error", err, "request_id", requestIDFrom(r.Context()))
		err = errBadGateway("the server on port " + strconv.Itoa(port) + " inside the sandbox closed the connection without a complete answer")
	}
	p.server.writeError(w, r, err)
}

// match reports whether r is a preview request and, for one, its target.
func (p *previewProxy) match(r *http.Request) (*previewReq, bool, error) {
	if p.opts.Domain != "" {
		t, ok, err := preview.ParseHost(r.Host, p.opts.Domain)
		if ok {
			if err != nil {
				return nil, true, err
			}
			return &previewReq{target: t, rest: r.URL.Path}, true, nil
		}
	}
	t, rest, ok, needSlash, err := preview.ParsePath(r.URL.Path)
	if !ok {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	pq := &previewReq{target: t, rest: rest, prefix: "/preview/" + t.Sandbox + "/" + strconv.Itoa(t.Port)}
	if needSlash {
		pq.rest = "" // marks the redirect to the slashed prefix
	}
	return pq, true, nil
}

// previewHook serves preview requests and passes everything else on.
func (s *server) previewHook(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.preview == nil {
			next.ServeHTTP(w, r)
			return
		}
		pq, ok, err := s.preview.match(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ri := infoFrom(r.Context())
		ri.route = "PREVIEW /preview/{id}/{port}"
		if err == nil {
			err = s.servePreview(w, r, pq)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// servePreview authenticates, resolves the sandbox and proxies.
func (s *server) servePreview(w http.ResponseWriter, r *http.Request, pq *previewReq) error {
	p := s.preview
	if isUpgrade(r) && !s.OriginAllowed(r) {
		// Cross-site WebSocket hijacking: a browser sends the preview cookie
		// (SameSite=Lax: sibling previews on the same domain are same-site)
		// with a handshake any page may start, and a WebSocket is not bound
		// by CORS. Only the preview's own origin, listed origins and
		// non-browser clients (no Origin) may upgrade.
		return errs.New(errs.Forbidden, "origin %q may not open WebSockets to this preview (server.cors_allowed_origins)", printableID(r.Header.Get("Origin")))
	}
	ctx, tokenFromQuery, err := s.previewAuth(w, r, pq.target)
	if err != nil {
		return err
	}
	r = r.WithContext(ctx)
	if _, err := p.svc.PortTarget(ctx, pq.target.Sandbox, pq.target.Port); err != nil {
		return err
	}
	if tokenFromQuery != "" {
		http.SetCookie(w, &http.Cookie{
			Name:     previewTokenCookie,
			Value:    tokenFromQuery,
			Path:     pq.prefix + "/", // host routing: "/" on that host only
			HttpOnly: true,
			Secure:   r.TLS != nil,
			SameSite: http.SameSiteLaxMode,
		})
	}
	if pq.prefix != "" && pq.rest == "" {
		// "/preview/{id}/{port}": relative links need the trailing slash.
		u := *r.URL
		u.Path = pq.prefix + "/"
		u.RawPath = ""
		http.Redirect(w, r, u.RequestURI(), http.StatusFound)
		return nil
	}
	// Full duplex: the upstream may answer while the request body is still
	// being sent (streaming uploads, early errors), and the transport reads
	// the body once more for its EOF after the answer began. Without it the
	// HTTP/1 server closes the body at the first response write, the
	// transport's write fails and it tears down the upstream connection
	// mid-answer (seen as truncated 1 MiB echoes under load).
	_ = http.NewResponseController(w).EnableFullDuplex()
	p.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, previewCtxKey{}, pq)))
	return nil
}

// previewAuth accepts the API's credentials (same authentication, rate
// limit and role rules as every route, operator role) or a preview token
// for exactly this sandbox and port, from the query (then returned so a
// cookie is set) or from the cookie. The returned context carries the
// principal the sandbox lookup is checked against.
func (s *server) previewAuth(w http.ResponseWriter, r *http.Request, t preview.Target) (context.Context, string, error) {
	ctx := r.Context()
	tok, fromQuery := r.URL.Query().Get(previewTokenParam), true
	if tok == "" {
		fromQuery = false
		if c, err := r.Cookie(previewTokenCookie); err == nil {
			tok = c.Value
		}
	}
	var tokErr error
	if tok != "" {
		if s.preview.opts.Signer == nil {
			tokErr = errs.New(errs.Unauthorized, "preview tokens are not enabled on this server")
		} else if c, err := s.preview.opts.Signer.Verify(tok); err != nil {
			tokErr = err
		} else if c.Sandbox != t.Sandbox || c.Port != t.Port {
			tokErr = errs.New(errs.Unauthorized, "this preview token is for another sandbox or port")
		} else {
			// The token is the authority: act as a principal of the
			// sandbox's tenant, allowed to see it and nothing else.
			p := &auth.Principal{Subject: "preview-token", Role: RoleOperator, Tenant: c.Tenant, Method: "preview_token"}
			infoFrom(ctx).principal, infoFrom(ctx).role = p, p.Role
			if !fromQuery {
				tok = ""
			}
			return auth.WithPrincipal(ctx, p), tok, nil
		}
		if fromQuery {
			return ctx, "", tokErr
		}
	}
	ri := infoFrom(ctx)
	rt := route{Method: r.Method, Path: "/preview", Role: RoleOperator}
	if err := s.guard(w, r, rt, ri); err != nil {
		if tokErr != nil && errs.Is(err, errs.Unauthorized) {
			return ctx, "", tokErr // say why the cookie's token failed
		}
		return ctx, "", err
	}
	return auth.WithPrincipal(ctx, ri.principal), "", nil
}

// sandboxView is the Sandbox JSON with this server's preview_domain ("" when
// previews are off).
func (s *server) sandboxView(sb *sandbox.Sandbox) sandboxJSON {
	j := toSandboxJSON(sb)
	if s.preview != nil {
		j.PreviewDomain = s.preview.opts.PublicDomain
	}
	return j
}

// previewURL is the host-routed URL of a port (with a token when given).
func (s *server) previewURL(t preview.Target, token string) string {
	if s.preview == nil || s.preview.opts.PublicDomain == "" {
		return ""
	}
	u := url.URL{Scheme: "http", Host: strconv.Itoa(t.Port) + "-" + t.Sandbox + "." + s.preview.opts.PublicDomain, Path: "/"}
	if token != "" {
		u.RawQuery = url.Values{previewTokenParam: {token}}.Encode()
	}
	return u.String()
}

// isUpgrade reports whether r asks to switch protocols (WebSocket or any
// other upgrade the proxy would pass through).
func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return true
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}
