package lint

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/config"
)

// repoRoot is the module root (tests run in the package directory).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// exampleConfig copies deploy/stacyvm.production.yaml into a temp dir with
// its key files (the example points at /etc/stacyvm) and returns its path.
func exampleConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "stacyvm.production.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "/etc/stacyvm/", dir+"/")
	s = strings.ReplaceAll(s, "/var/lib/stacyvm", filepath.Join(dir, "data"))
	for name, key := range map[string]string{"api-key": "3f9a1c7e5b2d4f6081a3c5e7f9b1d3e5", "admin-key": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "stacyvm.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLint_ProductionExamplePasses(t *testing.T) {
	rep := Run(Options{File: exampleConfig(t), Production: true, Home: t.TempDir()})
	if !rep.Passed || rep.Warnings != 0 {
		var sb strings.Builder
		rep.Text(&sb)
		t.Fatalf("deploy/stacyvm.production.yaml must pass cleanly:\n%s", sb.String())
	}
	if len(rep.RulesRun) != len(Rules()) {
		t.Errorf("ran %d rules, want %d", len(rep.RulesRun), len(Rules()))
	}
}

func TestLint_DefaultDevelopmentConfigFailsUsefully(t *testing.T) {
	rep := Run(Options{Production: true, Home: t.TempDir(), Env: []string{}})
	if rep.Passed {
		t.Fatal("the default config passed the production lint")
	}
	got := map[string]bool{}
	for _, f := range rep.Findings {
		got[f.Rule] = true
		if f.Remediation == "" || f.Message == "" {
			t.Errorf("finding without message or remediation: %+v", f)
		}
	}
	for _, want := range []string{"SEC001", "SEC004", "SEC008", "LIM003", "OPS001"} {
		if !got[want] {
			t.Errorf("default config: no %s finding", want)
		}
	}
}

func TestLint_UnknownKeysWithLineNumbers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("server:\n  port: 7423\n  prot: 1\nauthh:\n  x: 1\n"), 0o600)
	rep := Run(Options{File: p, Home: t.TempDir()})
	var lines []int
	for _, f := range rep.Findings {
		if f.Rule == RuleUnknownKey {
			lines = append(lines, f.Line)
		}
	}
	if len(lines) != 2 || lines[0] != 3 || lines[1] != 4 {
		t.Fatalf("unknown key lines = %v, want [3 4]; findings %+v", lines, rep.Findings)
	}
	if rep.Passed {
		t.Error("a file with unknown keys passed")
	}
}

func TestLint_EnvironmentCounts(t *testing.T) {
	p := exampleConfig(t)
	rep := Run(Options{File: p, Production: true, Home: t.TempDir(), Env: []string{"STACYVM_PROVIDERS_MOCK_ENABLED=true"}})
	found := false
	for _, f := range rep.Findings {
		found = found || f.Rule == "RT008"
	}
	if !found {
		t.Fatal("STACYVM_PROVIDERS_MOCK_ENABLED=true did not trip RT008: lint must see the service's environment")
	}
}

