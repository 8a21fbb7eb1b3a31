package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// TestWorkerE2E_ServeThroughWorker builds the real binaries, starts
// `stacyvm worker` (docker) and `stacyvm serve` with providers.custom
// pointing at it, and runs a spawn / exec / file round trip through the
// public API. Docker is required; without it the test skips, or fails
// under CI=true.
func TestWorkerE2E_ServeThroughWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts containers")
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker unavailable and CI=true: %v\n%s", err, out)
		}
		t.Skipf("docker unavailable (%v); set CI=true to make this a failure", err)
	}
	bin := shortDir(t, "svb-")
	for _, b := range []struct{ out, pkg string }{
		{"stacyvm", "github.com/stacyvm/stacyvm/cmd/stacyvm"},
		{"stacyvm-agent", "github.com/stacyvm/stacyvm/cmd/stacyvm-agent"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	const token = "e2e-worker-token"
	workerData := shortDir(t, "svw-")
	workerPort := freeTCPPort(t)
	startProcess(t, filepath.Join(bin, "stacyvm"), []string{"worker"}, workerData, []string{
		"STACYVM_DATA_DIR=" + workerData,
		fmt.Sprintf("STACYVM_WORKER_PORT=%d", workerPort),
		"STACYVM_WORKER_TOKEN=" + token,
		"STACYVM_PROVIDERS_DOCKER_PULL=never",
	})
	t.Cleanup(func() { removeWorkerContainers(t, filepath.Join(workerData, "worker", "server-id")) })
	workerURL := fmt.Sprintf("http://127.0.0.1:%d", workerPort)
	waitHTTP(t, workerURL+"/v1/info", "Bearer "+token)

	serveData := shortDir(t, "svs-")
	servePort := freeTCPPort(t)
	startProcess(t, filepath.Join(bin, "stacyvm"), []string{"serve"}, serveData, []string{
		"STACYVM_DATA_DIR=" + serveData,
		fmt.Sprintf("STACYVM_SERVER_PORT=%d", servePort),
		"STACYVM_PROVIDERS_DEFAULT=custom",
		"STACYVM_PROVIDERS_DOCKER_PULL=never", // the docker provider stays on, for a direct comparison
		"STACYVM_PROVIDERS_CUSTOM_ENABLED=true",
		"STACYVM_PROVIDERS_CUSTOM_URL=" + workerURL,
		"STACYVM_PROVIDERS_CUSTOM_TOKEN=" + token,
	})
	t.Cleanup(func() { removeWorkerContainers(t, filepath.Join(serveData, "server-id")) })
	serverURL := fmt.Sprintf("http://127.0.0.1:%d", servePort)
	waitHTTP(t, serverURL+"/api/v1/health", "")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := apiclient.New(serverURL, "")

	// GET /providers lists custom with the worker's isolation.
	type providerJSON struct {
		Name      string `json:"name"`
		Healthy   bool   `json:"healthy"`
		Default   bool   `json:"default"`
		Isolation string `json:"isolation"`
		Boundary  bool   `json:"security_boundary"`
	}
	var provs []providerJSON
	getJSON(t, serverURL+"/api/v1/providers", &provs)
	i := slices.IndexFunc(provs, func(p providerJSON) bool { return p.Name == "custom" })
	if i < 0 || !provs[i].Healthy || !provs[i].Default || provs[i].Isolation != "container" || !provs[i].Boundary {
		t.Errorf("GET /providers = %+v, want custom healthy, default, isolation container, a boundary", provs)
	}

	sb, err := c.Spawn(ctx, apiclient.SpawnRequest{Image: "stacyvm/busybox", TTL: "10m"})
	if err != nil {
		t.Fatalf("spawn through the worker: %v", err)
	}
	if sb.Provider != "custom" {
		t.Errorf("sandbox provider = %q, want custom", sb.Provider)
	}
	res, err := c.Exec(ctx, sb.ID, apiclient.ExecRequest{Command: "echo hello from $(hostname) && echo err >&2; exit 3"})
	if err != nil || res.ExitCode != 3 || !strings.HasPrefix(res.Stdout, "hello from ") || res.Stderr != "err\n" {
		t.Errorf("exec through the worker = %+v, %v; want stdout hello, stderr err, exit 3", res, err)
	}
	payload := bytes.Repeat([]byte("stacyvm\x00\xff"), 100_000) // ~1 MB, binary
	if err := c.WriteFile(ctx, sb.ID, "/workspace/data.bin", payload, "0644"); err != nil {
		t.Fatalf("write file through the worker: %v", err)
	}
	got, err := c.ReadFile(ctx, sb.ID, "/workspace/data.bin")
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("read file back: %d bytes, %v; want the %d bytes written", len(got), err, len(payload))
	}
	if res, err := c.Exec(ctx, sb.ID, apiclient.ExecRequest{Command: "wc -c < /workspace/data.bin"}); err != nil || strings.TrimSpace(res.Stdout) != fmt.Sprint(len(payload)) {
		t.Errorf("file size seen in the sandbox = %+v, %v; want %d", res, err, len(payload))
	}

	// Exec latency through the API: custom (server -> worker -> agent)
	// against docker (server -> agent) on the same host.
	direct, err := c.Spawn(ctx, apiclient.SpawnRequest{Image: "stacyvm/busybox", Provider: "docker", TTL: "10m"})
	if err != nil {
		t.Fatalf("spawn on docker: %v", err)
	}
	p50 := func(id string) time.Duration {
		var ds []time.Duration
		for range 30 {
			start := time.Now()
			if _, err := c.Exec(ctx, id, apiclient.ExecRequest{Command: "true"}); err != nil {
				t.Fatalf("exec: %v", err)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	p50(sb.ID)
	viaWorker, viaDocker := p50(sb.ID), p50(direct.ID)
	t.Logf("API exec `true` p50 over 30: docker %v, custom through the worker %v (+%v)", viaDocker, viaWorker, viaWorker-viaDocker)

	for _, id := range []string{sb.ID, direct.ID} {
		if err := c.Destroy(ctx, id); err != nil {
			t.Errorf("destroy %s: %v", id, err)
		}
	}
	if _, err := c.Exec(ctx, sb.ID, apiclient.ExecRequest{Command: "true"}); err == nil {
		t.Errorf("exec after destroy succeeded")
	}
}

// shortDir is a temp dir short enough for unix socket paths under it.
func shortDir(t *testing.T, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs bin with a clean environment (HOME in dir) and stops it
// by its pid (SIGTERM, then SIGKILL) at cleanup. Its output is logged on
// failure.
func startProcess(t *testing.T, bin string, args []string, dir string, env []string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}, env...)
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		cmd.Env = append(cmd.Env, "DOCKER_HOST="+h)
	}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s %v: %v", bin, args, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s %v output:\n%s", filepath.Base(bin), args, out.String())
		}
	})
}

// waitHTTP polls url until it answers 200, for at most 30 s.
func waitHTTP(t *testing.T, url, auth string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 30s (last: %v)", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// removeWorkerContainers removes whatever a worker or server (identified by
// its server-id file) left behind, by label.
func removeWorkerContainers(t *testing.T, idFile string) {
	b, err := os.ReadFile(idFile)
	if err != nil {
		return
	}
	id := strings.TrimSpace(string(b))
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=stacyvm.server_id="+id).Output()
	if err != nil {
		return
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		t.Logf("removed %d leftover worker containers", len(ids))
	}
}
