// Package sdk runs the Python and TypeScript SDK suites, their READMEs'
// snippets, the examples, the CLI's file commands and the MCP server against
// one live `stacyvm serve` on the real Docker engine, and checks that both
// SDKs cover every operation of the OpenAPI document.
//
// It needs a running engine and the local image stacyvm/busybox
// (scripts/ci-prepare.sh provides them), python3 and node/npm. Without them
// the tests skip, except with CI=true, where they fail.
package sdk

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, relative to this package.
const repoRoot = "../.."

// live is the server every test talks to; set once in TestMain.
var live struct {
	bin     string // path of the stacyvm binary
	url     string // http://127.0.0.1:PORT (no /api/v1)
	dataDir string
	skip    string // why the live tests skip (empty: they run)
	binDir  string // a directory of binaries built by setup, removed at the end
	// page is a loopback listener reserved for the browser test's page
	// server; its origin is the server's one allowed CORS origin.
	page net.Listener
}

func TestMain(m *testing.M) {
	code := 0
	stop, err := setup()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "sdk: FAIL:", err)
			os.Exit(1)
		}
		live.skip = err.Error()
	}
	code = m.Run()
	if stop != nil {
		stop()
	}
	if live.binDir != "" {
		os.RemoveAll(live.binDir)
	}
	os.Exit(code)
}

// setup finds or builds the binary and starts the shared server. The
// returned func stops it and removes the containers it labelled.
func setup() (func(), error) {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("docker engine not reachable (run scripts/ci-prepare.sh as root): %s", strings.TrimSpace(string(out)))
	}
	if err := exec.Command("docker", "image", "inspect", "stacyvm/busybox").Run(); err != nil {
		return nil, fmt.Errorf("image stacyvm/busybox missing (run scripts/build-images.sh)")
	}
	live.bin = os.Getenv("STACYVM_BIN")
	if live.bin == "" {
		dir, err := os.MkdirTemp("", "svm-sdk-bin")
		if err != nil {
			return nil, err
		}
		for _, b := range []struct{ out, pkg string }{{"stacyvm", "./cmd/stacyvm"}, {"stacyvm-agent", "./cmd/stacyvm-agent"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
			}
		}
		live.bin = filepath.Join(dir, "stacyvm")
		live.binDir = dir
	}
	dataDir, err := os.MkdirTemp("", "svm-sdk") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	live.dataDir = dataDir
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if live.page, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STACYVM_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"STACYVM_SERVER_HOST=127.0.0.1",
		fmt.Sprintf("STACYVM_SERVER_PORT=%d", port),
		"STACYVM_DATA_DIR="+dataDir,
		"STACYVM_DATABASE_PATH="+filepath.Join(dataDir, "stacyvm.db"),
		"STACYVM_PROVIDERS_DEFAULT=docker",
		"STACYVM_DEFAULTS_IMAGE=stacyvm/busybox",
		"STACYVM_PROVIDERS_DOCKER_PULL=never",
		"STACYVM_LOGGING_FORMAT=text",
		"STACYVM_SERVER_CORS_ALLOWED_ORIGINS=http://"+live.page.Addr().String(),
	)
	logBuf := &syncBuffer{}
	cmd := exec.Command(live.bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logBuf, logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		removeServerContainers(dataDir)
		os.RemoveAll(dataDir)
		live.page.Close()
	}
	live.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(live.url + "/api/v1/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("server did not become live; log:\n%s", logBuf.String())
}

// removeServerContainers removes only the containers labelled with this
// test server's id.
func removeServerContainers(dataDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, "server-id"))
	if err != nil {
		return
	}
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=stacyvm.server_id="+strings.TrimSpace(string(b))).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// needLive skips (or, under CI=true, fails) a test when the live server
// could not start.
func needLive(t *testing.T) {
	t.Helper()
	if live.skip != "" {
		t.Skip("no live server: " + live.skip)
	}
}

// needTool returns the path of a tool; it skips when it is missing, except
// under CI=true, where it fails.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true (scripts/ci-prepare.sh installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// sandboxCount is the number of this server's containers now.
func sandboxCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(live.dataDir, "server-id"))
	if err != nil {
		t.Fatalf("read server id: %v", err)
	}
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=stacyvm.server_id="+strings.TrimSpace(string(b))).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return len(strings.Fields(string(out)))
}

// runLogged runs a command in dir with the live server's URL in its
// environment, logs its combined output through t.Log and fails the test
// when it fails.
func runLogged(t *testing.T, ctx context.Context, dir string, extraEnv []string, name string, args ...string) string {
	t.Helper()
	cmd := command(ctx, dir, extraEnv, name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("$ (cd %s && %s %s)  [%s]\n%s", dir, name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// command builds a command in dir with the live server's URL in its environment.
func command(ctx context.Context, dir string, extraEnv []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "STACYVM_URL="+live.url), extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}
