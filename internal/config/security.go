package config

import (
	"slices"
	"strings"
	"time"
)

// validateAuth checks the auth section beyond the keys themselves.
func (c *Config) validateAuth(p *problems) {
	a := c.Auth
	seen := map[string]string{}
	for key, v := range map[string]string{"auth.api_key": a.APIKey, "auth.admin_api_key": a.AdminAPIKey, "auth.viewer_api_key": a.ViewerAPIKey} {
		for _, k := range splitKeys(v) {
			if other, dup := seen[k]; dup && other != key && !(a.APIKey == a.AdminAPIKey && a.APIKey == k) {
				p.add(key, "a key may not also be in %s", other)
			}
			seen[k] = key
		}
	}
	if a.OIDCIssuer != "" || a.OIDCAudience != "" || a.OIDCJWKSURL != "" {
		if a.OIDCIssuer == "" || a.OIDCAudience == "" {
			p.add("auth.oidc_issuer", "oidc_issuer and oidc_audience are both required for OIDC")
		}
		if a.OIDCClockSkew.Std() > 5*time.Minute {
			p.add("auth.oidc_clock_skew", "must be at most 5m")
		}
		if !slices.Contains([]string{"viewer", "operator", "tenant_admin", "admin"}, a.OIDCDefaultRole) {
			p.add("auth.oidc_default_role", "must be viewer, operator, tenant_admin or admin, got %q", a.OIDCDefaultRole)
		}
	}
	if a.RateLimitPerSecond < 0 || a.RateLimitBurst < 0 || a.RateLimitMaxKeys < 0 {
		p.add("auth.rate_limit_per_second", "rate limits must not be negative")
	}
}

// splitKeys mirrors auth.SplitKeys (config does not import auth).
func splitKeys(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// HasCredentials reports whether any key or OIDC issuer is configured.
func (c *Config) HasCredentials() bool {
	a := c.Auth
	return a.APIKey != "" || a.AdminAPIKey != "" || a.ViewerAPIKey != "" || a.OIDCIssuer != ""
}

// ProductionFindings lists settings that are unsafe when the server is
// exposed beyond one machine; the server logs them at start.
func (c *Config) ProductionFindings() []string {
	var out []string
	if c.Auth.AdminFallbackEnabled {
		out = append(out, "auth.admin_fallback_enabled lets every regular key call admin routes; turn it off")
	}
	if c.Auth.AdminAPIKey == "" && c.HasCredentials() && c.Auth.OIDCIssuer == "" {
		out = append(out, "no auth.admin_api_key: admin routes are unreachable (or reachable by every key with the fallback)")
	}
	if slices.Contains(c.Server.CORSAllowedOrigins, "*") {
		out = append(out, "server.cors_allowed_origins contains \"*\": any web page may drive this server")
	}
	if c.Server.Mode == ModeDevelopment {
		out = append(out, "server.mode is development")
	}
	if c.Providers.Mock.Enabled {
		out = append(out, "the mock provider runs sandboxes as host processes")
	}
	for _, v := range []string{c.Auth.APIKey, c.Auth.AdminAPIKey, c.Auth.ViewerAPIKey} {
		for _, k := range splitKeys(v) {
			if len(k) < 16 {
				out = append(out, "an auth key is shorter than 16 characters; generate keys with `openssl rand -hex 32`")
			}
		}
	}
	if c.Auth.RateLimitPerSecond == 0 && c.HasCredentials() {
		out = append(out, "auth.rate_limit_per_second is 0: no rate limit")
	}
	return out
}
