package lint

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/store/postgres"
)

// minKeyBytes is the shortest API or admin key production accepts.
const minKeyBytes = 32

// Rules returns the production rule set, in report order. Rule ids are
// stable: scripts and docs refer to them.
func Rules() []Rule {
	return []Rule{
		{"SEC001", Error, "authentication enabled",
			"set auth.api_key_file to a file holding `openssl rand -hex 32` output (or STACYVM_AUTH_API_KEY); docs/operations.md#auth-keys",
			func(c *config.Config) []string {
				if c.Auth.APIKey == "" && c.Auth.AdminAPIKey == "" && c.Auth.ViewerAPIKey == "" && c.Auth.OIDCIssuer == "" {
					return []string{"auth.api_key and auth.admin_api_key are empty: every caller would have full access"}
				}
				return nil
			}},
		{"SEC002", Error, "API, admin and viewer keys are distinct",
			"generate a separate admin key: `openssl rand -hex 32 > /etc/stacyvm/admin-key` and set auth.admin_api_key_file; docs/operations.md#auth-keys",
			func(c *config.Config) []string {
				seen := map[string]string{}
				var out []string
				for _, k := range keyFields(c) {
					for _, v := range auth.SplitKeys(k.value) {
						if prev, dup := seen[v]; dup && prev != k.key {
							out = append(out, fmt.Sprintf("%s and %s share a key: the lower role gains the higher one", prev, k.key))
						}
						seen[v] = k.key
					}
				}
				return out
			}},
		{"SEC003", Error, "every key is at least 32 bytes",
			"replace the key with `openssl rand -hex 32` output; docs/operations.md#auth-keys",
			func(c *config.Config) []string {
				var out []string
				for _, k := range keyFields(c) {
					for i, v := range auth.SplitKeys(k.value) {
						if len(v) < minKeyBytes {
							out = append(out, fmt.Sprintf("%s (key %d) is %d bytes, want at least %d", k.key, i+1, len(v), minKeyBytes))
						}
					}
				}
				return out
			}},
		{"SEC004", Error, "an admin key is set",
			"set auth.admin_api_key_file to a file holding `openssl rand -hex 32` output; docs/operations.md#auth-keys",
			func(c *config.Config) []string {
				if len(auth.SplitKeys(c.Auth.AdminAPIKey)) == 0 && c.Auth.OIDCIssuer == "" {
					return []string{"auth.admin_api_key is empty: admin routes (diagnostics, quotas, keys) have no credential"}
				}
				return nil
			}},
		{"SEC005", Error, "keys are not placeholders",
			"generate real keys with `openssl rand -hex 32`; docs/operations.md#auth-keys",
			func(c *config.Config) []string {
				var out []string
				for _, k := range keyFields(c) {
					for i, v := range auth.SplitKeys(k.value) {
						if placeholder(v) {
							out = append(out, fmt.Sprintf("%s (key %d) looks like a placeholder (a sample word or too few distinct characters)", k.key, i+1))
						}
					}
				}
				return out
			}},
		{"SEC006", Error, "admin fallback is off",
			"set auth.admin_fallback_enabled: false; docs/operations.md#auth-keys",
			func(c *config.Config) []string {
				if c.Auth.AdminFallbackEnabled {
					return []string{"auth.admin_fallback_enabled is true: the regular API key also opens admin routes"}
				}
				return nil
			}},
		{"SEC007", Error, "audit retention is set",
			"set auth.admin_audit_retention to your retention window, e.g. \"2160h\" (90 days); docs/operations.md#audit",
			func(c *config.Config) []string {
				if c.Auth.AdminAuditRetention <= 0 {
					return []string{"auth.admin_audit_retention is 0: audit rows grow without bound"}
				}
				return nil
			}},
		{"SEC008", Error, "rate limiting is on",
			"set auth.rate_limit_per_second (e.g. 20) and auth.rate_limit_burst (e.g. 40); docs/operations.md#rate-limits",
			func(c *config.Config) []string {
				var out []string
				if c.Auth.RateLimitPerSecond <= 0 {
					out = append(out, "auth.rate_limit_per_second is 0: rate limiting is off")
				} else if c.Auth.RateLimitBurst <= 0 {
					out = append(out, "auth.rate_limit_burst is 0 while rate limiting is on")
				}
				return out
			}},
		{"SEC009", Error, "OIDC issuer, audience and JWKS are consistent",
			"with auth.oidc_issuer set (https), also set auth.oidc_audience; auth.oidc_jwks_url, when set, must be https; docs/operations.md#oidc",
			func(c *config.Config) []string {
				a := c.Auth
				var out []string
				if a.OIDCIssuer == "" {
					if a.OIDCAudience != "" || a.OIDCJWKSURL != "" {
						out = append(out, "auth.oidc_audience or auth.oidc_jwks_url is set but auth.oidc_issuer is empty: OIDC stays off")
					}
					return out
				}
				if u, err := url.Parse(a.OIDCIssuer); err != nil || u.Scheme != "https" || u.Host == "" {
					out = append(out, fmt.Sprintf("auth.oidc_issuer %q is not an https URL", a.OIDCIssuer))
				}
				if a.OIDCAudience == "" {
					out = append(out, "auth.oidc_audience is empty: tokens minted for other applications would be accepted")
				}
				if a.OIDCJWKSURL != "" {
					if u, err := url.Parse(a.OIDCJWKSURL); err != nil || u.Scheme != "https" || u.Host == "" {
						out = append(out, fmt.Sprintf("auth.oidc_jwks_url %q is not an https URL", a.OIDCJWKSURL))
					}
				}
				return out
			}},
		{"SEC012", Error, "server runs in production mode",
			"set server.mode: production; docs/operations.md#configuration",
			func(c *config.Config) []string {
				if c.Server.Mode != config.ModeProduction {
					return []string{fmt.Sprintf("server.mode is %q", c.Server.Mode)}
				}
				return nil
			}},
		{"SEC010", Error, "CORS has no wildcard origin",
			"list each trusted browser origin exactly in server.cors_allowed_origins, e.g. https://app.example.com; docs/operations.md#cors",
			func(c *config.Config) []string {
				for _, o := range c.Server.CORSAllowedOrigins {
					if strings.Contains(o, "*") {
						return []string{fmt.Sprintf("server.cors_allowed_origins contains %q: any web page could call the API with a user's browser", o)}
					}
				}
				return nil
			}},
		{"SEC011", Error, "CORS origins are exact https origins",
			"write each entry as scheme://host[:port] with https and no path, e.g. https://app.example.com; docs/operations.md#cors",
			func(c *config.Config) []string {
				var out []string
				for _, o := range c.Server.CORSAllowedOrigins {
					if strings.Contains(o, "*") {
						continue // SEC010
					}
					if msg := originProblem(o); msg != "" {
						out = append(out, fmt.Sprintf("server.cors_allowed_origins entry %q: %s", o, msg))
					}
				}
				return out
			}},
		{"LIM001", Error, "maximum sandbox TTL is set",
			"set defaults.max_ttl, e.g. \"24h\"; docs/operations.md#limits",
			func(c *config.Config) []string {
				if c.Defaults.MaxTTL <= 0 {
					return []string{"defaults.max_ttl is 0: callers may keep sandboxes forever"}
				}
				return nil
			}},
		{"LIM002", Error, "maximum exec timeout is set",
			"set defaults.max_exec_timeout, e.g. \"1h\"; docs/operations.md#limits",
			func(c *config.Config) []string {
				if c.Defaults.MaxExecTimeout <= 0 {
					return []string{"defaults.max_exec_timeout is 0: a command may run unbounded"}
				}
				return nil
			}},
		{"LIM003", Error, "global sandbox cap is set",
			"set defaults.max_sandboxes to what the host can run, e.g. 50; docs/operations.md#limits",
			func(c *config.Config) []string {
				if c.Defaults.MaxSandboxes <= 0 {
					return []string{"defaults.max_sandboxes is 0 (unlimited): one caller can exhaust the host"}
				}
				return nil
			}},
		{"LIM004", Warning, "per-owner sandbox cap is set",
			"set defaults.max_sandboxes_per_owner, e.g. 10; docs/operations.md#limits",
			func(c *config.Config) []string {
				if c.Defaults.MaxSandboxesPerOwner <= 0 {
					return []string{"defaults.max_sandboxes_per_owner is 0 (unlimited)"}
				}
				return nil
			}},
		{"RT001", Error, "container runtime is explicit",
			"set providers.<name>.runtime (runsc for gVisor, runc, io.containerd.kata.v2); docs/operations.md#runtime-hardening",
			perDocker(func(name string, d config.DockerConfig) string {
				if strings.TrimSpace(d.Runtime) == "" {
					return "providers." + name + ".runtime is empty"
				}
				return ""
			})},
		{"RT002", Warning, "runtime is a stronger boundary than runc",
			"prefer providers.gvisor (runsc) or kata for untrusted code; docs/operations.md#runtime-hardening",
			perDocker(func(name string, d config.DockerConfig) string {
				if d.Runtime == "runc" {
					return "providers." + name + ".runtime is runc: sandboxes share the host kernel with only namespaces and seccomp between them"
				}
				return ""
			})},
		{"RT003", Error, "network mode is none or bridge",
			"set providers.<name>.network_mode to none (or bridge when sandboxes need the network); docs/operations.md#runtime-hardening",
			perDocker(func(name string, d config.DockerConfig) string {
				if d.NetworkMode != "none" && d.NetworkMode != "bridge" {
					return fmt.Sprintf("providers.%s.network_mode is %q, want none or bridge", name, d.NetworkMode)
				}
				return ""
			})},
		{"RT004", Error, "pids limit is set",
			"set providers.<name>.pids_limit, e.g. 256; docs/operations.md#runtime-hardening",
			perDocker(func(name string, d config.DockerConfig) string {
				if d.PidsLimit <= 0 {
					return "providers." + name + ".pids_limit is not set: a fork bomb can exhaust the host"
				}
				return ""
			})},
		{"RT005", Error, "memory limit is set",
			"set providers.<name>.memory_mb, e.g. 512; docs/operations.md#runtime-hardening",
			perDocker(func(name string, d config.DockerConfig) string {
				if d.MemoryMB <= 0 {
					return "providers." + name + ".memory_mb is not set"
				}
				return ""
			})},
		{"RT006", Error, "CPU limit is set",
			"set providers.<name>.cpus, e.g. 1; docs/operations.md#runtime-hardening",
			perDocker(func(name string, d config.DockerConfig) string {
				if d.CPUs <= 0 {
					return "providers." + name + ".cpus is not set"
				}
				return ""
			})},
		{"RT007", Error, "seccomp is not unconfined",
			"leave providers.<name>.seccomp_profile empty (Docker's default profile) or point it at a profile file; docs/operations.md#runtime-hardening",
			perDocker(func(name string, d config.DockerConfig) string {
				if strings.EqualFold(strings.TrimSpace(d.SeccompProfile), "unconfined") {
					return "providers." + name + ".seccomp_profile is unconfined: every syscall reaches the host kernel"
				}
				return ""
			})},
		{"RT008", Error, "mock provider is disabled",
			"set providers.mock.enabled: false (the mock runs sandboxes as plain host processes); docs/operations.md#providers",
			func(c *config.Config) []string {
				if c.Providers.Mock.Enabled || c.Providers.Default == "mock" {
					return []string{"providers.mock is enabled: sandboxes would run unisolated on the host"}
				}
				return nil
			}},
		{"RT009", Warning, "proot is not used for untrusted code",
			"disable providers.proot unless every caller is trusted; docs/operations.md#providers",
			func(c *config.Config) []string {
				if c.Providers.Proot.Enabled {
					return []string{"providers.proot is enabled: PRoot translates paths with ptrace and is not an isolation boundary"}
				}
				return nil
			}},
		{"RT010", Error, "microVM limits are set",
			"set providers.vm.memory_mb (e.g. 512) and providers.vm.vcpus (e.g. 1); docs/operations.md#runtime-hardening",
			func(c *config.Config) []string {
				vm := c.Providers.VM
				if vm.Enabled && (vm.MemoryMB <= 0 || vm.VCPUs <= 0) {
					return []string{fmt.Sprintf("providers.vm.memory_mb is %d and providers.vm.vcpus is %d; both must be positive", vm.MemoryMB, vm.VCPUs)}
				}
				return nil
			}},
		{"RT011", Warning, "microVMs use KVM",
			"set providers.vm.accel: kvm on a host with /dev/kvm (TCG emulation is many times slower); docs/operations.md#providers",
			func(c *config.Config) []string {
				if c.Providers.VM.Enabled && c.Providers.VM.Accel != "kvm" {
					return []string{fmt.Sprintf("providers.vm.accel is %q: without KVM the server emulates the CPU", c.Providers.VM.Accel)}
				}
				return nil
			}},
		{"OPS001", Warning, "logs are JSON",
			"set logging.format: json so log shippers parse every field; docs/operations.md#logging",
			func(c *config.Config) []string {
				if c.Logging.Format != "json" {
					return []string{fmt.Sprintf("logging.format is %q", c.Logging.Format)}
				}
				return nil
			}},
		{"OPS002", Warning, "images are never pulled at spawn time",
			"import images ahead of time (scripts/build-images.sh or `docker load -i image.tar`) and set providers.<name>.pull: never; docs/operations.md#images",
			perDocker(func(name string, d config.DockerConfig) string {
				if d.Pull != config.PullNever {
					return fmt.Sprintf("providers.%s.pull is %q: a spawn may fetch an image from a registry", name, d.Pull)
				}
				return ""
			})},
		{"NET001", Error, "remote workers are reached over TLS",
			"use an https:// providers.custom.url with ca_file (and cert_file/key_file for mTLS), or keep the worker on loopback; docs/worker-protocol.md",
			func(c *config.Config) []string {
				cu := c.Providers.Custom
				if !cu.Enabled {
					return nil
				}
				if u, err := url.Parse(cu.URL); err == nil && u.Scheme == "http" && !loopbackHost(u.Hostname()) {
					return []string{fmt.Sprintf("providers.custom.url is plain http to %s: the worker token, commands and files travel unencrypted", u.Host)}
				}
				return nil
			}},
		{"NET002", Error, "worker tokens are strong",
			"put `openssl rand -hex 32` output in the token file (worker.token_file on the worker, providers.custom.token_file on the server); docs/worker-protocol.md",
			func(c *config.Config) []string {
				var out []string
				for _, k := range []keyField{{"providers.custom.token", c.Providers.Custom.Token}, {"worker.token", c.Worker.Token}} {
					if k.value == "" || (k.key == "providers.custom.token" && !c.Providers.Custom.Enabled) {
						continue
					}
					if len(k.value) < minKeyBytes {
						out = append(out, fmt.Sprintf("%s is %d bytes, want at least %d", k.key, len(k.value), minKeyBytes))
					} else if placeholder(k.value) {
						out = append(out, fmt.Sprintf("%s looks like a placeholder (a sample word or too few distinct characters)", k.key))
					}
				}
				return out
			}},
		{"NET003", Error, "a worker beyond loopback requires client certificates",
			"set worker.tls_cert_file, worker.tls_key_file and worker.client_ca_file (mTLS), or bind worker.host to 127.0.0.1; docs/worker-protocol.md",
			func(c *config.Config) []string {
				w := c.Worker
				if w.Token == "" || loopbackHost(w.Host) {
					return nil
				}
				if w.TLSCertFile == "" || w.ClientCAFile == "" {
					return []string{fmt.Sprintf("worker.host is %q without TLS and a client CA: anyone who can reach the port and learns the token controls its sandboxes", w.Host)}
				}
				return nil
			}},
		{"DB001", Error, "a remote Postgres is reached over TLS",
			"add sslmode=verify-full (with sslrootcert) to the DSN, or use a Unix socket or loopback host; docs/operations.md#postgres",
			func(c *config.Config) []string {
				if c.Database.Driver != config.DriverPostgres || c.Database.DSN == "" {
					return nil
				}
				t, err := postgres.ParseTransport(c.Database.DSN)
				if err != nil {
					return []string{"database.dsn cannot be parsed: " + err.Error()}
				}
				if t.Encrypted() {
					return nil
				}
				for _, h := range t.Hosts {
					if !strings.HasPrefix(h, "/") && !loopbackHost(h) {
						return []string{fmt.Sprintf("database.dsn connects to %s with sslmode=%s: the password and every record may travel unencrypted", h, t.SSLMode)}
					}
				}
				return nil
			}},
		{"OPS003", Error, "collector credentials are not sent in clear text",
			"use an https:// tracing.endpoint (or a collector on loopback); docs/deployment.md#tracing",
			func(c *config.Config) []string {
				if host, plain := plainRemoteTracing(c); plain && c.Tracing.Headers != "" {
					return []string{fmt.Sprintf("tracing.headers would be sent over plain http to %s", host)}
				}
				return nil
			}},
		{"OPS004", Warning, "traces leave the host encrypted",
			"use an https:// tracing.endpoint, or run the collector on loopback or a private network you trust; docs/deployment.md#tracing",
			func(c *config.Config) []string {
				if host, plain := plainRemoteTracing(c); plain && c.Tracing.Headers == "" {
					return []string{fmt.Sprintf("tracing.endpoint is plain http to %s: spans (routes, sandbox ids) travel unencrypted", host)}
				}
				return nil
			}},
	}
}

