package api

import "net/http"

// diagnostics serves GET /diagnostics (admin): redacted config and runtime
// facts.
func (s *server) diagnostics(w http.ResponseWriter, r *http.Request) error {
	if s.ops.Diagnostics == nil {
		return errNotConfigured("diagnostics")
	}
	d, err := s.ops.Diagnostics(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
