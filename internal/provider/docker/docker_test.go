package docker_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
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
)

const (
	busybox   = "stacyvm/busybox:latest"
	python    = "stacyvm/python:latest"
	testLabel = "stacyvm.test"
)

// env is set once by TestMain and read-only afterwards.
type env struct {
	agentPath string
	skip      string // non-empty: why docker tests are skipped
	serverID  string
}

var testEnv env

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stacyvm-docker-agent-")
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
	removeLeftovers(cli)
	code := m.Run()
	removeLeftovers(cli)
	return code
}

// removeLeftovers force-removes this run's containers and stale ones of
// earlier runs.
func removeLeftovers(cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := client.Filters{}
	f.Add("label", testLabel+"=1")
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		fmt.Fprintln(os.Stderr, "list leftovers:", err)
		return
	}
	// Other test runs may be going on at the same time: remove this run's
	// containers, and only stale ones (over an hour old) of crashed runs.
	stale := time.Now().Add(-time.Hour).Unix()
	for _, c := range res.Items {
		if c.Labels[provider.LabelServer] == testEnv.serverID || c.Created < stale {
			cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
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
	dir, err := os.MkdirTemp("", "svd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newProvider(t *testing.T, cfg docker.Config) *docker.Provider {
	t.Helper()
	requireDocker(t)
	if cfg.DataDir == "" {
		cfg.DataDir = shortTempDir(t)
	}
	if cfg.AgentPath == "" {
		cfg.AgentPath = testEnv.agentPath
	}
	if cfg.ServerID == "" {
		cfg.ServerID = testEnv.serverID
	}
	if cfg.Pull == "" {
		cfg.Pull = docker.PullNever // tests never pull
	}
	p, err := docker.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	return p
}

func spec(image string) provider.Spec {
	return provider.Spec{
		SandboxID: providertest.NewSandboxID(),
		Image:     image,
		MemoryMB:  256,
		Network:   provider.NetworkNone,
		Labels:    map[string]string{testLabel: "1"},
	}
}

// sandbox creates a sandbox from sp and returns its handle and agent.
func sandbox(t *testing.T, p *docker.Provider, sp provider.Spec) (provider.Handle, *agent.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := p.Create(ctx, sp)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Destroy(ctx, h); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatalf("Agent: %v", err)
	}
	return h, c
}

func sh(t *testing.T, c *agent.Client, script string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", script}}, &out, &out)
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return out.String(), res.ExitCode
}

func TestConformance(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, docker.Config{DataDir: dataDir})
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Spec:     func(t *testing.T) provider.Spec { return spec(busybox) },
		Reopen: func(t *testing.T) provider.Provider {
			return newProvider(t, docker.Config{DataDir: dataDir})
		},
		Slow: true,
	})
}

func TestPythonImage(t *testing.T) {
	p := newProvider(t, docker.Config{})
	_, c := sandbox(t, p, spec(python))
	if out, code := sh(t, c, "python3 -c 'print(40+2)'"); out != "42\n" || code != 0 {
		t.Errorf("python3 = %q (exit %d), want %q", out, code, "42\n")
	}
}

func TestNew_RejectsDataDirTooLongForSockets(t *testing.T) {
	dir := "/" + strings.Repeat("d", 80)
	_, err := docker.New(context.Background(), docker.Config{DataDir: dir, AgentPath: testEnv.agentPath, ServerID: "x"}, nil)
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(err.Error(), "too long") {
		t.Errorf("New(long data dir) = %v, want Invalid about the socket path length", err)
	}
}

// TestTimings logs medians of create, first exec and destroy.
func TestTimings(t *testing.T) {
	p := newProvider(t, docker.Config{})
	const n = 5
	var create, first, destroy []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		sp := spec(busybox)
		t0 := time.Now()
		h, err := p.Create(ctx, sp)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		create = append(create, time.Since(t0))
		c, err := p.Agent(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		if _, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"true"}}, nil, nil); err != nil {
			t.Error(err)
		}
		first = append(first, time.Since(t0))
		t0 = time.Now()
		if err := p.Destroy(ctx, h); err != nil {
			t.Error(err)
		}
		destroy = append(destroy, time.Since(t0))
		cancel()
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	t.Logf("median of %d: create %v, first exec %v, destroy %v", n, med(create), med(first), med(destroy))
	if m := med(destroy); m > 2*time.Second {
		t.Errorf("median destroy %v, want < 2s", m)
	}
}

func TestNew_ValidatesConfig(t *testing.T) {
	dir := shortTempDir(t)
	ok := docker.Config{DataDir: dir, AgentPath: testEnv.agentPath, ServerID: "x"}
	for name, mut := range map[string]func(*docker.Config){
		"NoServerID":       func(c *docker.Config) { c.ServerID = "" },
		"RelativeDataDir":  func(c *docker.Config) { c.DataDir = "data" },
		"MissingAgent":     func(c *docker.Config) { c.AgentPath = filepath.Join(dir, "nope") },
		"BadNetwork":       func(c *docker.Config) { c.DefaultNetwork = "host" },
		"BadPullPolicy":    func(c *docker.Config) { c.Pull = "always" },
		"MissingSeccompFn": func(c *docker.Config) { c.SeccompProfile = filepath.Join(dir, "none.json") },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mut(&cfg)
			if _, err := docker.New(context.Background(), cfg, nil); errs.ClassOf(err) != errs.Invalid {
				t.Errorf("New = %v, want Invalid", err)
			}
		})
	}
}
