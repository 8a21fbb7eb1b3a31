package api

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// poolStatus answers API.md's pool-mode status. Pool mode (many users
// sharing one sandbox) is not supported yet, so it is reported as disabled;
// warm pools (ready sandboxes per image) are at /pool/warm.
func (s *server) poolStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]bool{"enabled": false})
	return nil
}

type warmPoolJSON struct {
	Image    string `json:"image"`
	Provider string `json:"provider"`
	Size     int    `json:"size"`
	Ready    int    `json:"ready"`
	Creating int    `json:"creating"`
}

func (s *server) warmPools(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.svc.WarmPools(r.Context())
	if err != nil {
		return err
	}
	out := struct {
		Enabled bool           `json:"enabled"`
		Pools   []warmPoolJSON `json:"pools"`
	}{Enabled: len(ps) > 0, Pools: make([]warmPoolJSON, 0, len(ps))}
	for _, p := range ps {
		out.Pools = append(out.Pools, warmPoolJSON{Image: p.Image, Provider: p.Provider, Size: p.Size, Ready: p.Ready, Creating: p.Creating})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// pprof serves the Go runtime profiles (admin only).
func (s *server) pprof(w http.ResponseWriter, r *http.Request) error {
	switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
	return nil
}
