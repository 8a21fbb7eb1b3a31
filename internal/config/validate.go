package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Providers the server knows how to build; providers.default must name one
// of them and it must be enabled.
const (
	ProviderDocker = "docker"
	ProviderMock   = "mock"
	ProviderGvisor = "gvisor"
	ProviderKata   = "kata"
	ProviderProot  = "proot"
	ProviderVM     = "vm"
	ProviderCustom = "custom" // a remote worker (docs/worker-protocol.md)
)

// Validate checks the whole configuration and returns every problem at once
// as one errs.Invalid error, one "key: problem" per line; nil when valid.
func (c *Config) Validate() error {
	var p problems

	// Server.
	if strings.TrimSpace(c.Server.Host) == "" {
		p.add("server.host", "must not be empty")
	}
	if c.Server.Port < 1 || c.Server.Port > 65535 {
		p.add("server.port", "must be between 1 and 65535, got %d", c.Server.Port)
	}
	if c.Server.MaxBodyBytes <= 0 {
		p.add("server.max_body_bytes", "must be positive")
	}
	if c.Server.MaxUploadBytes <= 0 && c.Server.MaxUploadBytes != NoUploadLimit {
		p.add("server.max_upload_bytes", "must be positive, or -1 for no limit, got %d", c.Server.MaxUploadBytes)
	}
	if c.Server.ReadHeaderTimeout <= 0 {
		p.add("server.read_header_timeout", "must be positive")
	}
	if c.Server.Mode != ModeProduction && c.Server.Mode != ModeDevelopment {
		p.add("server.mode", "must be production or development, got %q", c.Server.Mode)
	}
	for _, o := range c.Server.CORSAllowedOrigins {
		if o == "*" {
			if c.Server.Mode != ModeDevelopment {
				p.add("server.cors_allowed_origins", "\"*\" is only allowed with server.mode: development; list the origins")
			}
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			p.add("server.cors_allowed_origins", "%q is not an origin (want scheme://host[:port] or \"*\")", o)
		}
	}

	if c.WarmPool.Size < 0 || c.WarmPool.Size > maxWarmPerImage {
		p.add("warm_pool.size", "must be from 0 to %d, got %d", maxWarmPerImage, c.WarmPool.Size)
	}
	for _, e := range c.WarmPool.Images {
		if _, _, err := parsePoolEntry(e, c.WarmPool.Size); err != nil {
			p.add("warm_pool.images", "%v", err)
		}
	}

	if strings.TrimSpace(c.DataDir) == "" {
		p.add("data_dir", "must not be empty")
	}

	// Database.
	switch c.Database.Driver {
	case "sqlite":
		if c.Database.Path == "" {
			p.add("database.path", "must not be empty for the sqlite driver")
		}
	case "postgres":
		if strings.TrimSpace(c.Database.DSN) == "" {
			p.add("database.dsn", "must be set for the postgres driver (or database.dsn_file)")
		}
	default:
		p.add("database.driver", "must be \"sqlite\" or \"postgres\", got %q", c.Database.Driver)
	}

	// Providers.
	d := c.Providers.Docker
	switch c.Providers.Default {
	case ProviderDocker, ProviderMock, ProviderGvisor, ProviderKata, ProviderProot, ProviderVM, ProviderCustom, ProviderE2B:
		if !c.ProviderEnabled(c.Providers.Default) {
			p.add("providers.default", "%q is not enabled (set providers.%s.enabled: true)", c.Providers.Default, c.Providers.Default)
		}
	default:
		p.add("providers.default", "unknown provider %q (want docker, gvisor, kata, proot, vm, custom, e2b or mock)", c.Providers.Default)
	}
	for key, rc := range map[string]DockerConfig{"providers.gvisor": c.Providers.Gvisor, "providers.kata": c.Providers.Kata} {
		if !rc.Enabled {
			continue
		}
		switch {
		case rc.Runtime == "":
			p.add(key+".runtime", "must not be empty")
		case rc.MemoryMB <= 0 || rc.CPUs <= 0 || rc.PidsLimit < 0:
			p.add(key, "memory_mb and cpus must be positive, pids_limit not negative")
		case rc.NetworkMode != "none" && rc.NetworkMode != "bridge":
			p.add(key+".network_mode", "must be none or bridge, got %q", rc.NetworkMode)
		case rc.Pull != PullMissing && rc.Pull != PullNever:
			p.add(key+".pull", "must be missing or never, got %q", rc.Pull)
		}
	}
	if v := c.Providers.VM; v.Enabled {
		switch {
		case v.Accel != "auto" && v.Accel != "kvm" && v.Accel != "tcg":
			p.add("providers.vm.accel", "must be auto, kvm or tcg, got %q", v.Accel)
		case v.MemoryMB < 128 || v.VCPUs < 1 || v.BootTimeout <= 0:
			p.add("providers.vm", "memory_mb must be at least 128, vcpus at least 1, boot_timeout positive")
		}
	}
	if cu := c.Providers.Custom; cu.Enabled {
		c.validateCustom(&p)
	}
	c.validateE2B(&p)
	if pr := c.Providers.Proot; pr.Enabled && (pr.MemoryMB < 16 || pr.CPUs < 0 || pr.PidsLimit < 0) {
		p.add("providers.proot", "memory_mb must be at least 16, cpus and pids_limit not negative")
	}
	if d.Enabled {
		if d.Runtime == "" {
			p.add("providers.docker.runtime", "must not be empty")
		}
		if d.MemoryMB <= 0 {
			p.add("providers.docker.memory_mb", "must be positive")
		}
		if d.CPUs <= 0 {
			p.add("providers.docker.cpus", "must be positive")
		}
		if d.PullTimeout <= 0 {
			p.add("providers.docker.pull_timeout", "must be positive")
		}
	}
	if d.NetworkMode != "none" && d.NetworkMode != "bridge" {
		p.add("providers.docker.network_mode", "must be none or bridge, got %q", d.NetworkMode)
	}
	if d.Pull != PullMissing && d.Pull != PullNever {
		p.add("providers.docker.pull", "must be missing or never, got %q", d.Pull)
	}
	if d.PidsLimit < 0 {
		p.add("providers.docker.pids_limit", "must not be negative")
	}

	// Defaults and limits.
	df := c.Defaults
	if strings.TrimSpace(df.Image) == "" {
		p.add("defaults.image", "must not be empty")
	}
	if df.MemoryMB <= 0 {
		p.add("defaults.memory_mb", "must be positive")
	}
	if df.VCPUs <= 0 {
		p.add("defaults.vcpus", "must be positive")
	}
	for key, v := range map[string]Duration{
		"defaults.ttl": df.TTL, "defaults.max_ttl": df.MaxTTL,
		"defaults.default_exec_timeout": df.DefaultExecTimeout, "defaults.max_exec_timeout": df.MaxExecTimeout,
		"defaults.reap_interval": df.ReapInterval,
	} {
		if v == 0 {
			p.add(key, "must be positive")
		}
	}
	if df.TTL > df.MaxTTL {
		p.add("defaults.ttl", "%s exceeds defaults.max_ttl %s", df.TTL, df.MaxTTL)
	}
	if df.DefaultExecTimeout > df.MaxExecTimeout {
		p.add("defaults.default_exec_timeout", "%s exceeds defaults.max_exec_timeout %s", df.DefaultExecTimeout, df.MaxExecTimeout)
	}
	if df.MaxSandboxes < 0 {
		p.add("defaults.max_sandboxes", "must not be negative (0 = unlimited)")
	}
	if df.MaxSandboxesPerOwner < 0 {
		p.add("defaults.max_sandboxes_per_owner", "must not be negative (0 = unlimited)")
	}

	// Every duration, wherever it is, must be non-negative.
	for key, v := range c.durations() {
		if v < 0 {
			p.add(key, "must not be negative, got %s", v)
		}
	}

	// Auth.
	if c.Auth.AdminAPIKey != "" && c.Auth.AdminAPIKey == c.Auth.APIKey {
		p.add("auth.admin_api_key", "must differ from auth.api_key")
	}
	c.validateAuth(&p) // security.go
	c.validateTracing(&p)

	// Logging.
	if _, err := c.Logging.SlogLevel(); err != nil {
		p.add("logging.level", "must be debug, info, warn or error, got %q", c.Logging.Level)
	}
	if c.Logging.Format != "text" && c.Logging.Format != "json" {
		p.add("logging.format", "must be text or json, got %q", c.Logging.Format)
	}
	return p.err()
}

