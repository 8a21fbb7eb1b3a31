// Package e2e drives the real stacyvm binary over HTTP against the real
// Docker engine. It needs root, a running engine and the local images
// stacyvm/busybox and stacyvm/python (scripts/ci-prepare.sh provides all).
// Without them the tests skip, except with CI=true, where they fail.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/provider/proot"
)

var binPath string // set once in TestMain; read-only afterwards

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: FAIL:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "e2e: skipping:", err)
		os.Exit(0)
	}
	_ = code
	os.Exit(m.Run())
}

func setup() (int, error) {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("docker engine not reachable (run scripts/ci-prepare.sh as root): %s", strings.TrimSpace(string(out)))
	}
	for _, img := range []string{"stacyvm/busybox", "stacyvm/python"} {
		if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil {
			return 0, fmt.Errorf("image %s missing (run scripts/build-images.sh)", img)
		}
	}
	binPath = os.Getenv("STACYVM_BIN")
	if binPath == "" {
		dir, err := os.MkdirTemp("", "svm-bin")
		if err != nil {
			return 0, err
		}
		for _, b := range []struct{ out, pkg string }{{"stacyvm", "./cmd/stacyvm"}, {"stacyvm-agent", "./cmd/stacyvm-agent"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return 0, fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
			}
		}
		binPath = filepath.Join(dir, "stacyvm")
	}
	return 0, nil
}

// server is one stacyvm serve process.
type server struct {
	t       *testing.T
	url     string // http://127.0.0.1:PORT/api/v1
	dataDir string
	env     []string
	cmd     *exec.Cmd
	logBuf  *lockedBuffer
}

type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts stacyvm serve on a fresh data dir (or dataDir when
// set) with extra env overrides, and waits until /live answers.
func startServer(t *testing.T, dataDir string, extraEnv ...string) *server {
	t.Helper()
	if dataDir == "" {
		d, err := os.MkdirTemp("", "svm") // short: unix socket paths are limited
		if err != nil {
			t.Fatal(err)
		}
		dataDir = d
		t.Cleanup(func() { removeServerContainers(t, d); os.RemoveAll(d) })
	}
	port := freePort(t)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STACYVM_BIN=") {
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
	)
	env = append(env, extraEnv...)
	s := &server{t: t, url: fmt.Sprintf("http://127.0.0.1:%d/api/v1", port), dataDir: dataDir, env: env,
		logBuf: &lockedBuffer{mu: make(chan struct{}, 1)}}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logBuf.String())
		}
	})
	return s
}

func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command(binPath, "serve")
	cmd.Env = s.env
	cmd.Stdout = s.logBuf
	cmd.Stderr = s.logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url + "/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("server did not become live; log:\n%s", s.logBuf.String())
}

// kill stops the server with SIGKILL (no cleanup, like a crash).
func (s *server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
		s.cmd = nil
	}
}

// stop stops the server gracefully, then by force.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func serverID(t *testing.T, dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "server-id"))
	if err != nil {
		t.Fatalf("read server id: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// containers lists container names of the server owning dataDir.
func containers(t *testing.T, dataDir string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=stacyvm.server_id="+serverID(t, dataDir), "--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			names = append(names, l)
		}
	}
	return names
}

func removeServerContainers(t *testing.T, dataDir string) {
	// Sandboxes of providers other than Docker live in the data dir: proot
	// agents and overlay mounts would keep it from being removed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := proot.RemoveAll(ctx, filepath.Join(dataDir, "proot")); err != nil {
		t.Logf("removing proot sandboxes: %v", err)
	}
	// microVMs outlive their server by design (a restart adopts them), so
	// a test's QEMU processes are stopped here, by pid: every one names a
	// file under its data dir on its command line.
	killProcsUnder(t, dataDir)
	b, err := os.ReadFile(filepath.Join(dataDir, "server-id"))
	if err != nil {
		return
	}
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=stacyvm.server_id="+strings.TrimSpace(string(b))).Output()
	ids := strings.Fields(string(out))
	if len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// killProcsUnder SIGKILLs every process whose command line names a path
// under dir (the test's QEMU microVMs), and waits for them to go.
func killProcsUnder(t *testing.T, dir string) {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(cl), dir+"/") {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		t.Logf("stopping leftover process %d under %s", pid, dir)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); len(pids) > 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pids = slices.DeleteFunc(pids, func(pid int) bool {
			st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			return err != nil || strings.Contains(string(st), ") Z")
		})
	}
}

// call does one JSON request and decodes the answer into out (if non-nil).
func (s *server) call(method, path string, body any, out any) (int, []byte) {
	s.t.Helper()
	return s.callCtx(context.Background(), method, path, body, out)
}

func (s *server) callCtx(ctx context.Context, method, path string, body any, out any) (int, []byte) {
	s.t.Helper()
	return s.callCtxWith(ctx, method, path, body, out)
}

// callWith is call with extra request headers (name, value pairs).
func (s *server) callWith(method, path string, body any, out any, hdr ...string) (int, []byte) {
	s.t.Helper()
	return s.callCtxWith(context.Background(), method, path, body, out, hdr...)
}

func (s *server) callCtxWith(ctx context.Context, method, path string, body any, out any, hdr ...string) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, data
}

type sandboxJSON struct {
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Provider  string            `json:"provider"`
	Image     string            `json:"image"`
	ExpiresAt string            `json:"expires_at"`
	Metadata  map[string]string `json:"metadata"`
}

type execJSON struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Duration string `json:"duration"`
}

func (s *server) spawn(body map[string]any) sandboxJSON {
	s.t.Helper()
	var sb sandboxJSON
	code, data := s.call("POST", "/sandboxes", body, &sb)
	if code != 201 {
		s.t.Fatalf("spawn: got %d %s, want 201", code, data)
	}
	return sb
}

func (s *server) exec(id, command string) execJSON {
	s.t.Helper()
	var r execJSON
	code, data := s.call("POST", "/sandboxes/"+id+"/exec", map[string]any{"command": command}, &r)
	if code != 200 {
		s.t.Fatalf("exec %q: got %d %s", command, code, data)
	}
	return r
}

// wantError checks an error answer's status and code.
func wantError(t *testing.T, what string, code int, data []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct{ Code, Message string }
	json.Unmarshal(data, &e)
	if code != wantStatus || e.Code != wantCode || e.Message == "" {
		t.Errorf("%s: got %d %s, want %d %s with a message", what, code, data, wantStatus, wantCode)
	}
}

func newJSONRequest(method, url, body string) (*http.Request, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, err
}

func httpClientNoRetry() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
}
