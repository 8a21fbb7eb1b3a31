package api

import (
	"context"
	"net/http"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// TemplateService is the part of Service behind /templates and /quotas.
type TemplateService interface {
	CreateTemplate(ctx context.Context, t *sandbox.Template) error
	GetTemplate(ctx context.Context, name string) (*sandbox.Template, error)
	ListTemplates(ctx context.Context) ([]*sandbox.Template, error)
	ReplaceTemplate(ctx context.Context, name string, repl *sandbox.Template) (*sandbox.Template, error)
	DeleteTemplate(ctx context.Context, name string) error

	ListQuotas(ctx context.Context) ([]*sandbox.Quota, error)
	GetQuota(ctx context.Context, owner string) (*sandbox.Quota, error)
	PutQuota(ctx context.Context, q *sandbox.Quota) error
	DeleteQuota(ctx context.Context, owner string) error
	SummarizeQuotas(ctx context.Context) (sandbox.QuotaSummary, error)
	OwnerUsage(ctx context.Context, owner string) (sandbox.QuotaUsage, error)
}

type templateSecretJSON struct {
	Name     string `json:"name"`
	InjectAt string `json:"inject_at"`
}

// templateJSON is API.md's Template; provider and network are ours.
type templateJSON struct {
	Name         string               `json:"name"`
	Version      int                  `json:"version"`
	Image        string               `json:"image"`
	Description  string               `json:"description,omitempty"`
	Setup        []string             `json:"setup,omitempty"`
	AllowedHosts []string             `json:"allowed_hosts,omitempty"`
	MemoryMB     int                  `json:"memory_mb"`
	CPUCores     float64              `json:"cpu_cores"`
	TTLSeconds   int                  `json:"ttl_seconds"`
	Env          map[string]string    `json:"env,omitempty"`
	Secrets      []templateSecretJSON `json:"secrets,omitempty"`
	PoolSize     int                  `json:"pool_size"`
	Provider     string               `json:"provider,omitempty"`
	Network      string               `json:"network,omitempty"`
	CreatedAt    string               `json:"created_at"`
	UpdatedAt    string               `json:"updated_at"`
}

func toTemplateJSON(t *sandbox.Template) templateJSON {
	out := templateJSON{
		Name: t.Name, Version: t.Version, Image: t.Image, Description: t.Description,
		Setup: t.Setup, AllowedHosts: t.AllowedHosts, MemoryMB: t.MemoryMB, CPUCores: t.CPUCores,
		TTLSeconds: t.TTLSeconds, Env: t.Env, PoolSize: t.PoolSize, Provider: t.Provider,
		Network: t.Network, CreatedAt: rfc3339(t.CreatedAt), UpdatedAt: rfc3339(t.UpdatedAt),
	}
	for _, s := range t.Secrets {
		out.Secrets = append(out.Secrets, templateSecretJSON(s))
	}
	return out
}

// templateBody is the body of POST /templates and PUT /templates/{name}.
type templateBody struct {
	Name         string               `json:"name"`
	Image        string               `json:"image"`
	Description  string               `json:"description"`
	Setup        []string             `json:"setup"`
	AllowedHosts []string             `json:"allowed_hosts"`
	MemoryMB     int                  `json:"memory_mb"`
	CPUCores     float64              `json:"cpu_cores"`
	TTLSeconds   int                  `json:"ttl_seconds"`
	Env          map[string]string    `json:"env"`
	Secrets      []templateSecretJSON `json:"secrets"`
	PoolSize     int                  `json:"pool_size"`
	Provider     string               `json:"provider"`
	Network      string               `json:"network"`
}

func (b templateBody) template() *sandbox.Template {
	t := &sandbox.Template{
		Name: b.Name, Image: b.Image, Description: b.Description, Setup: b.Setup,
		AllowedHosts: b.AllowedHosts, MemoryMB: b.MemoryMB, CPUCores: b.CPUCores,
		TTLSeconds: b.TTLSeconds, Env: b.Env, PoolSize: b.PoolSize, Provider: b.Provider,
		Network: b.Network,
	}
	for _, s := range b.Secrets {
		t.Secrets = append(t.Secrets, sandbox.TemplateSecret(s))
	}
	return t
}

func (s *server) createTemplate(w http.ResponseWriter, r *http.Request) error {
	var b templateBody
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	t := b.template()
	if err := s.svc.CreateTemplate(r.Context(), t); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toTemplateJSON(t))
	return nil
}

func (s *server) listTemplates(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.svc.ListTemplates(r.Context())
	if err != nil {
		return err
	}
	out := make([]templateJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, toTemplateJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getTemplate(w http.ResponseWriter, r *http.Request) error {
	t, err := s.svc.GetTemplate(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toTemplateJSON(t))
	return nil
}

func (s *server) replaceTemplate(w http.ResponseWriter, r *http.Request) error {
	var b templateBody
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	name := r.PathValue("name")
	if b.Name != "" && b.Name != name {
		return errs.New(errs.Invalid, "name %q in the body differs from %q in the path; templates cannot be renamed", b.Name, name)
	}
	t, err := s.svc.ReplaceTemplate(r.Context(), name, b.template())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toTemplateJSON(t))
	return nil
}

func (s *server) deleteTemplate(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteTemplate(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// spawnTemplateBody is the body of POST /templates/{name}/spawn (API.md
// gives provider and ttl; the rest are ours, as on POST /sandboxes).
type spawnTemplateBody struct {
	Provider string            `json:"provider"`
	TTL      string            `json:"ttl"`
	OwnerID  string            `json:"owner_id"`
	Metadata map[string]string `json:"metadata"`
	Env      map[string]string `json:"env"`
}

func (s *server) spawnTemplate(w http.ResponseWriter, r *http.Request) error {
	var b spawnTemplateBody
	if err := s.decodeJSON(w, r, &b, false); err != nil {
		return err
	}
	ttl, err := parseDuration("ttl", b.TTL)
	if err != nil {
		return err
	}
	owner, err := requestOwner(r, b.OwnerID)
	if err != nil {
		return err
	}
	sb, err := s.svc.Create(r.Context(), sandbox.CreateRequest{
		Template: r.PathValue("name"), Provider: b.Provider, TTL: ttl, OwnerID: owner,
		Metadata: b.Metadata, Env: b.Env,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.sandboxView(sb))
	return nil
}

// durationString renders a limit for JSON: "" (omitted) when unlimited.
func durationString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}
