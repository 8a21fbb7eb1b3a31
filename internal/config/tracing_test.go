package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestValidate_Tracing(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*TracingConfig)
		want   string // "" = valid
	}{
		{"defaults (disabled)", func(*TracingConfig) {}, ""},
		{"enabled with defaults", func(c *TracingConfig) { c.Enabled = true }, ""},
		{"https endpoint with headers", func(c *TracingConfig) {
			c.Enabled, c.Endpoint, c.Headers = true, "https://otel.example:4318/v1/traces", "authorization=Bearer%20t,x-tenant=a"
		}, ""},
		{"ratio zero", func(c *TracingConfig) { c.Enabled, c.SampleRatio = true, 0 }, ""},
		{"not a URL", func(c *TracingConfig) { c.Enabled, c.Endpoint = true, "otel-collector:4318" }, "tracing.endpoint: "},
		{"grpc scheme", func(c *TracingConfig) { c.Enabled, c.Endpoint = true, "grpc://otel:4317" }, "tracing.endpoint: "},
		{"empty while enabled", func(c *TracingConfig) { c.Enabled, c.Endpoint = true, "" }, "tracing.endpoint: "},
		{"credentials in URL", func(c *TracingConfig) { c.Endpoint = "http://u:p@otel:4318/v1/traces" }, "tracing.endpoint: must not carry credentials"},
		{"bad endpoint while disabled", func(c *TracingConfig) { c.Endpoint = "::nope" }, "tracing.endpoint: "},
		{"ratio above 1", func(c *TracingConfig) { c.SampleRatio = 1.5 }, "tracing.sample_ratio: must be from 0 to 1, got 1.5"},
		{"ratio negative", func(c *TracingConfig) { c.Enabled, c.SampleRatio = true, -0.1 }, "tracing.sample_ratio: must be from 0 to 1, got -0.1"},
		{"empty service name", func(c *TracingConfig) { c.Enabled, c.ServiceName = true, " " }, "tracing.service_name: must not be empty"},
		{"zero timeout", func(c *TracingConfig) { c.Enabled, c.Timeout = true, 0 }, "tracing.timeout: must be positive"},
		{"header without value", func(c *TracingConfig) { c.Headers = "authorization" }, "tracing.headers: entry 1 is not name=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default("/home/u", false)
			c.Database.Path = "/home/u/db"
			tt.mutate(&c.Tracing)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an Invalid error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidate_TracingHeaderErrorNeverQuotesTheValue(t *testing.T) {
	c := Default("/home/u", false)
	c.Database.Path = "/home/u/db"
	c.Tracing.Headers = "authorization=Bearer%zzsecret-token"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "tracing.headers: entry 1 (authorization): invalid value") {
		t.Fatalf("got %v, want the entry named", err)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("the error quotes the secret: %v", err)
	}
}

func TestLoad_TracingFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stacyvm.yaml")
	if err := os.WriteFile(p, []byte("tracing:\n  enabled: true\n  endpoint: http://collector:4318/v1/traces\n  sample_ratio: 0.25\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(LoadOptions{File: p, Home: dir, WorkDir: dir, Env: []string{
		"STACYVM_TRACING_SERVICE_NAME=stacyvm-eu", "STACYVM_TRACING_HEADERS=authorization=Bearer%20tok",
	}})
	if err != nil {
		t.Fatal(err)
	}
	tc := c.Tracing
	if !tc.Enabled || tc.Endpoint != "http://collector:4318/v1/traces" || tc.SampleRatio != 0.25 || tc.ServiceName != "stacyvm-eu" {
		t.Errorf("tracing = %+v", tc)
	}
	if h, err := tc.HeaderMap(); err != nil || h["authorization"] != "Bearer tok" {
		t.Errorf("HeaderMap = %v, %v; want authorization: Bearer tok", h, err)
	}
	if r := c.Redacted(); r.Tracing.Headers != redactedValue {
		t.Errorf("Redacted tracing.headers = %q, want %q", r.Tracing.Headers, redactedValue)
	}

	c, err = Load(LoadOptions{Home: dir, WorkDir: t.TempDir(), Env: []string{"STACYVM_TRACING_SAMPLE_RATIO=2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "tracing.sample_ratio: must be from 0 to 1, got 2") {
		t.Errorf("Validate = %v, want tracing.sample_ratio named", err)
	}
}