// ProviderEnabled reports whether the named provider is enabled.
func (c *Config) ProviderEnabled(name string) bool {
	switch name {
	case ProviderDocker:
		return c.Providers.Docker.Enabled
	case ProviderMock:
		return c.Providers.Mock.Enabled
	case ProviderGvisor:
		return c.Providers.Gvisor.Enabled
	case ProviderKata:
		return c.Providers.Kata.Enabled
	case ProviderProot:
		return c.Providers.Proot.Enabled
	case ProviderVM:
		return c.Providers.VM.Enabled
	case ProviderCustom:
		return c.Providers.Custom.Enabled
	case ProviderE2B:
		return c.Providers.E2B.Enabled
	}
	return false
}

// SlogLevel maps Level to a slog.Level.
func (l LoggingConfig) SlogLevel() (slog.Level, error) {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("unknown log level %q", l.Level)
}

// durations returns every Duration field of c by key.
func (c *Config) durations() map[string]Duration {
	out := map[string]Duration{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			tag := t.Field(i).Tag.Get("koanf")
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			f := v.Field(i)
			switch {
			case f.Type() == reflect.TypeFor[Duration]():
				out[key] = Duration(f.Int())
			case f.Kind() == reflect.Struct:
				walk(f, key)
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// problems accumulates "key: problem" lines.
type problems []string

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	// Sort for stable output; map iteration above is unordered.
	s := append([]string(nil), p...)
	slices.Sort(s)
	return errs.New(errs.Invalid, "invalid configuration:\n  %s", strings.Join(s, "\n  "))
}

// validateCustom checks providers.custom (enabled).
func (c *Config) validateCustom(p *problems) {
	cu := c.Providers.Custom
	u, err := url.Parse(cu.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		p.add("providers.custom.url", "must be the worker's http:// or https:// base URL, got %q", cu.URL)
	} else if u.Scheme == "http" && (cu.CAFile != "" || cu.CertFile != "" || cu.KeyFile != "") {
		p.add("providers.custom.url", "must be https:// when ca_file, cert_file or key_file is set")
	}
	if strings.TrimSpace(cu.Token) == "" {
		p.add("providers.custom.token", "must be set (or token_file): the worker's bearer token")
	}
	if (cu.CertFile == "") != (cu.KeyFile == "") {
		p.add("providers.custom.cert_file", "set both cert_file and key_file, or neither")
	}
	if cu.Timeout <= 0 || cu.CreateTimeout <= 0 {
		p.add("providers.custom", "timeout and create_timeout must be positive")
	}
}

// ValidateWorker checks what `stacyvm worker` uses: the worker section and
// the provider it exposes. Problems come back as one errs.Invalid error.
func (c *Config) ValidateWorker() error {
	var p problems
	w := c.Worker
	if strings.TrimSpace(w.Host) == "" {
		p.add("worker.host", "must not be empty")
	}
	if w.Port < 1 || w.Port > 65535 {
		p.add("worker.port", "must be between 1 and 65535, got %d", w.Port)
	}
	switch w.Provider {
	case ProviderDocker, ProviderGvisor, ProviderKata, ProviderProot, ProviderVM, ProviderMock:
	case ProviderCustom:
		p.add("worker.provider", "a worker exposes a local provider, not custom")
	default:
		p.add("worker.provider", "unknown provider %q (want docker, gvisor, kata, proot, vm or mock)", w.Provider)
	}
	if strings.TrimSpace(w.Token) == "" {
		p.add("worker.token", "must be set (or worker.token_file): servers authenticate with it")
	}
	if (w.TLSCertFile == "") != (w.TLSKeyFile == "") {
		p.add("worker.tls_cert_file", "set both tls_cert_file and tls_key_file, or neither")
	}
	if w.ClientCAFile != "" && w.TLSCertFile == "" {
		p.add("worker.client_ca_file", "needs tls_cert_file and tls_key_file (mTLS runs over TLS)")
	}
	if strings.TrimSpace(c.DataDir) == "" {
		p.add("data_dir", "must not be empty")
	}
	if _, err := c.Logging.SlogLevel(); err != nil {
		p.add("logging.level", "must be debug, info, warn or error, got %q", c.Logging.Level)
	}
	return p.err()
}