// ruleCases break exactly one rule each, starting from a clean production
// config. Every rule must have a case (TestRules_EveryRuleHasACase).
var ruleCases = map[string]func(c *config.Config){
	"SEC001": func(c *config.Config) { c.Auth.APIKey, c.Auth.AdminAPIKey = "", "" },
	"SEC002": func(c *config.Config) { c.Auth.AdminAPIKey = c.Auth.APIKey },
	"SEC003": func(c *config.Config) { c.Auth.APIKey = "k3y-Short-9x8w7v6u" },
	"SEC004": func(c *config.Config) { c.Auth.AdminAPIKey = "" },
	"SEC005": func(c *config.Config) { c.Auth.APIKey = "changeme-changeme-changeme-changeme" },
	"SEC006": func(c *config.Config) { c.Auth.AdminFallbackEnabled = true },
	"SEC007": func(c *config.Config) { c.Auth.AdminAuditRetention = 0 },
	"SEC008": func(c *config.Config) { c.Auth.RateLimitPerSecond = 0 },
	"SEC009": func(c *config.Config) { c.Auth.OIDCIssuer = "https://id.example.com"; c.Auth.OIDCAudience = "" },
	"SEC010": func(c *config.Config) { c.Server.CORSAllowedOrigins = []string{"*"} },
	"SEC011": func(c *config.Config) { c.Server.CORSAllowedOrigins = []string{"http://app.example.com"} },
	"SEC012": func(c *config.Config) { c.Server.Mode = config.ModeDevelopment },
	"LIM001": func(c *config.Config) { c.Defaults.MaxTTL = 0 },
	"LIM002": func(c *config.Config) { c.Defaults.MaxExecTimeout = 0 },
	"LIM003": func(c *config.Config) { c.Defaults.MaxSandboxes = 0 },
	"LIM004": func(c *config.Config) { c.Defaults.MaxSandboxesPerOwner = 0 },
	"RT001":  func(c *config.Config) { c.Providers.Gvisor.Runtime = "" },
	"RT002":  func(c *config.Config) { c.Providers.Gvisor.Runtime = "runc" },
	"RT003":  func(c *config.Config) { c.Providers.Gvisor.NetworkMode = "host" },
	"RT004":  func(c *config.Config) { c.Providers.Gvisor.PidsLimit = 0 },
	"RT005":  func(c *config.Config) { c.Providers.Gvisor.MemoryMB = 0 },
	"RT006":  func(c *config.Config) { c.Providers.Gvisor.CPUs = 0 },
	"RT007":  func(c *config.Config) { c.Providers.Gvisor.SeccompProfile = "unconfined" },
	"RT008":  func(c *config.Config) { c.Providers.Mock.Enabled = true },
	"RT009":  func(c *config.Config) { c.Providers.Proot.Enabled = true },
	"RT010": func(c *config.Config) {
		c.Providers.VM.Enabled, c.Providers.VM.Accel, c.Providers.VM.VCPUs = true, "kvm", 0
	},
	"RT011":  func(c *config.Config) { c.Providers.VM.Enabled, c.Providers.VM.Accel = true, "auto" },
	"OPS001": func(c *config.Config) { c.Logging.Format = "text" },
	"OPS002": func(c *config.Config) { c.Providers.Gvisor.Pull = config.PullMissing },
	"OPS003": func(c *config.Config) {
		c.Tracing.Enabled, c.Tracing.Endpoint, c.Tracing.Headers = true, "http://otel:4318/v1/traces", "authorization=Bearer%20t"
	},
	"OPS004": func(c *config.Config) { c.Tracing.Enabled, c.Tracing.Endpoint = true, "http://otel:4318/v1/traces" },
	"NET001": func(c *config.Config) {
		c.Providers.Custom = config.CustomConfig{Enabled: true, URL: "http://worker-1.internal:7424", Token: "5b8e2f71c9a04d36e1f7b2a8c5d09e43"}
	},
	"NET002": func(c *config.Config) {
		c.Providers.Custom = config.CustomConfig{Enabled: true, URL: "http://127.0.0.1:7424", Token: "w0rk-Tok3n-9x"}
	},
	"NET003": func(c *config.Config) {
		c.Worker.Host, c.Worker.Token = "0.0.0.0", "5b8e2f71c9a04d36e1f7b2a8c5d09e43"
	},
	"DB001": func(c *config.Config) {
		c.Database.Driver, c.Database.DSN = config.DriverPostgres, "host=db.internal dbname=stacyvm user=stacyvm password=pw"
	},
}

func TestRules_EveryRuleHasACase(t *testing.T) {
	ids := map[string]bool{}
	for _, r := range Rules() {
		if ids[r.ID] {
			t.Errorf("duplicate rule id %s", r.ID)
		}
		ids[r.ID] = true
		if r.Remediation == "" || r.Title == "" || (r.Severity != Error && r.Severity != Warning && r.Severity != Info) {
			t.Errorf("rule %s lacks a title, remediation or severity", r.ID)
		}
		if _, ok := ruleCases[r.ID]; !ok {
			t.Errorf("rule %s has no test case in ruleCases", r.ID)
		}
	}
	for id := range ruleCases {
		if !ids[id] {
			t.Errorf("ruleCases has %s, which is not a rule", id)
		}
	}
}

