package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/preview"
)

// defaultPreviewTokenTTL is a minted token's lifetime when the body names none.
const defaultPreviewTokenTTL = time.Hour

// previewTokenJSON answers POST /sandboxes/{id}/preview/{port}/token.
type previewTokenJSON struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	URL       string `json:"url,omitempty"` // host-routed, token in the query
	PathURL   string `json:"path_url"`      // path-routed on the API's host
}

func (s *server) mintPreviewToken(w http.ResponseWriter, r *http.Request) error {
	if s.preview == nil || s.preview.opts.Signer == nil {
		return errs.New(errs.Unavailable, "preview tokens are not enabled on this server")
	}
	id := r.PathValue("id")
	port, err := agent.ParsePort(r.PathValue("port"))
	if err != nil {
		return err
	}
	var b struct {
		TTL string `json:"ttl"`
	}
	if err := s.decodeJSON(w, r, &b, false); err != nil {
		return err
	}
	ttl, err := parseDuration("ttl", b.TTL)
	if err != nil {
		return err
	}
	if ttl == 0 {
		ttl = defaultPreviewTokenTTL
	}
	if ttl > s.preview.opts.MaxTokenTTL {
		return errs.New(errs.Invalid, "ttl %s is over the maximum preview token lifetime %s", ttl, s.preview.opts.MaxTokenTTL)
	}
	sb, err := s.preview.svc.PortTarget(r.Context(), id, port)
	if err != nil {
		return err
	}
	exp := time.Now().Add(ttl).Truncate(time.Second)
	t := preview.Target{Sandbox: sb.ID, Port: port}
	tok, err := s.preview.opts.Signer.Mint(preview.Claims{Sandbox: sb.ID, Port: port, Tenant: sb.TenantID, Expires: exp})
	if err != nil {
		return err
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	writeJSON(w, http.StatusOK, previewTokenJSON{
		Token:     tok,
		ExpiresAt: rfc3339(exp),
		URL:       s.previewURL(t, tok),
		PathURL:   scheme + "://" + r.Host + preview.PathPrefix + sb.ID + "/" + strconv.Itoa(port) + "/?" + previewTokenParam + "=" + tok,
	})
	return nil
}
