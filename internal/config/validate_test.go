package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"valid defaults", func(*Config) {}, nil},
		{"port range", func(c *Config) { c.Server.Port = 70000 }, []string{"server.port: must be between 1 and 65535, got 70000"}},
		{"upload limit zero", func(c *Config) { c.Server.MaxUploadBytes = 0 }, []string{"server.max_upload_bytes: must be positive, or -1 for no limit, got 0"}},
		{"upload limit below -1", func(c *Config) { c.Server.MaxUploadBytes = -2 }, []string{"server.max_upload_bytes: must be positive, or -1 for no limit, got -2"}},
		{"no upload limit", func(c *Config) { c.Server.MaxUploadBytes = NoUploadLimit }, nil},
		{"empty host", func(c *Config) { c.Server.Host = "" }, []string{"server.host: must not be empty"}},
		{"negative duration", func(c *Config) { c.Defaults.DestroyedRetention = Duration(-time.Second) }, []string{"defaults.destroyed_retention: must not be negative, got -1s"}},
		{"exec timeout over max", func(c *Config) { c.Defaults.DefaultExecTimeout = Duration(2 * time.Hour) }, []string{"defaults.default_exec_timeout: 2h0m0s exceeds defaults.max_exec_timeout 1h0m0s"}},
		{"ttl over max", func(c *Config) { c.Defaults.TTL = Duration(48 * time.Hour) }, []string{"defaults.ttl: 48h0m0s exceeds defaults.max_ttl 24h0m0s"}},
		{"network mode", func(c *Config) { c.Providers.Docker.NetworkMode = "host" }, []string{`providers.docker.network_mode: must be none or bridge, got "host"`}},
		{"pull", func(c *Config) { c.Providers.Docker.Pull = "always" }, []string{`providers.docker.pull: must be missing or never, got "always"`}},
		{"default provider disabled", func(c *Config) { c.Providers.Default = "mock" }, []string{`providers.default: "mock" is not enabled`}},
		{"unknown provider", func(c *Config) { c.Providers.Default = "firecracker" }, []string{`providers.default: unknown provider "firecracker"`}},
		{"logging", func(c *Config) { c.Logging = LoggingConfig{Level: "loud", Format: "xml"} }, []string{
			`logging.level: must be debug, info, warn or error, got "loud"`, `logging.format: must be text or json, got "xml"`}},
		{"postgres without dsn", func(c *Config) { c.Database.Driver = "postgres" }, []string{"database.dsn: must be set for the postgres driver (or database.dsn_file)"}},
		{"other driver", func(c *Config) { c.Database.Driver = "mysql" }, []string{`database.driver: must be "sqlite" or "postgres", got "mysql"`}},
		{"cors origin with path", func(c *Config) { c.Server.CORSAllowedOrigins = []string{"https://a.example/x"} }, []string{"server.cors_allowed_origins:"}},
		{"same keys", func(c *Config) { c.Auth.APIKey, c.Auth.AdminAPIKey = "k", "k" }, []string{"auth.admin_api_key: must differ from auth.api_key"}},
		{"all problems at once", func(c *Config) {
			c.Server.Port = 0
			c.Server.Host = ""
			c.Logging.Format = "xml"
		}, []string{"server.port:", "server.host:", "logging.format:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default("/home/u", false)
			c.Database.Path = "/home/u/db"
			tt.mutate(c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got nil", tt.want)
			}
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("class = %v, want Invalid", errs.ClassOf(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain %q", err, w)
				}
			}
			if lines := strings.Count(err.Error(), "\n"); lines != len(tt.want) {
				t.Errorf("want %d problems, got %d:\n%s", len(tt.want), lines, err)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	c := Default("/h", false)
	c.Auth.APIKey, c.Auth.AdminAPIKey = "secret-1", "secret-2"
	c.Database.DSN = "postgres://u:pw@h/db"
	c.Server.CORSAllowedOrigins = []string{"https://a"}
	r := c.Redacted()
	if r.Auth.APIKey != "[redacted]" || r.Auth.AdminAPIKey != "[redacted]" || r.Database.DSN != "[redacted]" {
		t.Errorf("not redacted: %+v %+v", r.Auth, r.Database)
	}
	if c.Auth.APIKey != "secret-1" {
		t.Error("Redacted modified the original")
	}
	r.Server.CORSAllowedOrigins[0] = "x"
	if c.Server.CORSAllowedOrigins[0] != "https://a" {
		t.Error("Redacted shares slices with the original")
	}
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "secret") || !strings.Contains(string(b), `"ttl":"30m0s"`) {
		t.Errorf("json = %s", b)
	}
	if e := Default("/h", false).Redacted(); e.Auth.APIKey != "" {
		t.Errorf("unset secret must stay empty, got %q", e.Auth.APIKey)
	}
}

func TestDuration_Text(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Std() != 90*time.Minute {
		t.Fatalf("d = %v err %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "1h30m0s" {
		t.Errorf("MarshalText = %s", b)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error("want error for bad duration")
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("providers.docker.network_mode"); got != "STACYVM_PROVIDERS_DOCKER_NETWORK_MODE" {
		t.Errorf("got %s", got)
	}
	ks := knownKeys()
	for _, k := range []string{"server.host", "data_dir", "defaults.max_ttl", "auth.admin_api_key_file", "providers.mock.enabled"} {
		if _, ok := ks.types[k]; !ok {
			t.Errorf("key %s missing from known keys", k)
		}
	}
}

func TestWarmPool_ParseAndValidate(t *testing.T) {
	c := Default("/root", true)
	c.Database.Path = "/root/x.db"
	c.WarmPool = WarmPoolConfig{Size: 2, Images: []string{"stacyvm/busybox", "stacyvm/python=5", "x=0"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid pool config rejected: %v", err)
	}
	got := c.WarmPool.Pools()
	if len(got) != 2 || got["stacyvm/busybox"] != 2 || got["stacyvm/python"] != 5 {
		t.Errorf("Pools() = %v, want busybox 2 and python 5", got)
	}
	for _, bad := range []WarmPoolConfig{{Size: -1}, {Size: 65}, {Size: 1, Images: []string{"img=lots"}}, {Size: 1, Images: []string{"=3"}}} {
		c.WarmPool = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "warm_pool.") {
			t.Errorf("%+v: got %v, want a warm_pool error", bad, err)
		}
	}
}
