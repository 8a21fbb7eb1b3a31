package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/docker"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
	"github.com/stacyvm/stacyvm/internal/provider/remote"
	"github.com/stacyvm/stacyvm/internal/worker"
)

const (
	busybox   = "stacyvm/busybox:latest"
	testLabel = "stacyvm.test"
	token     = "test-worker-token"
)

// env is set once by TestMain and read-only afterwards.
type env struct {
	agentPath string
	skip      string // non-empty: why docker tests are skipped
	serverID  string
}

var testEnv env

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

// runMain follows the docker provider's tests: the agent is built once, and
// a missing Docker engine skips the tests, except under CI=true where it
// fails them.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stacyvm-remote-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if testEnv.agentPath, err = providertest.BuildAgent(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv.serverID = "test-" + providertest.NewSandboxID()
	cli, skip, err := providertest.DockerEngine()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if skip != "" {
		testEnv.skip = skip
		return m.Run()
	}
	defer cli.Close()
	code := m.Run()
	removeLeftovers(cli)
	return code
}

// removeLeftovers force-removes this run's containers.
func removeLeftovers(cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := client.Filters{}
	f.Add("label", testLabel+"=1", provider.LabelServer+"="+testEnv.serverID)
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list leftovers:", err)
		return
	}
	for _, c := range res.Items {
		cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}

func requireDocker(t *testing.T) {
	t.Helper()
	if testEnv.skip != "" {
		t.Skip(testEnv.skip)
	}
}

// shortTempDir keeps <dir>/sb/<id>/agent.sock under the unix socket limit.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "svr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// newDocker returns a docker provider on dataDir, as a worker host has.
func newDocker(t *testing.T, dataDir string) *docker.Provider {
	t.Helper()
	requireDocker(t)
	p, err := docker.New(context.Background(), docker.Config{
		DataDir: dataDir, AgentPath: testEnv.agentPath, ServerID: testEnv.serverID, Pull: docker.PullNever,
	}, nil)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// startWorker serves local through a real worker handler on a loopback
// listener and returns its URL.
func startWorker(t *testing.T, local provider.Provider) string {
	t.Helper()
	w, err := worker.New(worker.Config{Provider: local, Tokens: []string{token}, Version: "test"}, nil)
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(func() {
		srv.Close()
		w.Close()
	})
	return srv.URL
}

func newRemote(t *testing.T, cfg remote.Config) *remote.Provider {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = token
	}
	p, err := remote.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("remote.New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func spec() provider.Spec {
	return provider.Spec{
		SandboxID: providertest.NewSandboxID(),
		Image:     busybox,
		MemoryMB:  256,
		Network:   provider.NetworkNone,
		Labels:    map[string]string{testLabel: "1"},
	}
}

// TestConformance runs the whole provider suite against the remote provider
// talking to a worker over loopback TCP, the worker running a real docker
// provider. Reopen is a restart of both ends: a new worker process (fresh
// handler and provider on the same data dir) and a new server-side provider.
func TestConformance(t *testing.T) {
	dataDir := shortTempDir(t)
	url := startWorker(t, newDocker(t, dataDir))
	p := newRemote(t, remote.Config{URL: url})
	if got := p.Capabilities().Isolation; got != provider.IsolationContainer {
		t.Errorf("capabilities isolation = %q, want the worker's %q", got, provider.IsolationContainer)
	}
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Spec:     func(t *testing.T) provider.Spec { return spec() },
		Reopen: func(t *testing.T) provider.Provider {
			return newRemote(t, remote.Config{URL: startWorker(t, newDocker(t, dataDir))})
		},
		Slow: true,
	})
}

