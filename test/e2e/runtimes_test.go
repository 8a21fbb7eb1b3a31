package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/provider/proot"
)

// requireRuntimes skips (fails under CI=true) unless gVisor's runtime is
// registered with the engine and proot is installed.
func requireRuntimes(t *testing.T) {
	t.Helper()
	var missing []string
	out, _ := exec.Command("docker", "info", "--format", "{{json .Runtimes}}").Output()
	if !strings.Contains(string(out), `"runsc"`) {
		missing = append(missing, "the runsc runtime is not registered with Docker")
	}
	if _, err := exec.LookPath("proot"); err != nil {
		missing = append(missing, "proot is not installed")
	}
	if len(missing) == 0 {
		return
	}
	msg := strings.Join(missing, "; ") + " (run scripts/ci-prepare.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; set CI=true to make this a failure")
}

type providerJSON struct {
	Name             string   `json:"name"`
	Healthy          bool     `json:"healthy"`
	Error            string   `json:"error"`
	Isolation        string   `json:"isolation"`
	SecurityBoundary bool     `json:"security_boundary"`
	Capabilities     []string `json:"capabilities"`
}

// TestRuntimes_EveryProviderListedAndSelectable runs one server with the
// docker, gvisor, kata (not installed here) and proot providers: each is
// listed with health and isolation, "provider" selects it per request, an
// unconfigured name is a 400 listing the configured ones, and the
// unhealthy one answers 503 at once.
func TestRuntimes_EveryProviderListedAndSelectable(t *testing.T) {
	requireRuntimes(t)
	s := startServer(t, "",
		"STACYVM_PROVIDERS_GVISOR_ENABLED=true", "STACYVM_PROVIDERS_GVISOR_PULL=never",
		"STACYVM_PROVIDERS_KATA_ENABLED=true", "STACYVM_PROVIDERS_KATA_PULL=never",
		"STACYVM_PROVIDERS_PROOT_ENABLED=true",
	)
	// Unlike containers, proot sandboxes have no engine to find them once
	// the data dir is gone: remove whatever a failed subtest left.
	t.Cleanup(func() { proot.RemoveAll(context.Background(), filepath.Join(s.dataDir, "proot")) })
	kataInstalled := false
	if _, err := exec.LookPath("containerd-shim-kata-v2"); err == nil {
		kataInstalled = true
	}

	var ps []providerJSON
	if code, data := s.call("GET", "/providers", nil, &ps); code != 200 {
		t.Fatalf("GET /providers: %d %s", code, data)
	}
	byName := map[string]providerJSON{}
	for _, p := range ps {
		byName[p.Name] = p
	}
	for name, want := range map[string]struct {
		iso      string
		boundary bool
		healthy  bool
	}{
		"docker": {"container", true, true},
		"gvisor": {"userspace", true, true},
		"kata":   {"microvm", true, kataInstalled},
		"proot":  {"userspace", false, true},
	} {
		p, ok := byName[name]
		switch {
		case !ok:
			t.Errorf("GET /providers lacks %s: %+v", name, ps)
		case p.Isolation != want.iso || p.SecurityBoundary != want.boundary || p.Healthy != want.healthy:
			t.Errorf("%s = %+v, want isolation %s, boundary %t, healthy %t", name, p, want.iso, want.boundary, want.healthy)
		case !p.Healthy && p.Error == "":
			t.Errorf("unhealthy %s has no error text", name)
		}
	}

	// Per-request selection: the sandbox really runs on the runtime.
	for name, probe := range map[string]struct{ cmd, want string }{
		"gvisor": {"dmesg | head -1", "gVisor"},
		"proot":  {"grep -c 'TracerPid:[[:space:]]*[1-9]' /proc/self/status", "1"},
		"docker": {"cat /proc/1/cmdline | tr '\\0' ' '", "stacyvm-agent"},
	} {
		t.Run(name, func(t *testing.T) {
			sb := s.spawn(map[string]any{"provider": name, "image": "stacyvm/busybox", "ttl": "5m"})
			t.Cleanup(func() { s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil) })
			if sb.Provider != name || sb.State != "running" {
				t.Fatalf("spawned %+v, want running on %s", sb, name)
			}
			if r := s.exec(sb.ID, probe.cmd); !strings.Contains(r.Stdout, probe.want) {
				t.Errorf("%q on %s = %+v, want %q in stdout", probe.cmd, name, r, probe.want)
			}
			if code, data := s.call("POST", "/sandboxes/"+sb.ID+"/files", map[string]any{"path": "/workspace/x.txt", "content": "via-api"}, nil); code != 200 {
				t.Fatalf("write file: %d %s", code, data)
			}
			if r := s.exec(sb.ID, "cat /workspace/x.txt"); r.Stdout != "via-api" {
				t.Errorf("exec sees %q, want the file written through the API", r.Stdout)
			}
		})
	}

	t.Run("UnconfiguredProviderIs400", func(t *testing.T) {
		code, data := s.call("POST", "/sandboxes", map[string]any{"provider": "firecracker"}, nil)
		wantError(t, "spawn on firecracker", code, data, 400, "BAD_REQUEST")
		for _, n := range []string{"docker", "gvisor", "kata", "proot"} {
			if !strings.Contains(string(data), n) {
				t.Errorf("400 body %s does not list %s", data, n)
			}
		}
	})
	t.Run("UnhealthyProviderIs503Fast", func(t *testing.T) {
		if kataInstalled {
			t.Skip("kata is installed here")
		}
		start := time.Now()
		code, data := s.call("POST", "/sandboxes", map[string]any{"provider": "kata", "image": "stacyvm/busybox"}, nil)
		wantError(t, "spawn on kata", code, data, 503, "UNAVAILABLE")
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("503 took %v, want < 3s", el)
		}
		if !strings.Contains(string(data), "kata") {
			t.Errorf("503 body %s does not name the runtime", data)
		}
	})
	t.Run("ProotRefusesNetworkModes", func(t *testing.T) {
		code, data := s.call("POST", "/sandboxes", map[string]any{"provider": "proot", "network": "bridge"}, nil)
		wantError(t, "proot with bridge", code, data, 400, "BAD_REQUEST")
	})
}

