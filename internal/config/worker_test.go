package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate_CustomProvider(t *testing.T) {
	valid := func(c *Config) {
		c.Providers.Custom.Enabled = true
		c.Providers.Custom.URL = "http://127.0.0.1:7424"
		c.Providers.Custom.Token = "t"
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"valid", valid, ""},
		{"as the default", func(c *Config) { valid(c); c.Providers.Default = ProviderCustom }, ""},
		{"default but disabled", func(c *Config) { c.Providers.Default = ProviderCustom }, `providers.default: "custom" is not enabled`},
		{"no url", func(c *Config) { valid(c); c.Providers.Custom.URL = "" }, "providers.custom.url:"},
		{"not http", func(c *Config) { valid(c); c.Providers.Custom.URL = "tcp://host:1" }, "providers.custom.url:"},
		{"no token", func(c *Config) { valid(c); c.Providers.Custom.Token = " " }, "providers.custom.token:"},
		{"tls files on http", func(c *Config) { valid(c); c.Providers.Custom.CAFile = "/ca.pem" }, "must be https://"},
		{"cert without key", func(c *Config) {
			valid(c)
			c.Providers.Custom.URL = "https://w:1"
			c.Providers.Custom.CertFile = "/c.pem"
		}, "providers.custom.cert_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default("/home/u", false)
			c.Database.Path = "/tmp/x.db"
			tc.mutate(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want a problem containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateWorker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"valid", func(c *Config) {}, ""},
		{"no token", func(c *Config) { c.Worker.Token = "" }, "worker.token:"},
		{"custom is not local", func(c *Config) { c.Worker.Provider = ProviderCustom }, "worker.provider: a worker exposes a local provider"},
		{"unknown provider", func(c *Config) { c.Worker.Provider = "e2b" }, `worker.provider: unknown provider "e2b"`},
		{"port", func(c *Config) { c.Worker.Port = 0 }, "worker.port:"},
		{"cert without key", func(c *Config) { c.Worker.TLSCertFile = "/c.pem" }, "worker.tls_cert_file:"},
		{"client CA without TLS", func(c *Config) { c.Worker.ClientCAFile = "/ca.pem" }, "worker.client_ca_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default("/home/u", false)
			c.Worker.Token = "t"
			tc.mutate(c)
			err := c.ValidateWorker()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("ValidateWorker() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("ValidateWorker() = %v, want a problem containing %q", err, tc.want)
			}
		})
	}
}

func TestLoad_WorkerAndCustomTokensFromFiles(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustLoad(t, "", "STACYVM_WORKER_TOKEN_FILE="+tok, "STACYVM_PROVIDERS_CUSTOM_TOKEN_FILE="+tok,
		"STACYVM_PROVIDERS_CUSTOM_URL=http://w:1", "STACYVM_WORKER_PORT=9000")
	if cfg.Worker.Token != "s3cret" || cfg.Providers.Custom.Token != "s3cret" || cfg.Worker.Port != 9000 {
		t.Errorf("tokens = %q, %q, port %d; want both read from the file, port 9000", cfg.Worker.Token, cfg.Providers.Custom.Token, cfg.Worker.Port)
	}
	if r := cfg.Redacted(); r.Worker.Token != redactedValue || r.Providers.Custom.Token != redactedValue {
		t.Errorf("Redacted() keeps worker tokens: %q, %q", r.Worker.Token, r.Providers.Custom.Token)
	}
	if _, err := testLoad(t, "", "STACYVM_WORKER_TOKEN=a", "STACYVM_WORKER_TOKEN_FILE="+tok); err == nil {
		t.Errorf("Load with both worker.token and worker.token_file succeeded, want an error")
	}
}