// plainRemoteTracing reports an enabled tracing export over plain http to a
// host other than loopback, and that host.
func plainRemoteTracing(c *config.Config) (string, bool) {
	if !c.Tracing.Enabled {
		return "", false
	}
	u, err := url.Parse(c.Tracing.Endpoint)
	if err != nil || u.Scheme != "http" {
		return "", false
	}
	h := u.Hostname()
	return u.Host, !(config.ServerConfig{Host: h}).IsLoopback()
}

// keyField is one configured key setting.
type keyField struct{ key, value string }

func keyFields(c *config.Config) []keyField {
	return []keyField{{"auth.api_key", c.Auth.APIKey}, {"auth.admin_api_key", c.Auth.AdminAPIKey}, {"auth.viewer_api_key", c.Auth.ViewerAPIKey}}
}

// dockerSections are the enabled providers configured with docker keys.
func dockerSections(c *config.Config) []struct {
	name string
	cfg  config.DockerConfig
} {
	all := []struct {
		name string
		cfg  config.DockerConfig
	}{{"docker", c.Providers.Docker}, {"gvisor", c.Providers.Gvisor}, {"kata", c.Providers.Kata}}
	var out []struct {
		name string
		cfg  config.DockerConfig
	}
	for _, s := range all {
		if s.cfg.Enabled {
			out = append(out, s)
		}
	}
	return out
}

