// Package worker serves one local provider over HTTP (docs/worker-protocol.md)
// so that a StacyVM server elsewhere can use it as a remote provider
// (internal/provider/remote): lifecycle calls as JSON, and a relay that
// carries the agent protocol to each sandbox's agent unchanged.
package worker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/remote"
)

// Config configures a worker Server.
type Config struct {
	// Provider is the one local provider the worker exposes; required.
	Provider provider.Provider
	// Tokens are the accepted bearer tokens (several during a rotation);
	// at least one is required. Only their SHA-256 sums are kept.
	Tokens []string
	// Version is reported by /v1/info.
	Version string
	// MaxBodyBytes caps JSON request bodies; default 1 MiB.
	MaxBodyBytes int64
}

// Server is the worker's HTTP handler. It is safe for concurrent use; Close
// ends the agent relays, which http.Server.Shutdown does not track.
type Server struct {
	p       provider.Provider
	log     *slog.Logger
	version string
	maxBody int64
	sums    [][sha256.Size]byte
	mux     *http.ServeMux

	// handles maps sandbox ids to the local provider's handles. A client
	// names sandboxes by id only; the worker never acts on a handle (a
	// runtime id, a socket path) that came over the wire.
	hmu     sync.Mutex
	handles map[string]provider.Handle

	relays relaySet
}

// New returns a Server for cfg.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Provider == nil {
		return nil, errs.New(errs.Invalid, "worker: a provider is required")
	}
	if _, ok := cfg.Provider.(*remote.Provider); ok {
		return nil, errs.New(errs.Invalid, "worker: a worker cannot expose a remote provider")
	}
	s := &Server{
		p:       cfg.Provider,
		log:     log.With("component", "worker", "provider", cfg.Provider.Name()),
		version: cfg.Version,
		maxBody: cfg.MaxBodyBytes,
		handles: map[string]provider.Handle{},
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	for _, t := range cfg.Tokens {
		if t = strings.TrimSpace(t); t != "" {
			s.sums = append(s.sums, sha256.Sum256([]byte(t)))
		}
	}
	if len(s.sums) == 0 {
		return nil, errs.New(errs.Invalid, "worker: a token is required (worker.token or worker.token_file)")
	}
	mux := http.NewServeMux()
	sb := remote.PathSandboxes
	for pattern, h := range map[string]handlerFunc{
		"GET " + remote.PathInfo:    s.getInfo,
		"GET " + remote.PathHealth:  s.getHealth,
		"GET " + sb:                 s.list,
		"POST " + sb:                s.create,
		"GET " + sb + "/{id}":       s.inspect,
		"DELETE " + sb + "/{id}":    s.destroy,
		"GET " + sb + "/{id}/stats": s.stats,
		"GET " + sb + "/{id}/logs":  s.logs,
		"GET " + sb + "/{id}/agent": s.relay, // relay.go
		"/":                         s.notFound,
	} {
		mux.Handle(pattern, s.wrap(h))
	}
	s.mux = mux
	return s, nil
}

// handlerFunc is a route: it writes its answer or returns an error that
// wrap writes, in the one place errors become statuses.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP authenticates every request, then routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="stacyvm-worker"`)
		remote.WriteError(w, errs.New(errs.Unauthorized, "missing or wrong worker token"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized compares the bearer token's SHA-256 with every configured
// sum in constant time (hashing first makes the comparison independent of
// the token's length, too).
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	got := sha256.Sum256([]byte(tok))
	match := 0
	for i := range s.sums {
		match |= subtle.ConstantTimeCompare(got[:], s.sums[i][:])
	}
	return match == 1
}

func (s *Server) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		err := h(w, r)
		if err == nil {
			return
		}
		c := errs.ClassOf(err)
		level := slog.LevelInfo
		if c == errs.Internal || c == errs.Unavailable {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "worker call failed", "method", r.Method, "path", r.URL.Path,
			"sandbox_id", r.PathValue("id"), "code", c.Code(), "err", err, "ms", time.Since(start).Milliseconds())
		remote.WriteError(w, err)
	})
}

// Close ends every agent relay and waits for their goroutines.
func (s *Server) Close() error {
	s.relays.closeAll()
	return nil
}

