// Package deploy_test checks the deployment artifacts in this directory
// against the code: the compose file, the Dockerfile, the systemd unit and
// the production config must agree with each other and with the CLI, and the
// config they mount must pass `stacyvm config lint --production`.
package deploy_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/ops/lint"
)

// compose is the part of the Compose file format the tests read.
type compose struct {
	Services map[string]struct {
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Ports   []string `yaml:"ports"`
		Volumes []struct {
			Type     string `yaml:"type"`
			Source   string `yaml:"source"`
			Target   string `yaml:"target"`
			ReadOnly bool   `yaml:"read_only"`
		} `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck struct {
			Test     []string `yaml:"test"`
			Interval string   `yaml:"interval"`
			Timeout  string   `yaml:"timeout"`
			Retries  int      `yaml:"retries"`
		} `yaml:"healthcheck"`
		StopGracePeriod string `yaml:"stop_grace_period"`
	} `yaml:"services"`
}

const composeFile = "docker-compose.yml"

func loadCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yamlv3.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	if _, ok := c.Services["stacyvm"]; !ok || len(c.Services) != 1 {
		t.Fatalf("%s: services %v, want exactly stacyvm", composeFile, c.Services)
	}
	return c
}

// mountedConfig returns the host file mounted at the --config path of the
// service's command, relative to this directory.
func mountedConfig(t *testing.T, c compose) (hostPath, containerPath string) {
	t.Helper()
	svc := c.Services["stacyvm"]
	i := slices.Index(svc.Command, "--config")
	if i < 0 || i+1 >= len(svc.Command) {
		t.Fatalf("command %q has no --config PATH", svc.Command)
	}
	containerPath = svc.Command[i+1]
	for _, v := range svc.Volumes {
		if v.Target == containerPath {
			return v.Source, containerPath
		}
	}
	t.Fatalf("no volume mounts the config path %s", containerPath)
	return "", ""
}

func TestCompose_ServesWithTheSocketDataDirConfigAndHealthcheck(t *testing.T) {
	c := loadCompose(t)
	svc := c.Services["stacyvm"]

	if want := []string{"serve", "--config", "/etc/stacyvm/stacyvm.yaml"}; !slices.Equal(svc.Command, want) {
		t.Errorf("command %q, want %q", svc.Command, want)
	}
	vols := map[string]string{} // target -> source
	for _, v := range svc.Volumes {
		if v.Type != "bind" {
			t.Errorf("volume %s -> %s is %q, want bind (paths must match the host: the host's engine mounts them into sandboxes)", v.Source, v.Target, v.Type)
		}
		vols[v.Target] = v.Source
	}
	if vols["/var/run/docker.sock"] != "/var/run/docker.sock" {
		t.Errorf("the Docker socket is not mounted (volumes %v)", vols)
	}

	host, target := mountedConfig(t, c)
	if filepath.IsAbs(host) || strings.Contains(host, "..") {
		t.Fatalf("config source %q, want a file of deploy/", host)
	}
	if _, err := os.Stat(host); err != nil {
		t.Fatalf("mounted config %s: %v", host, err)
	}
	// The file's own values (Load would read the key files, which exist
	// only on the target host; the lint test below loads it for real).
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default(t.TempDir(), true)
	if err := yamlv3.Unmarshal(b, cfg); err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	if vols[cfg.DataDir] != cfg.DataDir {
		t.Errorf("data_dir %s is mounted from %q, want the same host path", cfg.DataDir, vols[cfg.DataDir])
	}
	for _, f := range []string{cfg.Auth.APIKeyFile, cfg.Auth.AdminAPIKeyFile, cfg.Auth.ViewerAPIKeyFile} {
		if f != "" && vols[f] == "" {
			t.Errorf("the config reads %s, which no volume mounts", f)
		}
	}
	if target != "/etc/stacyvm/stacyvm.yaml" {
		t.Errorf("config mounted at %s", target)
	}

	hc := strings.Join(svc.Healthcheck.Test, " ")
	if !strings.Contains(hc, "http://127.0.0.1:7423/api/v1/live") || svc.Healthcheck.Interval == "" || svc.Healthcheck.Retries < 1 {
		t.Errorf("healthcheck %+v, want a GET of /api/v1/live on port %d with an interval and retries", svc.Healthcheck, cfg.Server.Port)
	}
	if cfg.Server.Port != 7423 || !slices.Contains(svc.Ports, "127.0.0.1:7423:7423") {
		t.Errorf("ports %v with server.port %d, want 127.0.0.1:7423:7423 (loopback; TLS proxy in front)", svc.Ports, cfg.Server.Port)
	}
	grace, err := time.ParseDuration(svc.StopGracePeriod)
	if err != nil || grace <= cfg.Server.ShutdownTimeout.Std() {
		t.Errorf("stop_grace_period %q, want longer than server.shutdown_timeout %s", svc.StopGracePeriod, cfg.Server.ShutdownTimeout)
	}
	if svc.Build.Dockerfile != "../deploy/Dockerfile" || svc.Build.Context != "../bin" {
		t.Errorf("build %+v, want context ../bin and dockerfile ../deploy/Dockerfile", svc.Build)
	}
}

// TestCompose_MountedConfigPassesProductionLint runs `config lint
// --production` on the mounted config with the service's environment, the
// key files standing in for the host's.
func TestCompose_MountedConfigPassesProductionLint(t *testing.T) {
	c := loadCompose(t)
	host, _ := mountedConfig(t, c)
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := strings.ReplaceAll(string(b), "/etc/stacyvm/", dir+"/")
	s = strings.ReplaceAll(s, "/var/lib/stacyvm", filepath.Join(dir, "data"))
	for name, key := range map[string]string{"api-key": "5d1c9e7a3b2f4068a1c3e5f7092b4d6e", "admin-key": "e7c5a3f1d9b2046c8a1e3f5d7b9c0a2e"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "stacyvm.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := lint.Run(lint.Options{File: p, Env: envList(c.Services["stacyvm"].Environment), Home: t.TempDir(), Production: true})
	if !rep.Passed || rep.Warnings != 0 {
		var sb strings.Builder
		rep.Text(&sb)
		t.Fatalf("the compose service's config must pass the production lint cleanly:\n%s", sb.String())
	}
}

// TestArtifacts_AgreeOnPathsAndCommand: the Dockerfile's default command,
// the compose command and the systemd unit run the same serve with the same
// config path, and the unit lints that config first.
func TestArtifacts_AgreeOnPathsAndCommand(t *testing.T) {
	c := loadCompose(t)
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := json.Marshal(c.Services["stacyvm"].Command)
	if !strings.Contains(string(df), "CMD "+strings.ReplaceAll(string(cmd), ",", ", ")) {
		t.Errorf("Dockerfile CMD differs from the compose command %s", cmd)
	}
	if !strings.Contains(string(df), "/api/v1/live") || !strings.Contains(string(df), "FROM stacyvm/busybox") {
		t.Errorf("Dockerfile lacks the local base image or the /api/v1/live healthcheck")
	}
	unit, err := os.ReadFile("stacyvm.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=/usr/local/bin/stacyvm serve --config /etc/stacyvm/stacyvm.yaml",
		"ExecStartPre=/usr/local/bin/stacyvm config lint --production --config /etc/stacyvm/stacyvm.yaml",
		"ReadWritePaths=/var/lib/stacyvm",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("stacyvm.service lacks %q", want)
		}
	}
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// TestDockerfile_Builds builds the image from deploy/Dockerfile with a
// unique label, checks the binary runs in it and the healthcheck is set,
// and removes it. It needs a Docker engine and the local stacyvm/busybox
// image: skipped without them, failed with CI=true.
func TestDockerfile_Builds(t *testing.T) {
	need := func(what string, err error) {
		t.Helper()
		if err == nil {
			return
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v", what, err)
		}
		t.Skipf("%s: %v", what, err)
	}
	need("docker engine", exec.Command("docker", "info", "--format", "{{.ServerVersion}}").Run())
	need("image stacyvm/busybox (scripts/build-images.sh)", exec.Command("docker", "image", "inspect", "stacyvm/busybox").Run())

	ctxDir := t.TempDir()
	bin := filepath.Join(ctxDir, "stacyvm")
	if src := os.Getenv("STACYVM_BIN"); src != "" {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		build := exec.Command("go", "build", "-o", bin, "./cmd/stacyvm")
		build.Dir = ".."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}

	var rb [6]byte
	_, _ = rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	tag := "stacyvm-deploy-test:" + id
	label := "stacyvm.deploy-test=" + id
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "image", "rm", "-f", tag).CombinedOutput(); err != nil {
			t.Logf("removing %s: %v %s", tag, err, out)
		}
	})
	dockerfile, err := filepath.Abs("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "build", "-q", "-f", dockerfile, "--label", label, "-t", tag, ctxDir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	out, err := exec.Command("docker", "image", "ls", "-q", "--filter", "label="+label).Output()
	if err != nil || len(strings.Fields(string(out))) != 1 {
		t.Fatalf("images labelled %s: %q (%v), want exactly one", label, out, err)
	}
	out, err = exec.Command("docker", "run", "--rm", tag, "version").CombinedOutput()
	if err != nil || !strings.Contains(strings.ToLower(string(out)), "stacyvm") {
		t.Fatalf("stacyvm version in the image: %v %s", err, out)
	}
	out, err = exec.Command("docker", "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}} {{json .Config.Entrypoint}}", tag).Output()
	if err != nil || !strings.Contains(string(out), "/api/v1/live") || !strings.Contains(string(out), `["/usr/local/bin/stacyvm"]`) {
		t.Errorf("image healthcheck and entrypoint: %s (%v)", out, err)
	}
}