func perDocker(f func(name string, d config.DockerConfig) string) func(*config.Config) []string {
	return func(c *config.Config) []string {
		var out []string
		for _, s := range dockerSections(c) {
			if msg := f(s.name, s.cfg); msg != "" {
				out = append(out, msg)
			}
		}
		return out
	}
}

// loopbackHost reports a host name that stays on this machine.
func loopbackHost(h string) bool { return config.ServerConfig{Host: h}.IsLoopback() }

// placeholderWords appear in sample keys copied from docs.
var placeholderWords = []string{"changeme", "change-me", "change_me", "replace", "example", "placeholder",
	"your-", "your_", "yourkey", "secret", "password", "dummy", "sample", "todo", "xxxx", "default", "insecure"}

func placeholder(k string) bool {
	l := strings.ToLower(k)
	for _, w := range placeholderWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	distinct := map[rune]bool{}
	for _, r := range k {
		distinct[r] = true
	}
	return len(distinct) < 8
}

// originProblem explains why o is not an exact https origin, or "".
func originProblem(o string) string {
	if strings.TrimSpace(o) == "" {
		return "empty origin"
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return "not an origin (want https://host[:port])"
	}
	if u.Scheme != "https" {
		return "scheme must be https"
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "an origin has no path, query, fragment or user info"
	}
	if strings.HasSuffix(o, "/") {
		return "an origin has no trailing slash"
	}
	return ""
}
