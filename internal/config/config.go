// Package config is StacyVM's typed configuration: built-in defaults, then a
// YAML file, then STACYVM_* environment overrides, then validation. It is the
// only package that reads the environment; everything else receives a
// *Config (or a part of it) from internal/app.
package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the whole server configuration. Keys (koanf/yaml tags) follow the
// names StacyVM users already have in their stacyvm.yaml.
type Config struct {
	Server    ServerConfig    `koanf:"server" yaml:"server" json:"server"`
	DataDir   string          `koanf:"data_dir" yaml:"data_dir" json:"data_dir"`
	Database  DatabaseConfig  `koanf:"database" yaml:"database" json:"database"`
	Providers ProvidersConfig `koanf:"providers" yaml:"providers" json:"providers"`
	Defaults  DefaultsConfig  `koanf:"defaults" yaml:"defaults" json:"defaults"`
	Auth      AuthConfig      `koanf:"auth" yaml:"auth" json:"auth"`
	Logging   LoggingConfig   `koanf:"logging" yaml:"logging" json:"logging"`
	WarmPool  WarmPoolConfig  `koanf:"warm_pool" yaml:"warm_pool" json:"warm_pool"`
	Worker    WorkerConfig    `koanf:"worker" yaml:"worker" json:"worker"`
	Tracing   TracingConfig   `koanf:"tracing" yaml:"tracing" json:"tracing"`

	// Source is the config file that was loaded, "" when none was found.
	Source string `koanf:"-" yaml:"-" json:"-"`
	// Warnings are non-fatal findings of Load (unknown STACYVM_* variables,
	// ...) for the caller to log once it has a logger.
	Warnings []string `koanf:"-" yaml:"-" json:"-"`
}

// WarmPoolConfig keeps ready sandboxes per image on the default provider, so
// a matching spawn is a database update instead of a container start.
type WarmPoolConfig struct {
	// Size is how many ready sandboxes to keep per image; 0 disables the pool.
	Size int `koanf:"size" yaml:"size" json:"size"`
	// Images lists the pooled images, each "image" (Size sandboxes) or
	// "image=N" (N sandboxes).
	Images []string `koanf:"images" yaml:"images" json:"images"`
}

// Pools returns the configured pool size per image (entries with size 0 are
// left out). Call after Validate.
func (w WarmPoolConfig) Pools() map[string]int {
	out := map[string]int{}
	for _, e := range w.Images {
		img, n, _ := parsePoolEntry(e, w.Size)
		if n > 0 {
			out[img] = n
		}
	}
	return out
}

// maxWarmPerImage bounds a pool; each warm sandbox holds a running runtime.
const maxWarmPerImage = 64