func (s *Server) info() remote.Info {
	return remote.Info{ProtocolVersion: remote.ProtocolVersion, Version: s.version,
		Provider: s.p.Name(), Capabilities: s.p.Capabilities()}
}

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.info())
	return nil
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := s.p.Health(ctx); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.info())
	return nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) error {
	var in remote.SpecJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return errs.Wrap(errs.Invalid, err, "request body is not a sandbox spec")
	}
	// The client's disconnect cancels the create, and the provider then
	// removes what it made: no sandbox outlives a create nobody waits for.
	h, err := s.p.Create(r.Context(), in.Spec())
	if err != nil {
		return err
	}
	s.remember(h)
	s.log.Info("sandbox created", "sandbox_id", h.SandboxID, "image", in.Image)
	writeJSON(w, http.StatusCreated, h)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) error {
	hs, err := s.p.List(r.Context())
	if err != nil {
		return err
	}
	for _, h := range hs {
		s.remember(h)
	}
	if hs == nil {
		hs = []provider.Handle{}
	}
	writeJSON(w, http.StatusOK, hs)
	return nil
}

func (s *Server) inspect(w http.ResponseWriter, r *http.Request) error {
	h, ok, err := s.resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	st := provider.Status{State: provider.RuntimeMissing}
	if ok {
		if st, err = s.p.Inspect(r.Context(), h); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, remote.StatusToJSON(st))
	return nil
}

func (s *Server) destroy(w http.ResponseWriter, r *http.Request) error {
	h, ok, err := s.resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if ok {
		if err := s.p.Destroy(r.Context(), h); err != nil {
			return err
		}
		s.forget(h.SandboxID)
		s.relays.closeSandbox(h.SandboxID)
		s.log.Info("sandbox destroyed", "sandbox_id", h.SandboxID)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) error {
	sr, ok := s.p.(provider.StatsReporter)
	if !ok {
		return errs.New(errs.Invalid, "provider %s does not report stats", s.p.Name())
	}
	h, err := s.mustResolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	st, err := sr.Stats(r.Context(), h)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	lr, ok := s.p.(provider.LogReader)
	if !ok {
		return errs.New(errs.Invalid, "provider %s does not keep logs", s.p.Name())
	}
	lines := 100
	if v := r.URL.Query().Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			return errs.New(errs.Invalid, "lines must be a whole number from 0 to 10000")
		}
		lines = n
	}
	h, err := s.mustResolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out, err := lr.Logs(r.Context(), h, lines)
	if err != nil {
		return err
	}
	if out == nil {
		out = []string{}
	}
	writeJSON(w, http.StatusOK, remote.LogsJSON{Lines: out})
	return nil
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) error {
	return errs.New(errs.NotFound, "no route %s %s", r.Method, r.URL.Path)
}

func (s *Server) remember(h provider.Handle) {
	s.hmu.Lock()
	s.handles[h.SandboxID] = h
	s.hmu.Unlock()
}

func (s *Server) forget(id string) {
	s.hmu.Lock()
	delete(s.handles, id)
	s.hmu.Unlock()
}

// resolve finds the local handle of sandbox id: remembered from Create or
// List, else from a fresh List (after a worker restart). ok is false when
// the provider does not know the sandbox.
func (s *Server) resolve(ctx context.Context, id string) (h provider.Handle, ok bool, err error) {
	if err := provider.ValidSandboxID(id, remote.MaxSandboxIDLen); err != nil {
		return h, false, err
	}
	s.hmu.Lock()
	h, ok = s.handles[id]
	s.hmu.Unlock()
	if ok {
		return h, true, nil
	}
	hs, err := s.p.List(ctx)
	if err != nil {
		return h, false, err
	}
	for _, x := range hs {
		s.remember(x) // merge only: a create in flight may not be listed yet
		if x.SandboxID == id {
			h, ok = x, true
		}
	}
	return h, ok, nil
}

// mustResolve is resolve with an unknown sandbox as NotFound.
func (s *Server) mustResolve(ctx context.Context, id string) (provider.Handle, error) {
	h, ok, err := s.resolve(ctx, id)
	if err == nil && !ok {
		err = errs.New(errs.NotFound, "sandbox %s not found on this worker", id)
	}
	return h, err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // a client gone mid-answer is not ours to report
}

// Interface guard.
var _ http.Handler = (*Server)(nil)
