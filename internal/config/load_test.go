package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// testLoad loads with a private home and work dir; yaml, when non-empty, is
// written to <work>/stacyvm.yaml.
func testLoad(t *testing.T, yaml string, env ...string) (*Config, error) {
	t.Helper()
	home, work := t.TempDir(), t.TempDir()
	if yaml != "" {
		if err := os.WriteFile(filepath.Join(work, "stacyvm.yaml"), []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	root := false
	return Load(LoadOptions{Env: env, Home: home, WorkDir: work, Root: &root})
}

func mustLoad(t *testing.T, yaml string, env ...string) *Config {
	t.Helper()
	cfg, err := testLoad(t, yaml, env...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestLoad_DefaultsWithoutFileOrEnv(t *testing.T) {
	home := t.TempDir()
	root := false
	cfg, err := Load(LoadOptions{Home: home, WorkDir: t.TempDir(), Root: &root})
	if err != nil {
		t.Fatal(err)
	}
	want := Default(home, false)
	want.Database.Path = filepath.Join(home, ".stacyvm", "data", "stacyvm.db")
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults must validate: %v", err)
	}
	if cfg.Server.Addr() != "127.0.0.1:7423" || cfg.Defaults.TTL.Std() != 30*time.Minute ||
		cfg.Server.MaxUploadBytes != 512<<20 || cfg.Server.MaxBodyBytes != 10<<20 {
		t.Errorf("unexpected defaults: %+v", cfg.Server)
	}
}

func TestLoad_RootUsesSystemDataDir(t *testing.T) {
	root := true
	cfg, err := Load(LoadOptions{Home: t.TempDir(), WorkDir: t.TempDir(), Root: &root})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/stacyvm" || cfg.Database.Path != "/var/lib/stacyvm/stacyvm.db" {
		t.Errorf("got data_dir %q db %q", cfg.DataDir, cfg.Database.Path)
	}
}

func TestLoad_File(t *testing.T) {
	cfg := mustLoad(t, `
server:
  host: 0.0.0.0
  port: 8080
  cors_allowed_origins: ["https://a.example", "http://b.example:3000"]
data_dir: ./data
database:
  path: db/x.db
providers:
  default: mock
  mock: {enabled: true}
  docker:
    network_mode: none
    cpus: 2
defaults:
  max_ttl: 2h
logging: {format: json}
`)
	if cfg.Server.Host != "0.0.0.0" || cfg.Server.Port != 8080 {
		t.Errorf("server = %+v", cfg.Server)
	}
	if diff := cmp.Diff([]string{"https://a.example", "http://b.example:3000"}, cfg.Server.CORSAllowedOrigins); diff != "" {
		t.Errorf("cors (-want +got):\n%s", diff)
	}
	dir := filepath.Dir(cfg.Source)
	if cfg.DataDir != filepath.Join(dir, "data") || cfg.Database.Path != filepath.Join(dir, "db", "x.db") {
		t.Errorf("relative paths must be relative to the file: data_dir %q db %q", cfg.DataDir, cfg.Database.Path)
	}
	if cfg.Providers.Default != "mock" || !cfg.Providers.Mock.Enabled || cfg.Providers.Docker.NetworkMode != "none" ||
		cfg.Providers.Docker.CPUs != 2 || cfg.Defaults.MaxTTL.Std() != 2*time.Hour || cfg.Logging.Format != "json" {
		t.Errorf("cfg = %+v", cfg)
	}
	if cfg.Providers.Docker.Runtime != "runc" || cfg.Defaults.TTL.Std() != 30*time.Minute {
		t.Errorf("unset keys must keep their defaults: %+v", cfg.Providers.Docker)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestLoad_EnvOverrides(t *testing.T) {
	tests := []struct {
		env   string
		check func(*Config) bool
	}{
		{"STACYVM_SERVER_HOST=0.0.0.0", func(c *Config) bool { return c.Server.Host == "0.0.0.0" }},
		{"STACYVM_SERVER_PORT=9000", func(c *Config) bool { return c.Server.Port == 9000 }},
		{"STACYVM_DATABASE_PATH=/tmp/s.db", func(c *Config) bool { return c.Database.Path == "/tmp/s.db" }},
		{"STACYVM_PROVIDERS_DEFAULT=mock", func(c *Config) bool { return c.Providers.Default == "mock" }},
		{"STACYVM_AUTH_API_KEY=k1", func(c *Config) bool { return c.Auth.APIKey == "k1" }},
		{"STACYVM_PROVIDERS_DOCKER_NETWORK_MODE=none", func(c *Config) bool { return c.Providers.Docker.NetworkMode == "none" }},
		{"STACYVM_PROVIDERS_DOCKER_READ_ONLY_ROOTFS=true", func(c *Config) bool { return c.Providers.Docker.ReadOnlyRootfs }},
		{"STACYVM_PROVIDERS_DOCKER_CPUS=1.5", func(c *Config) bool { return c.Providers.Docker.CPUs == 1.5 }},
		{"STACYVM_DEFAULTS_MAX_TTL=48h", func(c *Config) bool { return c.Defaults.MaxTTL.Std() == 48*time.Hour }},
		{"STACYVM_SERVER_MAX_BODY_BYTES=1024", func(c *Config) bool { return c.Server.MaxBodyBytes == 1024 }},
		{"STACYVM_SERVER_MAX_UPLOAD_BYTES=-1", func(c *Config) bool {
			return c.Server.MaxUploadBytes == NoUploadLimit && c.Validate() == nil
		}},
		{"STACYVM_SERVER_CORS_ALLOWED_ORIGINS=https://a, https://b,", func(c *Config) bool {
			return cmp.Equal(c.Server.CORSAllowedOrigins, []string{"https://a", "https://b"})
		}},
		{"STACYVM_DATA_DIR=/srv/svm", func(c *Config) bool {
			return c.DataDir == "/srv/svm" && c.Database.Path == "/srv/svm/stacyvm.db"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			cfg := mustLoad(t, "", tt.env)
			if !tt.check(cfg) {
				t.Errorf("%s not applied: %+v", tt.env, cfg)
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("unexpected warnings %q", cfg.Warnings)
			}
		})
	}
}

func TestLoad_EnvRelativePathIsRelativeToWorkDir(t *testing.T) {
	home, work := t.TempDir(), t.TempDir()
	root := false
	cfg, err := Load(LoadOptions{Env: []string{"STACYVM_DATABASE_PATH=rel.db"}, Home: home, WorkDir: work, Root: &root})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(work, "rel.db"); cfg.Database.Path != want {
		t.Errorf("database.path = %q, want %q", cfg.Database.Path, want)
	}
}

func TestLoad_TildeExpands(t *testing.T) {
	cfg := mustLoad(t, "data_dir: ~/svm\n")
	if !strings.HasSuffix(cfg.DataDir, "/svm") || strings.Contains(cfg.DataDir, "~") {
		t.Errorf("data_dir = %q", cfg.DataDir)
	}
}

func TestLoad_Precedence(t *testing.T) {
	file := "server:\n  port: 8000\n  host: 10.0.0.1\n"
	cfg := mustLoad(t, file, "STACYVM_SERVER_PORT=9000")
	if cfg.Server.Port != 9000 {
		t.Errorf("env must beat file: port %d", cfg.Server.Port)
	}
	if cfg.Server.Host != "10.0.0.1" {
		t.Errorf("file must beat defaults: host %q", cfg.Server.Host)
	}
	if cfg.Server.PreviewDomain != "localhost" {
		t.Errorf("defaults must remain: %q", cfg.Server.PreviewDomain)
	}
}

func TestLoad_UnknownEnvIsWarning(t *testing.T) {
	cfg := mustLoad(t, "", "STACYVM_SERVER=http://x", "STACYVM_SERVR_PORT=1", "OTHER=1")
	if diff := cmp.Diff([]string{"unknown environment variable STACYVM_SERVR_PORT ignored"}, cfg.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLoad_ExplicitFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("server: {port: 1234}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{File: p, Home: t.TempDir(), WorkDir: t.TempDir()})
	if err != nil || cfg.Server.Port != 1234 || cfg.Source != p {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
	if _, err := Load(LoadOptions{File: filepath.Join(dir, "missing.yaml")}); !errs.Is(err, errs.Invalid) {
		t.Errorf("missing explicit file: err = %v, want Invalid", err)
	}
}

func TestLoad_HomeConfigFound(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".stacyvm"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".stacyvm", "config.yaml"), []byte("server: {port: 4321}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{Home: home, WorkDir: t.TempDir()})
	if err != nil || cfg.Server.Port != 4321 {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
}

func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string
	}{
		{"unknown top key", "sever:\n  port: 1\n", nil, []string{"sever (line 1): unknown key"}},
		{"unknown nested key", "server:\n  host: a\n  prot: 1\n", nil, []string{"server.prot (line 3): unknown key"}},
		{"wrong type int", "server:\n  port: abc\n", nil, []string{"server.port (line 2): expected an integer", `"abc"`}},
		{"wrong type bool", "providers:\n  docker:\n    enabled: 3\n", nil, []string{"providers.docker.enabled (line 3): expected true or false"}},
		{"bad duration", "defaults:\n  ttl: 30 minutes\n", nil, []string{"defaults.ttl (line 2): invalid duration"}},
		{"duration as number", "defaults:\n  ttl: 30\n", nil, []string{"defaults.ttl (line 2): expected a duration string"}},
		{"mapping expected", "server: 1\n", nil, []string{"server (line 1): expected a mapping"}},
		{"list expected", "server:\n  cors_allowed_origins: x\n", nil, []string{"server.cors_allowed_origins (line 2): expected a list"}},
		{"bad yaml", "server: [\n", nil, []string{"invalid YAML"}},
		{"env bad int", "", []string{"STACYVM_SERVER_PORT=abc"}, []string{`STACYVM_SERVER_PORT: invalid integer "abc"`}},
		{"env bad duration", "", []string{"STACYVM_DEFAULTS_TTL=1x"}, []string{`STACYVM_DEFAULTS_TTL: invalid duration "1x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testLoad(t, tt.yaml, tt.env...)
			if err == nil {
				t.Fatal("want error, got nil")
			}
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("class = %v, want Invalid", errs.ClassOf(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoad_SecretFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     []string
		wantKey string
		wantErr string
	}{
		{"file read and trimmed", []string{"STACYVM_AUTH_API_KEY_FILE=" + keyFile}, "s3cret", ""},
		{"admin file", []string{"STACYVM_AUTH_ADMIN_API_KEY_FILE=" + keyFile}, "", ""},
		{"both set", []string{"STACYVM_AUTH_API_KEY=x", "STACYVM_AUTH_API_KEY_FILE=" + keyFile}, "", "auth.api_key: set either the value or the _file variant, not both"},
		{"missing file", []string{"STACYVM_AUTH_API_KEY_FILE=" + filepath.Join(dir, "nope")}, "", "auth.api_key: read secret file"},
		{"empty file", []string{"STACYVM_AUTH_ADMIN_API_KEY_FILE=" + empty}, "", "auth.admin_api_key: secret file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := testLoad(t, "", tt.env...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Auth.APIKey != tt.wantKey {
				t.Errorf("api_key = %q, want %q", cfg.Auth.APIKey, tt.wantKey)
			}
			if tt.name == "admin file" && cfg.Auth.AdminAPIKey != "s3cret" {
				t.Errorf("admin_api_key = %q", cfg.Auth.AdminAPIKey)
			}
		})
	}
}

func TestLoad_SecretFileRelativeToConfigFile(t *testing.T) {
	confDir := t.TempDir()
	p := filepath.Join(confDir, "c.yaml")
	if err := os.WriteFile(p, []byte("auth:\n  api_key_file: key.txt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "key.txt"), []byte("k-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{File: p, Home: t.TempDir(), WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.APIKey != "k-from-file" || cfg.Auth.APIKeyFile != filepath.Join(confDir, "key.txt") {
		t.Errorf("auth = %+v", cfg.Auth)
	}
}

func TestLoad_WorldReadableFileWithKeyWarns(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("auth: {api_key: abc}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{File: p, Home: t.TempDir(), WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "world-readable") {
		t.Errorf("warnings = %q", cfg.Warnings)
	}
}