func parsePoolEntry(e string, def int) (string, int, error) {
	img, n, found := strings.Cut(strings.TrimSpace(e), "=")
	if img == "" {
		return "", 0, fmt.Errorf("empty image in %q", e)
	}
	if !found {
		return img, def, nil
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 || v > maxWarmPerImage {
		return "", 0, fmt.Errorf("%q: size must be a whole number from 0 to %d", e, maxWarmPerImage)
	}
	return img, v, nil
}

// ServerConfig is the HTTP listener.
type ServerConfig struct {
	Host          string `koanf:"host" yaml:"host" json:"host"`
	Port          int    `koanf:"port" yaml:"port" json:"port"`
	PreviewDomain string `koanf:"preview_domain" yaml:"preview_domain" json:"preview_domain"`
	// PreviewTokenKey signs preview tokens (at least 32 bytes); "" uses a
	// random secret generated once into data_dir/preview-token-key.
	PreviewTokenKey    string   `koanf:"preview_token_key" yaml:"preview_token_key" json:"preview_token_key" secret:"true"`
	CORSAllowedOrigins []string `koanf:"cors_allowed_origins" yaml:"cors_allowed_origins" json:"cors_allowed_origins"`
	// MaxBodyBytes caps JSON request bodies.
	MaxBodyBytes int64 `koanf:"max_body_bytes" yaml:"max_body_bytes" json:"max_body_bytes"`
	// MaxUploadBytes caps raw file bodies (file write/upload, archives);
	// NoUploadLimit (-1) removes the cap. 0 is refused, never "unlimited":
	// an empty or mistyped value must not silently lift a limit.
	MaxUploadBytes    int64    `koanf:"max_upload_bytes" yaml:"max_upload_bytes" json:"max_upload_bytes"`
	ReadHeaderTimeout Duration `koanf:"read_header_timeout" yaml:"read_header_timeout" json:"read_header_timeout"`
	ShutdownTimeout   Duration `koanf:"shutdown_timeout" yaml:"shutdown_timeout" json:"shutdown_timeout"`
	// Mode is production (default) or development; only development accepts
	// the CORS origin "*".
	Mode string `koanf:"mode" yaml:"mode" json:"mode"`
}

// DatabaseConfig selects the store: DriverSQLite (an embedded file at
// Path, absolute after Load) or DriverPostgres (the server at DSN).
type DatabaseConfig struct {
	Driver string `koanf:"driver" yaml:"driver" json:"driver"`
	Path   string `koanf:"path" yaml:"path" json:"path"`
	// DSN is a libpq connection string or postgres:// URL. It usually
	// carries a password, so the whole value is a secret; after Load it
	// holds the DSN whichever way it was given (inline or DSNFile).
	DSN     string `koanf:"dsn" yaml:"dsn" json:"dsn" secret:"true"`
	DSNFile string `koanf:"dsn_file" yaml:"dsn_file" json:"dsn_file"`
}

// Database drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// ProvidersConfig lists the sandbox runtimes and which one is the default.
type ProvidersConfig struct {
	Default string       `koanf:"default" yaml:"default" json:"default"`
	Docker  DockerConfig `koanf:"docker" yaml:"docker" json:"docker"`
	Mock    MockConfig   `koanf:"mock" yaml:"mock" json:"mock"`
	// Gvisor and Kata are the docker provider with the runsc and Kata
	// runtimes: the same keys as providers.docker.
	Gvisor DockerConfig `koanf:"gvisor" yaml:"gvisor" json:"gvisor"`
	Kata   DockerConfig `koanf:"kata" yaml:"kata" json:"kata"`
	Proot  ProotConfig  `koanf:"proot" yaml:"proot" json:"proot"`
	VM     VMConfig     `koanf:"vm" yaml:"vm" json:"vm"`
	// Custom is a remote provider: a `stacyvm worker` (or any server of
	// docs/worker-protocol.md) reached over HTTP.
	Custom CustomConfig `koanf:"custom" yaml:"custom" json:"custom"`
	// E2B runs sandboxes on e2b.dev (e2b.go). Preview.
	E2B E2BConfig `koanf:"e2b" yaml:"e2b" json:"e2b"`
}

// CustomConfig is the remote provider "custom" (docs/worker-protocol.md).
// After Load, Token holds the secret whichever way it was given.
type CustomConfig struct {
	Enabled bool `koanf:"enabled" yaml:"enabled" json:"enabled"`
	// URL is the worker's base URL, http://host:port or https://host:port.
	URL       string `koanf:"url" yaml:"url" json:"url"`
	Token     string `koanf:"token" yaml:"token" json:"token" secret:"true"`
	TokenFile string `koanf:"token_file" yaml:"token_file" json:"token_file"`
	// CAFile verifies an https worker (default: system roots); CertFile and
	// KeyFile are this server's client certificate for mTLS.
	CAFile   string `koanf:"ca_file" yaml:"ca_file" json:"ca_file"`
	CertFile string `koanf:"cert_file" yaml:"cert_file" json:"cert_file"`
	KeyFile  string `koanf:"key_file" yaml:"key_file" json:"key_file"`
	// Timeout bounds every worker call but create; CreateTimeout bounds create.
	Timeout       Duration `koanf:"timeout" yaml:"timeout" json:"timeout"`
	CreateTimeout Duration `koanf:"create_timeout" yaml:"create_timeout" json:"create_timeout"`
}

// WorkerConfig is `stacyvm worker`: one local provider served over HTTP
// to a StacyVM server's custom provider. After Load, Token holds the secret
// whichever way it was given.
type WorkerConfig struct {
	Host string `koanf:"host" yaml:"host" json:"host"`
	Port int    `koanf:"port" yaml:"port" json:"port"`
	// Provider is the local provider to expose: docker, gvisor, kata,
	// proot, vm or mock; its providers.<name> section configures it.
	Provider  string `koanf:"provider" yaml:"provider" json:"provider"`
	Token     string `koanf:"token" yaml:"token" json:"token" secret:"true"`
	TokenFile string `koanf:"token_file" yaml:"token_file" json:"token_file"`
	// TLSCertFile and TLSKeyFile turn on TLS; ClientCAFile then requires
	// client certificates signed by it (mTLS).
	TLSCertFile  string `koanf:"tls_cert_file" yaml:"tls_cert_file" json:"tls_cert_file"`
	TLSKeyFile   string `koanf:"tls_key_file" yaml:"tls_key_file" json:"tls_key_file"`
	ClientCAFile string `koanf:"client_ca_file" yaml:"client_ca_file" json:"client_ca_file"`
}

// VMConfig is the microVM provider (QEMU microvm; docs/vm.md): a Debian
// kernel, an initramfs carrying the agent and an ext4 root disk converted
// from a local Docker image, per sandbox a copy-on-write overlay.
type VMConfig struct {
	Enabled bool `koanf:"enabled" yaml:"enabled" json:"enabled"`
	// Accel is auto (KVM when /dev/kvm works and a probe guest boots fast,
	// else TCG emulation), kvm or tcg.
	Accel string `koanf:"accel" yaml:"accel" json:"accel"`
	// AssetsDir holds vmlinux and initrd-base.img (scripts/build-vm-assets.sh);
	// Kernel and Initrd override single files.
	AssetsDir string `koanf:"assets_dir" yaml:"assets_dir" json:"assets_dir"`
	Kernel    string `koanf:"kernel" yaml:"kernel" json:"kernel"`
	Initrd    string `koanf:"initrd" yaml:"initrd" json:"initrd"`
	// QEMUBinary is the QEMU executable, looked up on PATH.
	QEMUBinary  string   `koanf:"qemu_binary" yaml:"qemu_binary" json:"qemu_binary"`
	MemoryMB    int      `koanf:"memory_mb" yaml:"memory_mb" json:"memory_mb"`
	VCPUs       int      `koanf:"vcpus" yaml:"vcpus" json:"vcpus"`
	BootTimeout Duration `koanf:"boot_timeout" yaml:"boot_timeout" json:"boot_timeout"`
}

// ProotConfig is the PRoot provider: a private rootfs per sandbox, the agent
// under ptrace path translation. NOT an isolation boundary.
type ProotConfig struct {
	Enabled bool `koanf:"enabled" yaml:"enabled" json:"enabled"`
	// Binary is the proot executable, looked up on PATH.
	Binary    string  `koanf:"binary" yaml:"binary" json:"binary"`
	MemoryMB  int     `koanf:"memory_mb" yaml:"memory_mb" json:"memory_mb"`
	CPUs      float64 `koanf:"cpus" yaml:"cpus" json:"cpus"`
	PidsLimit int     `koanf:"pids_limit" yaml:"pids_limit" json:"pids_limit"`
}

// DockerConfig is the Docker Engine provider.
type DockerConfig struct {
	Enabled bool `koanf:"enabled" yaml:"enabled" json:"enabled"`
	// Host is the Docker daemon address; "" means DOCKER_HOST or the
	// platform default socket.
	Host           string  `koanf:"host" yaml:"host" json:"host"`
	Runtime        string  `koanf:"runtime" yaml:"runtime" json:"runtime"`
	NetworkMode    string  `koanf:"network_mode" yaml:"network_mode" json:"network_mode"`
	MemoryMB       int     `koanf:"memory_mb" yaml:"memory_mb" json:"memory_mb"`
	CPUs           float64 `koanf:"cpus" yaml:"cpus" json:"cpus"`
	PidsLimit      int     `koanf:"pids_limit" yaml:"pids_limit" json:"pids_limit"`
	ReadOnlyRootfs bool    `koanf:"read_only_rootfs" yaml:"read_only_rootfs" json:"read_only_rootfs"`
	// SeccompProfile is a path to a profile; "" means Docker's default.
	SeccompProfile string `koanf:"seccomp_profile" yaml:"seccomp_profile" json:"seccomp_profile"`
	// User runs sandbox processes as this user; "" means the image's user.
	User string `koanf:"user" yaml:"user" json:"user"`
	// Pull is the image pull policy: PullMissing or PullNever.
	Pull        string   `koanf:"pull" yaml:"pull" json:"pull"`
	PullTimeout Duration `koanf:"pull_timeout" yaml:"pull_timeout" json:"pull_timeout"`
}

// Image pull policies for DockerConfig.Pull.
const (
	PullMissing = "missing"
	PullNever   = "never"
)

// MockConfig is the test-only process provider.
type MockConfig struct {
	Enabled bool `koanf:"enabled" yaml:"enabled" json:"enabled"`
}

// DefaultsConfig holds sandbox defaults and global limits. A zero
// MaxSandboxes or MaxSandboxesPerOwner means unlimited.
type DefaultsConfig struct {
	Image                string   `koanf:"image" yaml:"image" json:"image"`
	TTL                  Duration `koanf:"ttl" yaml:"ttl" json:"ttl"`
	MemoryMB             int      `koanf:"memory_mb" yaml:"memory_mb" json:"memory_mb"`
	VCPUs                int      `koanf:"vcpus" yaml:"vcpus" json:"vcpus"`
	MaxTTL               Duration `koanf:"max_ttl" yaml:"max_ttl" json:"max_ttl"`
	DefaultExecTimeout   Duration `koanf:"default_exec_timeout" yaml:"default_exec_timeout" json:"default_exec_timeout"`
	MaxExecTimeout       Duration `koanf:"max_exec_timeout" yaml:"max_exec_timeout" json:"max_exec_timeout"`
	MaxSandboxes         int      `koanf:"max_sandboxes" yaml:"max_sandboxes" json:"max_sandboxes"`
	MaxSandboxesPerOwner int      `koanf:"max_sandboxes_per_owner" yaml:"max_sandboxes_per_owner" json:"max_sandboxes_per_owner"`
	ReapInterval         Duration `koanf:"reap_interval" yaml:"reap_interval" json:"reap_interval"`
	// ReconcileInterval is how often the server re-checks store against
	// runtimes while running (orphans left by failed runtime calls); 0 = only at start.
	ReconcileInterval Duration `koanf:"reconcile_interval" yaml:"reconcile_interval" json:"reconcile_interval"`
	// DestroyedRetention is how long destroyed sandbox rows are kept.
	DestroyedRetention Duration `koanf:"destroyed_retention" yaml:"destroyed_retention" json:"destroyed_retention"`
}

// AuthConfig holds the API credentials. After Load, APIKey and AdminAPIKey
// hold the secret whichever way it was given (inline or *_file).
type AuthConfig struct {
	APIKey          string `koanf:"api_key" yaml:"api_key" json:"api_key" secret:"true"`
	APIKeyFile      string `koanf:"api_key_file" yaml:"api_key_file" json:"api_key_file"`
	AdminAPIKey     string `koanf:"admin_api_key" yaml:"admin_api_key" json:"admin_api_key" secret:"true"`
	AdminAPIKeyFile string `koanf:"admin_api_key_file" yaml:"admin_api_key_file" json:"admin_api_key_file"`
	// ViewerAPIKey grants the read-only viewer role. Every *_api_key value
	// may hold several keys (comma- or newline-separated) so a key is rotated
	// by adding the new one, moving clients, then dropping the old one.
	ViewerAPIKey     string `koanf:"viewer_api_key" yaml:"viewer_api_key" json:"viewer_api_key" secret:"true"`
	ViewerAPIKeyFile string `koanf:"viewer_api_key_file" yaml:"viewer_api_key_file" json:"viewer_api_key_file"`
	// AdminFallbackEnabled accepts a regular api_key on admin routes. Off by
	// default; flagged by the production checks.
	AdminFallbackEnabled bool `koanf:"admin_fallback_enabled" yaml:"admin_fallback_enabled" json:"admin_fallback_enabled"`
	// AdminAuditRetention is how long audit events are kept; 0 keeps them.
	AdminAuditRetention Duration `koanf:"admin_audit_retention" yaml:"admin_audit_retention" json:"admin_audit_retention"`

	// OIDC bearer tokens: enabled when OIDCIssuer is set.
	OIDCIssuer   string `koanf:"oidc_issuer" yaml:"oidc_issuer" json:"oidc_issuer"`
	OIDCAudience string `koanf:"oidc_audience" yaml:"oidc_audience" json:"oidc_audience"`
	// OIDCJWKSURL skips discovery when set.
	OIDCJWKSURL           string   `koanf:"oidc_jwks_url" yaml:"oidc_jwks_url" json:"oidc_jwks_url"`
	OIDCClockSkew         Duration `koanf:"oidc_clock_skew" yaml:"oidc_clock_skew" json:"oidc_clock_skew"`
	OIDCGroupsClaim       string   `koanf:"oidc_groups_claim" yaml:"oidc_groups_claim" json:"oidc_groups_claim"`
	OIDCTenantClaim       string   `koanf:"oidc_tenant_claim" yaml:"oidc_tenant_claim" json:"oidc_tenant_claim"`
	OIDCAdminGroups       []string `koanf:"oidc_admin_groups" yaml:"oidc_admin_groups" json:"oidc_admin_groups"`
	OIDCTenantAdminGroups []string `koanf:"oidc_tenant_admin_groups" yaml:"oidc_tenant_admin_groups" json:"oidc_tenant_admin_groups"`
	OIDCOperatorGroups    []string `koanf:"oidc_operator_groups" yaml:"oidc_operator_groups" json:"oidc_operator_groups"`
	OIDCViewerGroups      []string `koanf:"oidc_viewer_groups" yaml:"oidc_viewer_groups" json:"oidc_viewer_groups"`
	// OIDCDefaultRole is the role of a token in none of the groups.
	OIDCDefaultRole string `koanf:"oidc_default_role" yaml:"oidc_default_role" json:"oidc_default_role"`

	// RateLimitPerSecond is the sustained request rate per principal
	// (anonymous callers: per TCP peer); 0 disables rate limiting.
	RateLimitPerSecond float64 `koanf:"rate_limit_per_second" yaml:"rate_limit_per_second" json:"rate_limit_per_second"`
	RateLimitBurst     int     `koanf:"rate_limit_burst" yaml:"rate_limit_burst" json:"rate_limit_burst"`
	// RateLimitMaxKeys bounds the limiter's memory (LRU eviction).
	RateLimitMaxKeys int `koanf:"rate_limit_max_keys" yaml:"rate_limit_max_keys" json:"rate_limit_max_keys"`
}

// Server modes.
const (
	ModeProduction  = "production"
	ModeDevelopment = "development"
)

// NoUploadLimit as server.max_upload_bytes lets raw uploads and archives be
// any size (they are streamed, so the server's memory does not grow).
const NoUploadLimit int64 = -1

// LoggingConfig selects the slog handler.
type LoggingConfig struct {
	Level  string `koanf:"level" yaml:"level" json:"level"`    // debug, info, warn, error
	Format string `koanf:"format" yaml:"format" json:"format"` // text or json
}

// Addr is the listen address, host:port.
func (s ServerConfig) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// IsLoopback reports whether Host binds only to a loopback interface.
func (s ServerConfig) IsLoopback() bool {
	if s.Host == "localhost" {
		return true
	}
	ip := net.ParseIP(s.Host)
	return ip != nil && ip.IsLoopback()
}

// Duration is a time.Duration that reads and writes Go duration strings
// ("30m", "1h30m") in YAML, JSON and environment variables.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String renders d like time.Duration.String ("30m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts any string
// time.ParseDuration accepts.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"30s\", \"5m\", \"1h\")", string(b))
	}
	*d = Duration(v)
	return nil
}

