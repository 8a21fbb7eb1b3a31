package store

import (
	"encoding/json"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// templateBody is the JSON document every store keeps in templates.body:
// one column for the whole recipe, so new recipe fields need no migration,
// and the same document in SQLite and Postgres, so data moves between them
// as is.
type templateBody struct {
	Image        string            `json:"image"`
	Description  string            `json:"description,omitempty"`
	Setup        []string          `json:"setup,omitempty"`
	AllowedHosts []string          `json:"allowed_hosts,omitempty"`
	MemoryMB     int               `json:"memory_mb,omitempty"`
	CPUCores     float64           `json:"cpu_cores,omitempty"`
	TTLSeconds   int               `json:"ttl_seconds,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Secrets      []TemplateSecret  `json:"secrets,omitempty"`
	PoolSize     int               `json:"pool_size,omitempty"`
	Provider     string            `json:"provider,omitempty"`
	Network      string            `json:"network,omitempty"`
}

// EncodeTemplateBody returns the recipe of t as the templates.body document.
func EncodeTemplateBody(t *Template) (string, error) {
	b, err := json.Marshal(templateBody{
		Image: t.Image, Description: t.Description, Setup: t.Setup, AllowedHosts: t.AllowedHosts,
		MemoryMB: t.MemoryMB, CPUCores: t.CPUCores, TTLSeconds: t.TTLSeconds, Env: t.Env,
		Secrets: t.Secrets, PoolSize: t.PoolSize, Provider: t.Provider, Network: t.Network,
	})
	if err != nil {
		return "", errs.Wrap(errs.Invalid, err, "template %s cannot be encoded", t.Name)
	}
	return string(b), nil
}

// DecodeTemplateBody fills the recipe fields of t from a templates.body
// document (Env is never nil afterwards).
func DecodeTemplateBody(body []byte, t *Template) error {
	var b templateBody
	if err := json.Unmarshal(body, &b); err != nil {
		return errs.Wrap(errs.Internal, err, "template %s: corrupt body", t.Name)
	}
	t.Image, t.Description, t.Setup, t.AllowedHosts = b.Image, b.Description, b.Setup, b.AllowedHosts
	t.MemoryMB, t.CPUCores, t.TTLSeconds, t.Env = b.MemoryMB, b.CPUCores, b.TTLSeconds, b.Env
	t.Secrets, t.PoolSize, t.Provider, t.Network = b.Secrets, b.PoolSize, b.Provider, b.Network
	if t.Env == nil {
		t.Env = map[string]string{}
	}
	return nil
}
