package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// sandboxJSON is the Sandbox object of API.md.
type sandboxJSON struct {
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Provider  string            `json:"provider"`
	Image     string            `json:"image"`
	MemoryMB  int               `json:"memory_mb"`
	VCPUs     float64           `json:"vcpus"`
	OwnerID   string            `json:"owner_id,omitempty"`
	TenantID  string            `json:"tenant_id,omitempty"`
	CreatedAt string            `json:"created_at"`
	ExpiresAt string            `json:"expires_at"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Network   string            `json:"network,omitempty"`
	// PreviewDomain: port P is served at http://P-{id}.{preview_domain} (preview.go).
	PreviewDomain string `json:"preview_domain,omitempty"`
}

// rfc3339 formats t in UTC with second precision, the form every SDK parses.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func toSandboxJSON(sb *sandbox.Sandbox) sandboxJSON {
	return sandboxJSON{
		ID: sb.ID, State: string(sb.State), Provider: sb.Provider, Image: sb.Image,
		MemoryMB: sb.MemoryMB, VCPUs: sb.VCPUs, OwnerID: sb.OwnerID, TenantID: sb.TenantID,
		CreatedAt: rfc3339(sb.CreatedAt), ExpiresAt: rfc3339(sb.ExpiresAt),
		Metadata: sb.Metadata, Network: sb.Network,
	}
}

// createBody is the body of POST /sandboxes and /sandboxes/admission.
type createBody struct {
	Image    string            `json:"image"`
	Provider string            `json:"provider"`
	MemoryMB int               `json:"memory_mb"`
	VCPUs    float64           `json:"vcpus"`
	TTL      string            `json:"ttl"`
	Template string            `json:"template"`
	OwnerID  string            `json:"owner_id"`
	Metadata map[string]string `json:"metadata"`
	Env      map[string]string `json:"env"`
	Network  string            `json:"network"`
}

// decodeCreate parses a create/admission request. An X-User-ID header
// overrides the body's owner_id.
func (s *server) decodeCreate(w http.ResponseWriter, r *http.Request) (sandbox.CreateRequest, error) {
	var b createBody
	if err := s.decodeJSON(w, r, &b, false); err != nil {
		return sandbox.CreateRequest{}, err
	}
	ttl, err := parseDuration("ttl", b.TTL)
	if err != nil {
		return sandbox.CreateRequest{}, err
	}
	owner, err := requestOwner(r, b.OwnerID)
	if err != nil {
		return sandbox.CreateRequest{}, err
	}
	return sandbox.CreateRequest{
		Image: b.Image, Provider: b.Provider, MemoryMB: b.MemoryMB, VCPUs: b.VCPUs,
		TTL: ttl, Network: b.Network, OwnerID: owner, Metadata: b.Metadata, Env: b.Env,
		Template: b.Template,
	}, nil
}

// requestOwner is the owner a create acts for: the body's owner_id, which an
// X-User-ID header overrides.
func requestOwner(r *http.Request, bodyOwner string) (string, error) {
	if err := validUserID("owner_id", bodyOwner); err != nil {
		return "", err
	}
	if h := strings.TrimSpace(r.Header.Get("X-User-ID")); h != "" {
		if err := validUserID("X-User-ID", h); err != nil {
			return "", err
		}
		return h, nil
	}
	return bodyOwner, nil
}

func (s *server) createSandbox(w http.ResponseWriter, r *http.Request) error {
	req, err := s.decodeCreate(w, r)
	if err != nil {
		return err
	}
	sb, err := s.svc.Create(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.sandboxView(sb))
	return nil
}

// admissionJSON has exactly the keys an older Python SDK accepts.
type admissionJSON struct {
	Allowed              bool   `json:"allowed"`
	Queueable            bool   `json:"queueable"`
	Reason               string `json:"reason,omitempty"`
	ActiveSandboxes      int    `json:"active_sandboxes"`
	MaxSandboxes         int    `json:"max_sandboxes"`
	ActiveOwnerSandboxes *int   `json:"active_owner_sandboxes,omitempty"`
	MaxOwnerSandboxes    *int   `json:"max_owner_sandboxes,omitempty"`
	MaxTTL               string `json:"max_ttl,omitempty"`
}

func (s *server) admission(w http.ResponseWriter, r *http.Request) error {
	req, err := s.decodeCreate(w, r)
	if err != nil {
		return err
	}
	a, err := s.svc.Admission(r.Context(), req)
	if err != nil {
		return err
	}
	out := admissionJSON{
		Allowed: a.Allowed, Queueable: a.Queueable, Reason: a.Reason,
		ActiveSandboxes: a.ActiveSandboxes, MaxSandboxes: a.MaxSandboxes,
	}
	if req.OwnerID != "" {
		out.ActiveOwnerSandboxes, out.MaxOwnerSandboxes = &a.ActiveOwnerSandboxes, &a.MaxOwnerSandboxes
	}
	if a.MaxTTL > 0 {
		out.MaxTTL = a.MaxTTL.String()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) listSandboxes(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := sandbox.ListFilter{OwnerID: q.Get("owner_id"), Cursor: q.Get("cursor")}
	if err := validUserID("owner_id", f.OwnerID); err != nil {
		return err
	}
	if v := q.Get("state"); v != "" {
		st, err := sandbox.ParseState(v)
		if err != nil {
			return err
		}
		f.State = st
	}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return errs.New(errs.Invalid, "label filter must look like key=value, got %q", l)
		}
		if f.Labels == nil {
			f.Labels = map[string]string{}
		}
		f.Labels[k] = v
	}
	limit, err := queryInt(r, "limit", 0)
	if err != nil {
		return err
	}
	f.Limit = limit
	sbs, err := s.svc.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]sandboxJSON, 0, len(sbs))
	for _, sb := range sbs {
		out = append(out, s.sandboxView(sb))
	}
	if f.Limit > 0 && len(sbs) == f.Limit {
		// A full page: the client continues with ?cursor=<this>.
		w.Header().Set("X-Next-Cursor", sbs[len(sbs)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) pruneSandboxes(w http.ResponseWriter, r *http.Request) error {
	n, err := s.svc.Prune(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"pruned": n})
	return nil
}

func (s *server) getSandbox(w http.ResponseWriter, r *http.Request) error {
	sb, err := s.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.sandboxView(sb))
	return nil
}

func (s *server) destroySandbox(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.Destroy(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusJSON{"destroyed"})
	return nil
}

// statusJSON is the {"status": "..."} acknowledgement.
type statusJSON struct {
	Status string `json:"status"`
}

func (s *server) extendSandbox(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		TTL string `json:"ttl"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if err := requireField("ttl", b.TTL); err != nil {
		return err
	}
	ttl, err := parseDuration("ttl", b.TTL)
	if err != nil {
		return err
	}
	if ttl == 0 {
		return errs.New(errs.Invalid, "field \"ttl\" must be positive")
	}
	sb, err := s.svc.Extend(r.Context(), r.PathValue("id"), ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.sandboxView(sb))
	return nil
}

func (s *server) sandboxLogs(w http.ResponseWriter, r *http.Request) error {
	lines, err := queryInt(r, "lines", 100)
	if err != nil {
		return err
	}
	out, err := s.svc.Logs(r.Context(), r.PathValue("id"), lines)
	if err != nil {
		return err
	}
	writeList(w, out)
	return nil
}

// statsJSON is {"supported":false} or the full reading.
type statsJSON struct {
	Supported     bool     `json:"supported"`
	CPUPercent    *float64 `json:"cpu_pct,omitempty"`
	MemBytes      *uint64  `json:"mem_bytes,omitempty"`
	MemLimitBytes *uint64  `json:"mem_limit_bytes,omitempty"`
}

func (s *server) sandboxStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.svc.Stats(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := statsJSON{Supported: st.Supported}
	if st.Supported {
		out.CPUPercent, out.MemBytes, out.MemLimitBytes = &st.CPUPercent, &st.MemBytes, &st.MemLimitBytes
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