// Default returns the built-in configuration for a process whose home
// directory is home; root selects the system-wide data directory.
func Default(home string, root bool) *Config {
	dataDir := "/var/lib/stacyvm"
	if !root {
		dataDir = filepath.Join(home, ".stacyvm", "data")
	}
	return &Config{
		Server: ServerConfig{
			Host:               "127.0.0.1",
			Port:               7423,
			PreviewDomain:      "localhost",
			CORSAllowedOrigins: []string{},
			MaxBodyBytes:       10 << 20,
			MaxUploadBytes:     512 << 20,
			ReadHeaderTimeout:  Duration(10 * time.Second),
			ShutdownTimeout:    Duration(15 * time.Second),
			Mode:               ModeProduction,
		},
		DataDir:  dataDir,
		Database: DatabaseConfig{Driver: "sqlite"},
		Providers: ProvidersConfig{
			Default: "docker",
			Docker: DockerConfig{
				Enabled:     true,
				Runtime:     "runc",
				NetworkMode: "bridge",
				MemoryMB:    512,
				CPUs:        1,
				PidsLimit:   256,
				Pull:        PullMissing,
				PullTimeout: Duration(60 * time.Second),
			},
			Gvisor: DockerConfig{
				Runtime:     "runsc",
				NetworkMode: "none",
				MemoryMB:    512,
				CPUs:        1,
				PidsLimit:   2048, // gVisor counts its own host threads
				Pull:        PullMissing,
				PullTimeout: Duration(60 * time.Second),
			},
			Kata: DockerConfig{
				Runtime:     "io.containerd.kata.v2",
				NetworkMode: "none",
				MemoryMB:    512,
				CPUs:        1,
				PidsLimit:   256,
				Pull:        PullMissing,
				PullTimeout: Duration(60 * time.Second),
			},
			Proot: ProotConfig{Binary: "proot", MemoryMB: 512, CPUs: 1, PidsLimit: 256},
			VM: VMConfig{Accel: "auto", AssetsDir: "/var/lib/stacyvm/vm-assets", QEMUBinary: "qemu-system-x86_64",
				MemoryMB: 512, VCPUs: 1, BootTimeout: Duration(90 * time.Second)},
			Custom: CustomConfig{Timeout: Duration(30 * time.Second), CreateTimeout: Duration(3 * time.Minute)},
			E2B:    defaultE2B(),
		},
		Worker: WorkerConfig{Host: "127.0.0.1", Port: 7424, Provider: ProviderDocker},
		Defaults: DefaultsConfig{
			Image:              "stacyvm/busybox",
			TTL:                Duration(30 * time.Minute),
			MemoryMB:           512,
			VCPUs:              1,
			MaxTTL:             Duration(24 * time.Hour),
			DefaultExecTimeout: Duration(5 * time.Minute),
			MaxExecTimeout:     Duration(time.Hour),
			ReapInterval:       Duration(10 * time.Second),
			ReconcileInterval:  Duration(time.Minute),
			DestroyedRetention: Duration(24 * time.Hour),
		},
		Auth: AuthConfig{
			AdminAuditRetention: Duration(720 * time.Hour),
			OIDCClockSkew:       Duration(time.Minute),
			OIDCGroupsClaim:     "groups",
			OIDCTenantClaim:     "tenant_id",
			OIDCDefaultRole:     "viewer",
			RateLimitMaxKeys:    10000,
		},
		Logging: LoggingConfig{Level: "info", Format: "text"},
		Tracing: TracingConfig{
			Endpoint:    "http://127.0.0.1:4318/v1/traces",
			ServiceName: "stacyvm",
			SampleRatio: 1,
			Timeout:     Duration(10 * time.Second),
		},
	}
}

