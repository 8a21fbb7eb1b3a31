package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// readyTimeout bounds the readiness probe's calls into the service.
const readyTimeout = 5 * time.Second

// healthJSON is the body of /health, /live and /ready.
type healthJSON struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Uptime  string `json:"uptime"`
	Error   string `json:"error,omitempty"`
}

func (s *server) healthBody(status string) healthJSON {
	return healthJSON{Status: status, Version: s.version, Uptime: time.Since(s.startedAt).Round(time.Second).String()}
}

func (s *server) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, s.healthBody("ok"))
	return nil
}

func (s *server) live(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, s.healthBody("alive"))
	return nil
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.svc.Ready(ctx); err != nil {
		body := s.healthBody("not_ready")
		_, _, body.Error = s.publicError(r, err)
		writeJSON(w, http.StatusServiceUnavailable, body)
		return nil
	}
	writeJSON(w, http.StatusOK, s.healthBody("ready"))
	return nil
}

// providerJSON is one entry of GET /providers.
type providerJSON struct {
	Name             string   `json:"name"`
	Healthy          bool     `json:"healthy"`
	Default          bool     `json:"default"`
	LatencyMS        int64    `json:"latency_ms"`
	LastChecked      string   `json:"last_checked,omitempty"`
	Error            string   `json:"error,omitempty"`
	Capabilities     []string `json:"capabilities"`
	Isolation        string   `json:"isolation"`
	SecurityBoundary bool     `json:"security_boundary"`
}

func toProviderJSON(p sandbox.ProviderInfo) providerJSON {
	caps := append([]string{}, p.Capabilities.Features...)
	if iso := p.Capabilities.Isolation; iso != "" && !slices.Contains(caps, iso) {
		caps = append(caps, iso)
	}
	return providerJSON{
		Name: p.Name, Healthy: p.Healthy, Default: p.Default, LatencyMS: p.LatencyMS,
		LastChecked: rfc3339(p.LastChecked), Error: p.Error, Capabilities: caps,
		Isolation: p.Capabilities.Isolation, SecurityBoundary: p.Capabilities.Boundary,
	}
}

func (s *server) listProviders(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.svc.Providers(r.Context())
	if err != nil {
		return err
	}
	out := make([]providerJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, toProviderJSON(p))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getProvider(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	ps, err := s.svc.Providers(r.Context())
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Name == name {
			writeJSON(w, http.StatusOK, toProviderJSON(p))
			return nil
		}
	}
	return errs.New(errs.NotFound, "provider %q not found", name)
}

func (s *server) testProviders(w http.ResponseWriter, r *http.Request) error {
	res, err := s.svc.TestProviders(r.Context())
	if err != nil {
		return err
	}
	if res == nil {
		res = map[string]bool{}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
