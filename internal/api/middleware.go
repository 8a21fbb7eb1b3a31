package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// reqInfoKey is the context key of the per-request *reqInfo.
type reqInfoKey struct{}

// reqInfo is per-request state shared between the middlewares and handlers.
// It is created by requestID and only touched by the request's goroutine.
type reqInfo struct {
	id    string
	route string // the matched table pattern, for logs
	role  Role   // the authenticated principal's role
	// principal is who the request acts as (set by authorize).
	principal *auth.Principal
	// auditTarget and auditDetail describe an admin call for the audit
	// log; handlers set them (never with secrets).
	auditTarget, auditDetail string
	// sandboxID is the {id} of a /sandboxes/{id}... route (for traces).
	sandboxID string
}

// requestFacts reports what routing learned about r, for RequestTracer.
func requestFacts(r *http.Request) RequestFacts {
	ri := infoFrom(r.Context())
	f := RequestFacts{Route: ri.route, RequestID: ri.id, SandboxID: ri.sandboxID}
	_, f.Path, _ = strings.Cut(ri.route, " ")
	return f
}

func infoFrom(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// requestIDFrom returns the request id of ctx, or "".
func requestIDFrom(ctx context.Context) string { return infoFrom(ctx).id }

// randomHex returns n random bytes, hex encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// saneRequestID accepts a client-supplied id of 1-64 printable ASCII
// characters; anything else could corrupt logs or headers.
func saneRequestID(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// recoverer turns a handler panic into a logged 500 (when nothing was
// written yet) instead of a dropped connection.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "handler panic",
				"panic", v, "stack", string(debug.Stack()),
				"method", r.Method, "path", r.URL.Path)
			if !rec.wroteHeader {
				s.writeError(rec, r, errors.New("panic in handler"))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// requestID attaches the request id (the client's X-Request-ID when sane,
// else a generated one) to the context and echoes it in the response.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !saneRequestID(id) {
			id = "req-" + randomHex(8)
		}
		w.Header().Set("X-Request-ID", id)
		ri := &reqInfo{id: id, role: RolePublic}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri)))
	})
}

// accessLog writes one structured line per request. It never logs headers
// or bodies (they carry keys and user data).
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		ri := infoFrom(r.Context())
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("route", ri.route),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.Int64("bytes", rec.bytes),
			slog.String("request_id", ri.id),
			slog.String("principal", principalAttr(ri.principal)),
		)
	})
}

// authorize is the one place that enforces a route's required role. It
// authenticates the request (auth_security.go), rate-limits by principal,
// checks X-User-ID, bounds the body, puts the principal in the context for
// the service (tenancy, policy, audit) and records admin calls in the audit.
func (s *server) authorize(rt route, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		ri.route = rt.Method + " " + rt.fullPath()
		if id := r.PathValue("id"); strings.HasPrefix(rt.Path, "/sandboxes/{id}") && len(id) <= 64 {
			ri.sandboxID = id
		}
		rec := &recorder{ResponseWriter: w}
		err := s.guard(rec, r, rt, ri)
		if err == nil {
			r.Body = http.MaxBytesReader(rec, r.Body, s.bodyLimit(rt))
			r = r.WithContext(auth.WithPrincipal(r.Context(), ri.principal))
			err = h(rec, r)
		}
		if err != nil {
			s.writeError(rec, r, err)
		}
		if isAdminRoute(rt) {
			s.auditAdmin(r, ri, rec.status)
		}
	})
}

// guard authenticates and authorizes r for rt; the principal lands in ri.
func (s *server) guard(w http.ResponseWriter, r *http.Request, rt route, ri *reqInfo) error {
	p, err := s.sec.authenticate(r)
	if p == nil && err == nil {
		err = errBadCredentials
	}
	if p == nil {
		p = &auth.Principal{Role: RolePublic, Method: auth.MethodAnon}
	}
	p.RemoteAddr, p.RequestID = r.RemoteAddr, ri.id
	ri.principal, ri.role = p, p.Role
	if s.sec.limiter != nil {
		key := "ip:" + peerHost(r)
		if p.Role != RolePublic {
			key = "p:" + p.Method + ":" + p.Subject
		}
		if ok, wait := s.sec.limiter.allow(key); !ok {
			return rateLimitError(w, wait)
		}
	}
	if err != nil {
		return err
	}
	if !p.Role.Allows(rt.Role) && !s.fallbackAdmin(p, rt) {
		// No credentials: 401. Authenticated but short of the role: 403.
		if p.Role == RolePublic {
			return errs.New(errs.Unauthorized, "invalid or missing API key")
		}
		return errs.New(errs.Forbidden, "this route requires the %s role", rt.Role)
	}
	return checkUserHeader(r, p)
}

// fallbackAdmin is auth.admin_fallback_enabled: a configured regular key
// is accepted on admin routes (and then acts as admin there).
func (s *server) fallbackAdmin(p *auth.Principal, rt route) bool {
	if !s.sec.adminFallback || rt.Role != RoleAdmin || p.Method != auth.MethodAPIKey || p.Role != RoleOperator {
		return false
	}
	p.Role = RoleAdmin
	return true
}

// bodyLimit is the per-route cap on request bodies: raw uploads get the
// upload limit, admin routes 1 MiB, everything else the JSON limit.
func (s *server) bodyLimit(rt route) int64 {
	switch {
	case isAdminRoute(rt):
		return min(s.maxBody, 1<<20)
	case rt.Method == http.MethodPut && (strings.Contains(rt.Path, "/files") || strings.Contains(rt.Path, "/archive")):
		return s.maxUpload
	case rt.Method == http.MethodPost && strings.HasSuffix(rt.Path, "/files"):
		return max(s.maxBody, s.maxUpload)
	}
	return s.maxBody
}

func isAdminRoute(rt route) bool { return strings.HasPrefix(rt.Path, "/admin/") }

// recorder captures the status and size of a response. It keeps Flush
// reachable (directly and through Unwrap) so streams still flush.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher.
func (r *recorder) Flush() {
	if !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusOK, true
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

var _ http.Flusher = (*recorder)(nil)

// principalAttr names a principal in logs (never a secret).
func principalAttr(p *auth.Principal) string {
	if p == nil {
		return ""
	}
	return p.Method + ":" + p.Subject
}
