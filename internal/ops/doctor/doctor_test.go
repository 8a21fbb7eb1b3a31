package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/app"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeConfig(t *testing.T, dir, extra string, port int) string {
	t.Helper()
	p := filepath.Join(dir, "stacyvm.yaml")
	body := fmt.Sprintf("server:\n  host: 127.0.0.1\n  port: %d\ndata_dir: %s\n%s", port, filepath.Join(dir, "data"), extra)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func find(r *Report, name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name || strings.HasPrefix(r.Checks[i].Name, name) {
			return &r.Checks[i]
		}
	}
	return nil
}

func hostChecks(checks map[string][]provider.HostCheck) func(context.Context, *config.Config, string) []provider.HostCheck {
	return func(_ context.Context, _ *config.Config, name string) []provider.HostCheck { return checks[name] }
}

// TestDoctor_HealthyHostPasses runs doctor against the real Docker engine
// with the locally built images and a fresh, migrated database.
func TestDoctor_HealthyHostPasses(t *testing.T) {
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("no Docker engine")
	}
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, "providers:\n  docker:\n    enabled: true\n", freePort(t))
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "data", "stacyvm.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	rep := Run(context.Background(), Options{File: cfgPath, Home: dir,
		ProviderChecks: app.RuntimeHostChecks, // the real docker host checks
		Images:         DockerImages})
	var buf bytes.Buffer
	rep.Text(&buf)
	if !rep.Passed {
		t.Fatalf("healthy host failed:\n%s", buf.String())
	}
	for _, name := range []string{"docker engine", "runtime runc registered", "integrity_check", "migrations", "image stacyvm/busybox", "disk space", "clock", "port"} {
		if c := find(rep, name); c == nil || c.Status != Pass {
			t.Errorf("check %s = %+v, want PASS\n%s", name, c, buf.String())
		}
	}
}

// TestDoctor_FailuresCarryRemedies breaks each area and checks each failure
// names its fix.
func TestDoctor_FailuresCarryRemedies(t *testing.T) {
	dir := t.TempDir()
	// The port is held by something that is not stacyvm.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cfgPath := writeConfig(t, dir, "providers:\n  default: gvisor\n  docker:\n    enabled: false\n  gvisor:\n    enabled: true\ndefaults:\n  image: stacyvm/no-such-image-doctor-test\n", port)
	// A database file that is not SQLite.
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	os.WriteFile(filepath.Join(dir, "data", "stacyvm.db"), bytes.Repeat([]byte("not sqlite "), 500), 0o600)
	rep := Run(context.Background(), Options{File: cfgPath, Home: dir, Production: true,
		ProviderChecks: hostChecks(map[string][]provider.HostCheck{"gvisor": {
			{Name: "runsc binary", Status: provider.CheckNotInstalled, Detail: "runsc not found", Remedy: "apt-get install runsc"},
		}}),
		Images: DockerImages,
		Now:    func() time.Time { return time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if rep.Passed {
		t.Fatal("a broken host passed")
	}
	for _, name := range []string{"open", "runsc binary", "clock", "port", "SEC001"} {
		c := find(rep, name)
		if c == nil || c.Status != Fail {
			t.Errorf("check %s = %+v, want FAIL", name, c)
		}
	}
	if c := find(rep, "image stacyvm/no-such-image"); c == nil || c.Status != Fail {
		t.Errorf("missing image: %+v", c)
	}
	for _, c := range rep.Checks {
		if c.Status == Fail && c.Remedy == "" {
			t.Errorf("failure without remedy: %+v", c)
		}
	}
	var js bytes.Buffer
	if err := rep.JSON(&js); err != nil || !json.Valid(js.Bytes()) {
		t.Errorf("json: %v", err)
	}
	var md bytes.Buffer
	rep.Markdown(&md)
	if !strings.Contains(md.String(), "| database | open | FAIL |") {
		t.Errorf("markdown lacks the database row:\n%s", md.String())
	}
}

func TestDoctor_UnloadableConfigStops(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("server:\n  prot: 1\n"), 0o600)
	rep := Run(context.Background(), Options{File: p, Home: t.TempDir()})
	if rep.Passed || len(rep.Checks) != 1 || rep.Checks[0].Remedy == "" {
		t.Fatalf("report = %+v", rep)
	}
}

var anchorRE = regexp.MustCompile(`docs/([a-z0-9_-]+\.md)#([a-z0-9-]+)`)

// slug turns a markdown heading into its GitHub anchor.
func slug(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// TestRemedies_DocsAnchorsExist checks every docs anchor that doctor or
// lint can print (found in their sources) is a heading in docs/.
func TestRemedies_DocsAnchorsExist(t *testing.T) {
	root := repoRoot()
	anchors := map[string]map[string]bool{}
	headings := func(doc string) map[string]bool {
		if m, ok := anchors[doc]; ok {
			return m
		}
		m := map[string]bool{}
		b, err := os.ReadFile(filepath.Join(root, "docs", doc))
		if err != nil {
			t.Errorf("docs/%s: %v", doc, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "#") {
				m[slug(strings.TrimLeft(line, "#"))] = true
			}
		}
		anchors[doc] = m
		return m
	}
	n := 0
	for _, dir := range []string{"internal/ops/doctor", "internal/ops/lint", "cmd/stacyvm"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, _ := os.ReadFile(f)
			for _, m := range anchorRE.FindAllStringSubmatch(string(b), -1) {
				n++
				if !headings(m[1])[m[2]] {
					t.Errorf("%s refers to docs/%s#%s, which is not a heading there", filepath.Base(f), m[1], m[2])
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d anchors; the scan is broken", n)
	}
}

func TestDoctor_VMAssetsAndKVM(t *testing.T) {
	dir := t.TempDir()
	assets := filepath.Join(dir, "assets")
	cfgPath := writeConfig(t, dir, "providers:\n  default: vm\n  docker:\n    enabled: false\n  vm:\n    enabled: true\n    accel: kvm\n    assets_dir: "+assets+"\n", freePort(t))
	rep := Run(context.Background(), Options{File: cfgPath, Home: dir, ProviderChecks: hostChecks(nil)})
	for _, name := range []string{"kernel present", "initrd present"} {
		c := find(rep, name)
		if c == nil || c.Status != Fail || !strings.Contains(c.Remedy, "scripts/build-vm-assets.sh") {
			t.Errorf("%s = %+v", name, c)
		}
	}
	os.MkdirAll(assets, 0o755)
	os.WriteFile(filepath.Join(assets, "vmlinux"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(assets, "initrd-base.img"), []byte("initrd"), 0o644)
	rep = Run(context.Background(), Options{File: cfgPath, Home: dir, ProviderChecks: hostChecks(nil)})
	if c := find(rep, "kernel present"); c == nil || c.Status != Pass {
		t.Errorf("kernel present = %+v", c)
	}
	kvm := find(rep, "/dev/kvm access")
	if kvm == nil {
		t.Fatal("no /dev/kvm check")
	}
	if _, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil && kvm.Status != Pass || err != nil && kvm.Status != Fail {
		t.Errorf("/dev/kvm check %+v does not match the host (open err %v)", kvm, err)
	}
}