// TestCertifyRuntime runs the real certify command: docker, gvisor and
// proot pass their live subset here; kata and firecracker are NOT
// INSTALLED, never PASS; a bad runtime name is a usage error.
func TestCertifyRuntime(t *testing.T) {
	requireRuntimes(t)
	out := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(binPath, "certify", "runtime", "all", "--format", "json", "--output", out)
	cmd.Env = os.Environ()
	stderr, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("certify: %v", err)
	}
	b, rerr := os.ReadFile(out)
	if rerr != nil {
		t.Fatalf("no report (%v): %s", rerr, stderr)
	}
	var rep struct {
		Status   string `json:"status"`
		Runtimes []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
			Live   []struct {
				Name, Status, Detail string
			} `json:"live"`
			Timings map[string]int64 `json:"timings_ms"`
		} `json:"runtimes"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("decode report: %v\n%s", err, b)
	}
	failed := false
	for _, rr := range rep.Runtimes {
		t.Logf("%s: %s %v", rr.Name, rr.Status, rr.Timings)
		switch rr.Name {
		case "docker", "gvisor", "proot":
			if rr.Status != "PASS" || len(rr.Live) < 7 {
				t.Errorf("%s = %s with %d live checks, want PASS: %+v", rr.Name, rr.Status, len(rr.Live), rr.Live)
			}
		case "kata", "firecracker":
			if rr.Status != "NOT INSTALLED" {
				t.Errorf("%s = %s, want NOT INSTALLED on this host", rr.Name, rr.Status)
			}
		}
		failed = failed || rr.Status == "FAIL"
	}
	if code := cmd.ProcessState.ExitCode(); (code != 0) != failed {
		t.Errorf("exit code %d with failed=%t; want non-zero exactly when something FAILs", code, failed)
	}
	if len(rep.Runtimes) != 6 {
		t.Errorf("report has %d runtimes, want 6", len(rep.Runtimes))
	}

	bad := exec.Command(binPath, "certify", "runtime", "lxc")
	if out, err := bad.CombinedOutput(); !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "unknown runtime") {
		t.Errorf("certify runtime lxc: %v %s, want exit 2 naming the unknown runtime", err, out)
	}
}

// TestRuntimes_SandboxesSurviveServerCrash: gvisor and proot sandboxes keep
// running when the server is killed, and the restarted server (reconcile on
// start) serves them again and can destroy them.
func TestRuntimes_SandboxesSurviveServerCrash(t *testing.T) {
	requireRuntimes(t)
	s := startServer(t, "",
		"STACYVM_PROVIDERS_GVISOR_ENABLED=true", "STACYVM_PROVIDERS_GVISOR_PULL=never",
		"STACYVM_PROVIDERS_PROOT_ENABLED=true",
	)
	t.Cleanup(func() { proot.RemoveAll(context.Background(), filepath.Join(s.dataDir, "proot")) })
	ids := map[string]string{}
	for _, name := range []string{"gvisor", "proot"} {
		sb := s.spawn(map[string]any{"provider": name, "image": "stacyvm/busybox", "ttl": "10m"})
		ids[name] = sb.ID
		if r := s.exec(sb.ID, "echo before > /workspace/mark"); r.ExitCode != 0 {
			t.Fatalf("%s exec: %+v", name, r)
		}
	}
	s.kill()
	s.start()
	for name, id := range ids {
		var sb sandboxJSON
		if code, data := s.call("GET", "/sandboxes/"+id, nil, &sb); code != 200 || sb.State != "running" {
			t.Errorf("%s sandbox after restart: %d %s, want running", name, code, data)
			continue
		}
		if r := s.exec(id, "cat /workspace/mark"); r.Stdout != "before\n" {
			t.Errorf("%s exec after restart = %+v, want the file written before the crash", name, r)
		}
		if code, data := s.call("DELETE", "/sandboxes/"+id, nil, nil); code != 200 {
			t.Errorf("%s destroy after restart: %d %s", name, code, data)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.dataDir, "proot", "sb")); len(ents) != 0 {
		t.Errorf("proot sandbox dirs left after destroy: %d", len(ents))
	}
}