// TestErrors_ClassesSurviveTheWire checks that the worker's provider's error
// classes come back as the same classes on this side.
func TestErrors_ClassesSurviveTheWire(t *testing.T) {
	p := newRemote(t, remote.Config{URL: startWorker(t, newDocker(t, shortTempDir(t)))})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	existing := spec()
	h, err := p.Create(ctx, existing)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })
	unknown := provider.Handle{Provider: p.Name(), SandboxID: providertest.NewSandboxID()}

	for _, tc := range []struct {
		name string
		call func() error
		want errs.Class
	}{
		{"missing image is Invalid", func() error {
			sp := spec()
			sp.Image = "stacyvm/no-such-image:never"
			_, err := p.Create(ctx, sp)
			return err
		}, errs.Invalid},
		{"duplicate sandbox id is Conflict", func() error { _, err := p.Create(ctx, existing); return err }, errs.Conflict},
		{"stats of an unknown sandbox is NotFound", func() error { _, err := p.Stats(ctx, unknown); return err }, errs.NotFound},
		{"logs of an unknown sandbox is NotFound", func() error { _, err := p.Logs(ctx, unknown, 5); return err }, errs.NotFound},
		{"bad sandbox id is Invalid", func() error {
			_, err := p.Inspect(ctx, provider.Handle{SandboxID: "../etc"})
			return err
		}, errs.Invalid},
		{"unsupported network is Invalid", func() error {
			sp := spec()
			sp.Network = "host"
			_, err := p.Create(ctx, sp)
			return err
		}, errs.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if got := errs.ClassOf(err); err == nil || got != tc.want {
				t.Errorf("got %v (class %v), want class %v", err, got, tc.want)
			}
		})
	}

	t.Run("agent of an unknown sandbox fails with the worker's NotFound inside", func(t *testing.T) {
		c, err := p.Agent(ctx, unknown)
		if err != nil {
			t.Fatalf("Agent: %v", err)
		}
		_, err = c.Ping(ctx)
		if !hasClass(err, errs.NotFound) {
			t.Errorf("Ping through the relay of an unknown sandbox = %v, want a NotFound in its chain", err)
		}
	})
}

// hasClass reports whether any classified error in err's chain has class c.
func hasClass(err error, c errs.Class) bool {
	for err != nil {
		var e *errs.Error
		if !errors.As(err, &e) {
			return false
		}
		if e.Class == c {
			return true
		}
		err = e.Err
	}
	return false
}

// TestWorkerDown_IsUnavailableQuickly: a worker that does not listen fails
// every call fast with Unavailable, including agent calls.
func TestWorkerDown_IsUnavailableQuickly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	start := time.Now()
	p := newRemote(t, remote.Config{URL: url})
	if el := time.Since(start); el > time.Second {
		t.Errorf("remote.New with the worker down took %v, want < 1s", el)
	}
	if got := p.Capabilities(); got.Isolation != remote.IsolationUnknown || got.Boundary {
		t.Errorf("capabilities before contact = %+v, want unknown isolation and no boundary", got)
	}
	ctx := context.Background()
	h := provider.Handle{Provider: p.Name(), SandboxID: providertest.NewSandboxID()}
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatalf("Agent: %v", err)
	}
	for name, call := range map[string]func() error{
		"Health":  func() error { return p.Health(ctx) },
		"Create":  func() error { _, err := p.Create(ctx, spec()); return err },
		"Inspect": func() error { _, err := p.Inspect(ctx, h); return err },
		"Destroy": func() error { return p.Destroy(ctx, h) },
		"List":    func() error { _, err := p.List(ctx); return err },
		"Ping":    func() error { _, err := c.Ping(ctx); return err },
	} {
		start := time.Now()
		err := call()
		if el := time.Since(start); el > time.Second {
			t.Errorf("%s with the worker down took %v, want < 1s", name, el)
		}
		if got := errs.ClassOf(err); got != errs.Unavailable {
			t.Errorf("%s with the worker down = %v (class %v), want Unavailable", name, err, got)
		}
	}
}

// TestWrongToken_IsUnauthorized: a server with the wrong token gets
// Unauthorized from the worker, and its agent calls fail.
func TestWrongToken_IsUnauthorized(t *testing.T) {
	url := startWorker(t, newDocker(t, shortTempDir(t)))
	p := newRemote(t, remote.Config{URL: url, Token: "not-the-token"})
	ctx := context.Background()
	if err := p.Health(ctx); errs.ClassOf(err) != errs.Unauthorized {
		t.Errorf("Health with a wrong token = %v, want Unauthorized", err)
	}
	if _, err := p.List(ctx); errs.ClassOf(err) != errs.Unauthorized {
		t.Errorf("List with a wrong token = %v, want Unauthorized", err)
	}
	c, _ := p.Agent(ctx, provider.Handle{SandboxID: providertest.NewSandboxID()})
	if _, err := c.Ping(ctx); !hasClass(err, errs.Unauthorized) {
		t.Errorf("Ping with a wrong token = %v, want Unauthorized in its chain", err)
	}
}

