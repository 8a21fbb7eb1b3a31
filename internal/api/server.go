// Package api is StacyVM's HTTP surface (API.md): routing, authentication,
// request decoding, error mapping and the OpenAPI document. Handlers parse a
// request, call one Service method and render the result; they hold no
// business logic.
package api

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// Service is what the API needs from the sandbox domain. Every method returns
// classified errors (internal/errs); the API maps their classes to statuses
// in errors.go. The Service validates semantics (allowed images, max ttl,
// state transitions, shell/argv resolution, path cleaning); the API only
// validates syntax and shapes.
type Service interface {
	Create(ctx context.Context, req sandbox.CreateRequest) (*sandbox.Sandbox, error)
	Admission(ctx context.Context, req sandbox.CreateRequest) (sandbox.Admission, error)
	Get(ctx context.Context, id string) (*sandbox.Sandbox, error) // NotFound for unknown or destroyed
	List(ctx context.Context, f sandbox.ListFilter) ([]*sandbox.Sandbox, error)
	Destroy(ctx context.Context, id string) error // NotFound for unknown or already destroyed
	Prune(ctx context.Context) (int, error)
	Extend(ctx context.Context, id string, ttl time.Duration) (*sandbox.Sandbox, error)
	Logs(ctx context.Context, id string, lines int) ([]string, error)
	Stats(ctx context.Context, id string) (sandbox.Stats, error)
	Exec(ctx context.Context, id string, req sandbox.ExecRequest, stdout, stderr io.Writer) (sandbox.ExecResult, error)
	ReadFile(ctx context.Context, id, path string) (io.ReadCloser, int64, error)
	WriteFile(ctx context.Context, id, path string, mode uint32, body io.Reader, size int64) error
	DeleteFile(ctx context.Context, id, path string, recursive bool) error
	ListFiles(ctx context.Context, id, path string) ([]agent.FileInfo, error)
	StatFile(ctx context.Context, id, path string) (agent.FileInfo, error)
	Glob(ctx context.Context, id, pattern string) ([]string, error)
	MoveFile(ctx context.Context, id, oldPath, newPath string) error
	ChmodFile(ctx context.Context, id, path, mode string) error
	Providers(ctx context.Context) ([]sandbox.ProviderInfo, error)
	TestProviders(ctx context.Context) (map[string]bool, error)
	Ready(ctx context.Context) error // nil when the store answers and the default provider is healthy
	WarmPools(ctx context.Context) ([]sandbox.WarmPoolInfo, error)
	TemplateService
}

// Options configure the HTTP handler returned by New.
type Options struct {
	Service        Service
	Logger         *slog.Logger // nil discards logs
	Version        string
	APIKey         string // "" (and no admin key) = no auth: local single-user mode, every caller is admin
	AdminAPIKey    string // X-Admin-API-Key grants the admin role (/debug/pprof)
	MaxBodyBytes   int64  // limit for JSON request bodies; 0 = DefaultMaxBodyBytes
	MaxUploadBytes int64  // limit for raw file uploads; 0 = DefaultMaxUploadBytes, negative = no limit
	StartedAt      time.Time
	// Security configures keys, OIDC, governance, rate limits and CORS
	// (auth_security.go).
	Security SecurityOptions
	// Ops wires metrics, the event stream and diagnostics (metrics.go).
	Ops Ops
	// Preview configures the preview proxy (preview.go); it serves when
	// Service also implements PreviewService.
	Preview PreviewOptions
	// Tracer, when set, wraps every request in a span (internal/tracing);
	// nil (tracing disabled) adds nothing to the chain.
	Tracer RequestTracer
}

// RequestTracer wraps the handler chain with one span per request. facts
// reads what routing learned about the request; call it after next returns.
type RequestTracer interface {
	Wrap(next http.Handler, facts func(*http.Request) RequestFacts) http.Handler
}

// RequestFacts are the traceable facts of a served request: no header,
// raw path or body, so nothing secret.
type RequestFacts struct {
	Route     string // "GET /api/v1/sandboxes/{id}"; "" when no route matched
	Path      string // the route template alone, "/api/v1/sandboxes/{id}"
	RequestID string
	SandboxID string // the {id} of /sandboxes/{id}... routes, else ""
}

// Defaults for zero Options fields.
const (
	DefaultMaxBodyBytes   int64 = 16 << 20
	DefaultMaxUploadBytes int64 = 1 << 30
)

// BasePath prefixes every route.
const BasePath = "/api/v1"

// server holds the immutable configuration shared by all handlers.
type server struct {
	svc       Service
	log       *slog.Logger
	version   string
	sec       *security
	maxBody   int64
	maxUpload int64
	startedAt time.Time
	ops       Ops
	preview   *previewProxy // nil: the service cannot reach ports
	mux       *http.ServeMux
	routes    []route
}

// New returns the API handler. Requests pass through recover, request id,
// access log, routing, then the route's role check and its handler.
func New(opts Options) http.Handler {
	s := &server{
		svc:       opts.Service,
		log:       opts.Logger,
		version:   opts.Version,
		maxBody:   opts.MaxBodyBytes,
		maxUpload: opts.MaxUploadBytes,
		startedAt: opts.StartedAt,
		ops:       opts.Ops,
		mux:       http.NewServeMux(),
	}
	s.sec = newSecurity(opts)
	if ps, ok := opts.Service.(PreviewService); ok {
		s.preview = newPreviewProxy(s, ps, opts.Preview)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	switch {
	case s.maxUpload == 0:
		s.maxUpload = DefaultMaxUploadBytes
	case s.maxUpload < 0:
		// No limit: the largest limit keeps every check (declared length,
		// MaxBytesReader) on one code path.
		s.maxUpload = math.MaxInt64
	}
	if s.startedAt.IsZero() {
		s.startedAt = time.Now()
	}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.fullPath(), s.authorize(rt, rt.Handler))
	}
	h := s.metrics(s.accessLog(s.previewHook(s.sec.corsHandler(http.HandlerFunc(s.dispatch)))))
	if opts.Tracer != nil {
		h = opts.Tracer.Wrap(h, requestFacts) // inside requestID: the span sees the id
	}
	return s.recoverer(s.requestID(h))
}

// dispatch routes a request, answering unknown paths with a JSON 404 and
// known paths with a wrong method with a JSON 405 and an Allow header (the
// ServeMux's own answers are plain text).
func (s *server) dispatch(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) == 0 {
		s.writeError(w, r, errNoRoute())
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeError(w, r, errMethod(r.Method))
}