// TracingConfig exports OpenTelemetry spans over OTLP/HTTP
// (docs/deployment.md#tracing). Disabled, no tracer exists at all.
type TracingConfig struct {
	Enabled bool `koanf:"enabled" yaml:"enabled" json:"enabled"`
	// Endpoint is the collector's OTLP/HTTP traces URL, e.g.
	// "http://otel-collector:4318/v1/traces" (the path is used as given).
	Endpoint string `koanf:"endpoint" yaml:"endpoint" json:"endpoint"`
	// ServiceName is the service.name resource attribute.
	ServiceName string `koanf:"service_name" yaml:"service_name" json:"service_name"`
	// SampleRatio is the fraction of new traces recorded, 0 to 1; a request
	// that carries a sampled W3C traceparent is always recorded.
	SampleRatio float64 `koanf:"sample_ratio" yaml:"sample_ratio" json:"sample_ratio"`
	// Headers are sent with every export, "name=value" pairs separated by
	// commas (the OTEL_EXPORTER_OTLP_HEADERS format), usually a collector
	// token: a secret.
	Headers string `koanf:"headers" yaml:"headers" json:"headers" secret:"true"`
	// Timeout bounds one export request.
	Timeout Duration `koanf:"timeout" yaml:"timeout" json:"timeout"`
}

// Redacted returns a deep copy of c with every set secret replaced by
// "[redacted]", safe to log, print or put in a support bundle.
func (c *Config) Redacted() *Config {
	r := *c
	r.Server.CORSAllowedOrigins = append([]string(nil), c.Server.CORSAllowedOrigins...)
	r.Warnings = append([]string(nil), c.Warnings...)
	for _, s := range []*string{&r.Auth.APIKey, &r.Auth.AdminAPIKey, &r.Auth.ViewerAPIKey, &r.Database.DSN, &r.Server.PreviewTokenKey, &r.Tracing.Headers,
		&r.Providers.Custom.Token, &r.Worker.Token, &r.Providers.E2B.APIKey} {
		if *s != "" {
			*s = redactedValue
		}
	}
	return &r
}

const redactedValue = "[redacted]"