// TestRelay_Overhead measures exec latency and upload throughput through the
// worker relay against the same sandbox's local agent socket. It logs the
// numbers and fails only on gross regressions.
func TestRelay_Overhead(t *testing.T) {
	local := newDocker(t, shortTempDir(t))
	p := newRemote(t, remote.Config{URL: startWorker(t, local)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := p.Create(ctx, spec())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })
	viaWorker, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := local.Agent(ctx, provider.Handle{Provider: local.Name(), SandboxID: h.SandboxID, RuntimeID: h.RuntimeID})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	execP50 := func(c *agent.Client) time.Duration {
		var ds []time.Duration
		for range n {
			start := time.Now()
			if _, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"true"}}, nil, nil); err != nil {
				t.Fatalf("exec: %v", err)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[n/2]
	}
	execP50(direct) // warm both paths
	execP50(viaWorker)
	d, w := execP50(direct), execP50(viaWorker)
	t.Logf("exec `true` p50 over %d: direct %v, through the worker %v (+%v)", n, d, w, w-d)
	if w > d+50*time.Millisecond {
		t.Errorf("the relay adds %v to an exec, want < 50ms", w-d)
	}

	data := make([]byte, 32<<20)
	rand.Read(data)
	upload := func(c *agent.Client, path string) time.Duration {
		start := time.Now()
		if err := c.WriteFile(ctx, path, 0o644, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		return time.Since(start)
	}
	ud, uw := upload(direct, "/tmp/direct.bin"), upload(viaWorker, "/tmp/worker.bin")
	mbps := func(d time.Duration) float64 { return float64(len(data)) / d.Seconds() / (1 << 20) }
	t.Logf("32 MiB upload: direct %v (%.0f MiB/s), through the worker %v (%.0f MiB/s)", ud, mbps(ud), uw, mbps(uw))
	download := func(c *agent.Client, path string) time.Duration {
		start := time.Now()
		rc, _, err := c.ReadFile(ctx, path)
		if err != nil {
			t.Fatalf("ReadFile: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download: %d bytes, %v; want the %d bytes uploaded", len(got), err, len(data))
		}
		return time.Since(start)
	}
	dd, dw := download(direct, "/tmp/worker.bin"), download(viaWorker, "/tmp/worker.bin")
	t.Logf("32 MiB download: direct %v (%.0f MiB/s), through the worker %v (%.0f MiB/s)", dd, mbps(dd), dw, mbps(dw))
}

// TestRelay_PortTunnelAndSession: the relay carries the agent's upgrades
// (port tunnels for previews, interactive sessions for WebSocket exec).
func TestRelay_PortTunnelAndSession(t *testing.T) {
	p := newRemote(t, remote.Config{URL: startWorker(t, newDocker(t, shortTempDir(t)))})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := p.Create(ctx, spec())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	// A one-shot HTTP server in the sandbox, reached through DialPort.
	if _, err := c.StartProcess(ctx, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-c",
		`while true; do printf 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello' | nc -l -p 8080; done`}}}); err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.DialPort(ctx, 8080)
		}}}
		resp, err := hc.Get("http://sandbox/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "hello" {
		t.Errorf("HTTP through a port tunnel over the relay = %q, want %q", body, "hello")
	}

	sess, err := c.OpenSession(ctx, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/cat"}}})
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	defer sess.Close()
	if err := sess.Stdin([]byte("ping\n")); err != nil {
		t.Fatalf("session stdin: %v", err)
	}
	if err := sess.CloseStdin(); err != nil {
		t.Fatalf("session close stdin: %v", err)
	}
	var out strings.Builder
	res, err := sess.Wait(&out, io.Discard)
	if err != nil || out.String() != "ping\n" || res.ExitCode != 0 {
		t.Errorf("session through the relay = %q, %+v, %v; want %q, exit 0", out.String(), res, err, "ping\n")
	}
}
