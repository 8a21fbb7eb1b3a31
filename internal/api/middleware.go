package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

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
		)
	})
}

// authorize is the one place that enforces a route's required role. The
// principal's role comes from X-API-Key, compared in constant time.
func (s *server) authorize(rt route, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		ri.route = rt.Method + " " + rt.fullPath()
		ri.role = s.principalRole(r)
		if !ri.role.Allows(rt.Role) {
			// No credentials: 401. Authenticated but short of the role: 403.
			if ri.role == RolePublic {
				s.writeError(w, r, errs.New(errs.Unauthorized, "invalid or missing API key"))
			} else {
				s.writeError(w, r, errs.New(errs.Forbidden, "this route requires the %s role", rt.Role))
			}
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// principalRole authenticates r. Without a configured key every caller is an
// operator (the server then binds to loopback only; see internal/app).
func (s *server) principalRole(r *http.Request) Role {
	if len(s.apiKey) == 0 && len(s.adminKey) == 0 {
		return RoleAdmin
	}
	if got := r.Header.Get("X-Admin-API-Key"); got != "" && len(s.adminKey) > 0 &&
		subtle.ConstantTimeCompare([]byte(got), s.adminKey) == 1 {
		return RoleAdmin
	}
	if got := r.Header.Get("X-API-Key"); got != "" {
		if len(s.adminKey) > 0 && subtle.ConstantTimeCompare([]byte(got), s.adminKey) == 1 {
			return RoleAdmin
		}
		if len(s.apiKey) > 0 && subtle.ConstantTimeCompare([]byte(got), s.apiKey) == 1 {
			return RoleOperator
		}
	}
	return RolePublic
}

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
