package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestE2B_DefaultsAreValidWhenEnabledWithAKey(t *testing.T) {
	c := Default(t.TempDir(), false)
	if e := c.Providers.E2B; e.Enabled || e.APIURL != "https://api.e2b.dev" || e.Domain != "e2b.app" || e.Template != "base" || e.Timeout.Std() != time.Hour {
		t.Fatalf("e2b defaults = %+v, want disabled, api.e2b.dev, e2b.app, base, 1h", e)
	}
	c.Providers.E2B.Enabled = true
	c.Providers.E2B.APIKey = "e2b_x"
	c.Providers.Default = ProviderE2B
	c.Database.Path = filepath.Join(t.TempDir(), "db")
	if err := c.Validate(); err != nil {
		t.Errorf("Validate = %v, want nil", err)
	}
	if !c.ProviderEnabled(ProviderE2B) {
		t.Error("ProviderEnabled(e2b) = false, want true")
	}
	if r := c.Redacted(); r.Providers.E2B.APIKey != redactedValue {
		t.Errorf("Redacted api_key = %q, want %q", r.Providers.E2B.APIKey, redactedValue)
	}
}

func TestE2B_ValidateNamesEveryBadKey(t *testing.T) {
	c := Default(t.TempDir(), false)
	c.Providers.E2B = E2BConfig{Enabled: true, APIKeyFile: "relative/key", APIURL: "ftp://x", Domain: "https://e2b.app", Timeout: Duration(time.Second)}
	err := c.Validate()
	for _, key := range []string{"providers.e2b.api_key_file", "providers.e2b.api_url", "providers.e2b.domain", "providers.e2b.template", "providers.e2b.timeout"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate = %v, want a problem for %s", err, key)
		}
	}
	c.Providers.E2B = defaultE2B()
	c.Providers.E2B.Enabled = true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "providers.e2b.api_key") {
		t.Errorf("Validate without a key = %v, want a problem for providers.e2b.api_key", err)
	}
}

func TestE2B_ResolvedAPIKey(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "key")
	os.WriteFile(f, []byte(" e2b_file \n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, tc := range []struct {
		cfg     E2BConfig
		want    string
		wantErr bool
	}{
		{E2BConfig{APIKey: "e2b_inline", APIKeyFile: f}, "e2b_inline", false},
		{E2BConfig{APIKeyFile: f}, "e2b_file", false},
		{E2BConfig{APIKeyFile: empty}, "", true},
		{E2BConfig{APIKeyFile: filepath.Join(dir, "missing")}, "", true},
		{E2BConfig{}, "", true},
	} {
		got, err := tc.cfg.ResolvedAPIKey()
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ResolvedAPIKey(%+v) = %q, %v; want %q, error %v", tc.cfg, got, err, tc.want, tc.wantErr)
		}
	}
}
