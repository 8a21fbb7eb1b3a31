package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ProviderE2B runs sandboxes on E2B (e2b.dev) through its public API
// (docs/providers.md#e2b-preview). Preview.
const ProviderE2B = "e2b"

// E2BConfig is the e2b provider. The API key is a secret: give it inline
// (api_key) or, better, as an absolute path to a file (api_key_file).
type E2BConfig struct {
	Enabled    bool   `koanf:"enabled" yaml:"enabled" json:"enabled"`
	APIKey     string `koanf:"api_key" yaml:"api_key" json:"api_key" secret:"true"`
	APIKeyFile string `koanf:"api_key_file" yaml:"api_key_file" json:"api_key_file"`
	// APIURL is E2B's control plane; Domain the host suffix of sandbox
	// URLs ({port}-{sandboxID}.{domain}).
	APIURL string `koanf:"api_url" yaml:"api_url" json:"api_url"`
	Domain string `koanf:"domain" yaml:"domain" json:"domain"`
	// Template is the E2B template every sandbox starts from; it fixes
	// the sandbox's filesystem, CPUs and memory (an image or limits asked
	// for at create are recorded, not applied).
	Template string `koanf:"template" yaml:"template" json:"template"`
	// Timeout is how long E2B keeps a sandbox after its last use before
	// killing it (E2B's sandbox timeout; at most 1h on Hobby, 24h on Pro).
	Timeout Duration `koanf:"timeout" yaml:"timeout" json:"timeout"`
}

func defaultE2B() E2BConfig {
	return E2BConfig{APIURL: "https://api.e2b.dev", Domain: "e2b.app", Template: "base", Timeout: Duration(time.Hour)}
}

// ResolvedAPIKey returns api_key, else the first line of api_key_file.
func (e E2BConfig) ResolvedAPIKey() (string, error) {
	if k := strings.TrimSpace(e.APIKey); k != "" {
		return k, nil
	}
	if e.APIKeyFile == "" {
		return "", fmt.Errorf("providers.e2b.api_key: must be set (or api_key_file)")
	}
	b, err := os.ReadFile(e.APIKeyFile)
	if err != nil {
		return "", fmt.Errorf("providers.e2b.api_key_file: %w", err)
	}
	k, _, _ := strings.Cut(string(b), "\n")
	if k = strings.TrimSpace(k); k == "" {
		return "", fmt.Errorf("providers.e2b.api_key_file %s is empty", e.APIKeyFile)
	}
	return k, nil
}

func (c *Config) validateE2B(p *problems) {
	e := c.Providers.E2B
	if !e.Enabled {
		return
	}
	if strings.TrimSpace(e.APIKey) == "" && e.APIKeyFile == "" {
		p.add("providers.e2b.api_key", "must be set (or api_key_file)")
	}
	if e.APIKeyFile != "" && !filepath.IsAbs(e.APIKeyFile) {
		p.add("providers.e2b.api_key_file", "must be an absolute path, got %q", e.APIKeyFile)
	}
	if u, err := url.Parse(e.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.add("providers.e2b.api_url", "must be an http(s) URL, got %q", e.APIURL)
	}
	if e.Domain == "" || strings.ContainsAny(e.Domain, "/:@ ") {
		p.add("providers.e2b.domain", "must be a bare host name such as e2b.app, got %q", e.Domain)
	}
	if strings.TrimSpace(e.Template) == "" {
		p.add("providers.e2b.template", "must not be empty")
	}
	if t := e.Timeout.Std(); t < time.Minute || t > 24*time.Hour {
		p.add("providers.e2b.timeout", "must be from 1m to 24h, got %s", t)
	}
}