// TestRules_EachFiresAlone breaks one rule at a time and checks that rule,
// and only that rule, fires.
func TestRules_EachFiresAlone(t *testing.T) {
	base, err := config.Load(config.LoadOptions{File: exampleConfig(t), Home: t.TempDir(), Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if f := Check(base); len(f) != 0 {
		t.Fatalf("the base config has findings: %+v", f)
	}
	for id, breakIt := range ruleCases {
		t.Run(id, func(t *testing.T) {
			c := *base
			c.Server.CORSAllowedOrigins = append([]string(nil), base.Server.CORSAllowedOrigins...)
			breakIt(&c)
			fs := Check(&c)
			if len(fs) == 0 {
				t.Fatalf("rule %s did not fire", id)
			}
			for _, f := range fs {
				if f.Rule != id && !(id == "SEC001" && f.Rule == "SEC004") && !(id == "SEC005" && f.Rule == "SEC002") {
					t.Errorf("breaking %s also fired %s: %s", id, f.Rule, f.Message)
				}
			}
		})
	}
}

// TestDeploy_SystemdUnitVerifies checks deploy/stacyvm.service parses
// cleanly (systemd-analyze verify, with the binary path swapped for one that
// exists) and keeps its hardening directives.
func TestDeploy_SystemdUnitVerifies(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "stacyvm.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, d := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"PrivateDevices=yes", "CapabilityBoundingSet=\n", "RestrictSUIDSGID=yes", "SystemCallFilter=@system-service",
		"ExecStartPre=/usr/local/bin/stacyvm config lint --production"} {
		if !strings.Contains(unit, d) {
			t.Errorf("unit lacks %q", d)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	p := filepath.Join(t.TempDir(), "stacyvm.service")
	os.WriteFile(p, []byte(strings.ReplaceAll(unit, "/usr/local/bin/stacyvm", "/bin/true")), 0o644)
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestLint_TracingExportRules(t *testing.T) {
	cases := []struct {
		name     string
		env      []string
		wantRule string // "" = neither tracing rule fires
	}{
		{"disabled", nil, ""},
		{"loopback http", []string{"STACYVM_TRACING_ENABLED=true", "STACYVM_TRACING_ENDPOINT=http://127.0.0.1:4318/v1/traces"}, ""},
		{"remote https with token", []string{"STACYVM_TRACING_ENABLED=true", "STACYVM_TRACING_ENDPOINT=https://otel.example/v1/traces", "STACYVM_TRACING_HEADERS=authorization=Bearer%20t"}, ""},
		{"remote http", []string{"STACYVM_TRACING_ENABLED=true", "STACYVM_TRACING_ENDPOINT=http://otel-collector:4318/v1/traces"}, "OPS004"},
		{"remote http with token", []string{"STACYVM_TRACING_ENABLED=true", "STACYVM_TRACING_ENDPOINT=http://otel-collector:4318/v1/traces", "STACYVM_TRACING_HEADERS=authorization=Bearer%20t"}, "OPS003"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := Run(Options{File: exampleConfig(t), Production: true, Home: t.TempDir(), Env: c.env})
			var got []string
			for _, f := range rep.Findings {
				if f.Rule == "OPS003" || f.Rule == "OPS004" {
					got = append(got, f.Rule)
					if strings.Contains(f.Message, "Bearer") {
						t.Errorf("finding quotes the header value: %s", f.Message)
					}
				}
			}
			want := []string{}
			if c.wantRule != "" {
				want = []string{c.wantRule}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("tracing findings %v, want %v", got, want)
			}
		})
	}
}

// TestRules_RemoteTransportsPassWhenSafe: the transport rules stay quiet
// for the safe shapes (TLS, loopback, Unix sockets), so they only fire on
// a clear-text hop that leaves the host.
func TestRules_RemoteTransportsPassWhenSafe(t *testing.T) {
	base, err := config.Load(config.LoadOptions{File: exampleConfig(t), Home: t.TempDir(), Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	const tok = "5b8e2f71c9a04d36e1f7b2a8c5d09e43"
	safe := map[string]func(c *config.Config){
		"custom over https": func(c *config.Config) {
			c.Providers.Custom = config.CustomConfig{Enabled: true, URL: "https://worker-1.internal:7424", Token: tok, CAFile: "/etc/stacyvm/ca.pem"}
		},
		"custom on loopback": func(c *config.Config) {
			c.Providers.Custom = config.CustomConfig{Enabled: true, URL: "http://127.0.0.1:7424", Token: tok}
		},
		"worker on loopback": func(c *config.Config) { c.Worker.Host, c.Worker.Token = "127.0.0.1", tok },
		"worker with mTLS": func(c *config.Config) {
			c.Worker.Host, c.Worker.Token = "0.0.0.0", tok
			c.Worker.TLSCertFile, c.Worker.TLSKeyFile, c.Worker.ClientCAFile = "/w.pem", "/w.key", "/ca.pem"
		},
		"postgres verify-full": func(c *config.Config) {
			c.Database.Driver, c.Database.DSN = config.DriverPostgres, "postgres://stacyvm:pw@db.internal/stacyvm?sslmode=verify-full"
		},
		"postgres unix socket": func(c *config.Config) {
			c.Database.Driver, c.Database.DSN = config.DriverPostgres, "host=/var/run/postgresql dbname=stacyvm"
		},
		"postgres loopback": func(c *config.Config) {
			c.Database.Driver, c.Database.DSN = config.DriverPostgres, "host=127.0.0.1 dbname=stacyvm sslmode=disable"
		},
	}
	for name, set := range safe {
		t.Run(name, func(t *testing.T) {
			c := *base
			set(&c)
			if fs := Check(&c); len(fs) != 0 {
				t.Errorf("findings on a safe shape: %+v", fs)
			}
		})
	}
}
