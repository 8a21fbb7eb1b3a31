package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAuthConfig_LoadAndValidate(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "viewer.keys")
	if err := os.WriteFile(keyFile, []byte("viewer-old-0123456789\nviewer-new-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, "auth:\n  oidc_issuer: https://idp.example\n  oidc_audience: stacyvm\n",
		"STACYVM_AUTH_VIEWER_API_KEY_FILE="+keyFile,
		"STACYVM_AUTH_OIDC_ADMIN_GROUPS=ops,root",
		"STACYVM_AUTH_RATE_LIMIT_PER_SECOND=2.5",
		"STACYVM_AUTH_ADMIN_AUDIT_RETENTION=48h",
		"STACYVM_AUTH_ADMIN_FALLBACK_ENABLED=true")
	a := c.Auth
	if a.ViewerAPIKey != "viewer-old-0123456789\nviewer-new-0123456789" || !slices.Equal(a.OIDCAdminGroups, []string{"ops", "root"}) ||
		a.RateLimitPerSecond != 2.5 || a.AdminAuditRetention.Std() != 48*time.Hour || !a.AdminFallbackEnabled || a.OIDCClockSkew.Std() != time.Minute {
		t.Fatalf("auth = %+v", a)
	}
	if r := c.Redacted(); r.Auth.ViewerAPIKey != redactedValue {
		t.Errorf("viewer key not redacted")
	}
	found := strings.Join(c.ProductionFindings(), "\n")
	if !strings.Contains(found, "admin_fallback_enabled") {
		t.Errorf("findings lack the admin fallback: %s", found)
	}
}

func TestAuthConfig_Invalid(t *testing.T) {
	tests := map[string]struct {
		mod  func(c *Config)
		want string
	}{
		"cors * in production":  {func(c *Config) { c.Server.CORSAllowedOrigins = []string{"*"} }, "server.cors_allowed_origins"},
		"bad mode":              {func(c *Config) { c.Server.Mode = "staging" }, "server.mode"},
		"oidc without audience": {func(c *Config) { c.Auth.OIDCIssuer = "https://i" }, "auth.oidc_issuer"},
		"oidc skew over 5m": {func(c *Config) {
			c.Auth.OIDCIssuer, c.Auth.OIDCAudience, c.Auth.OIDCClockSkew = "https://i", "a", Duration(time.Hour)
		}, "auth.oidc_clock_skew"},
		"oidc default role": {func(c *Config) {
			c.Auth.OIDCIssuer, c.Auth.OIDCAudience, c.Auth.OIDCDefaultRole = "https://i", "a", "root"
		}, "auth.oidc_default_role"},
		"key in two roles": {func(c *Config) {
			c.Auth.APIKey, c.Auth.ViewerAPIKey = "a-0123456789abcdef,b-0123456789abcdef", "b-0123456789abcdef"
		}, "may not also be in"},
		"negative rate": {func(c *Config) { c.Auth.RateLimitPerSecond = -1 }, "auth.rate_limit_per_second"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := Default("/h", false)
			c.Database.Path = "/h/db"
			tt.mod(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want a problem about %s", err, tt.want)
			}
		})
	}
	c := Default("/h", false)
	c.Database.Path = "/h/db"
	c.Server.Mode, c.Server.CORSAllowedOrigins = ModeDevelopment, []string{"*"}
	if err := c.Validate(); err != nil {
		t.Errorf("cors * in development: %v", err)
	}
}
